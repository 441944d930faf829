"""`scaleset-operator demo`: the whole story on a local control plane, live.

Brings up the control plane, installs the CRDs, starts the operator, creates a scale set,
publishes a good image version (a rolling upgrade runs) and then a bad one (instances are
rolled back and the upgrade ends Faulted), and says how to look around. With ``--real-nodes``
the instances are real containers on real nodes (kubelet + containerd) and the operator runs as
a pod installed by its chart.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from scaleset_operator.cli.operator.demo_realnodes import (
    OPERATOR_NAMESPACE,
    RELEASE,
    install_operator,
    served_version,
)
from scaleset_operator.cli.views.progress import progress_view
from scaleset_operator.k8s.client import KubeClient, condition, make_api_client
from scaleset_operator.k8s.crds import apply_crds, wait_established
from scaleset_operator.k8s.errors import AlreadyExistsError, KubeApiError
from scaleset_operator.localcluster import BinaryNotFoundError, LocalCluster, LocalClusterError
from scaleset_operator.localcluster.realnodes import RealNodeError, pod_spec
from scaleset_operator.models.crd import render_all
from scaleset_operator.models.status import RollingUpgradeStatus, RunningStatusCode
from scaleset_operator.polling import PollTimeoutError, poll

NAMESPACE = "demo"
REAL_NODES = 2
console = Console()


def _say(text: str) -> None:
    console.print(f"[bold cyan]==>[/] {text}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _install_crds(kube: KubeClient) -> None:
    documents = [yaml.safe_load(text) for text in render_all().values()]
    apply_crds(kube, documents)
    wait_established(kube, [d["metadata"]["name"] for d in documents])


def _publish(kube: KubeClient, version: str, image: str) -> None:
    body = {
        "apiVersion": "scaleset.dev/v1alpha1",
        "kind": "ImageVersion",
        "metadata": {"name": f"contoso-webos-2024-{version.replace('.', '-')}"},
        "spec": {
            "publisher": "contoso",
            "offer": "webos",
            "sku": "2024",
            "version": version,
            "image": image,
            "publishedDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    with contextlib.suppress(AlreadyExistsError):
        kube.request("POST", "/apis/scaleset.dev/v1alpha1/imageversions", body=body)
    _say(f"published ImageVersion {version} ({image})")


def _scaleset(capacity: int, real: bool) -> dict[str, Any]:
    return {
        "apiVersion": "scaleset.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "capacity": capacity,
            "location": "westeurope",
            "imageReference": {
                "publisher": "contoso",
                "offer": "webos",
                "sku": "2024",
                "version": "latest",
            },
            "upgradePolicy": {
                "mode": "Rolling",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                "rollingUpgradePolicy": {
                    "maxBatchInstancePercent": 20,
                    "enableCrossZoneUpgrade": True,
                    "pauseTimeBetweenBatches": "PT1S",
                },
                "healthTimeout": "PT30S" if real else "PT10S",
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": pod_spec("set-by-the-operator")
                if real
                else {"containers": [{"name": "os", "image": "set-by-the-operator"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def _images(registry: str | None) -> tuple[str, str, str]:
    """The three versions' images: real test images on real nodes, else simulated ones."""
    if registry:
        return (f"{registry}/app:v1", f"{registry}/app:v2", f"{registry}/app:bad-3")
    return (
        "registry.example/webos:1.0.0",
        "registry.example/webos:1.1.0",
        "registry.example/webos:bad-1.2.0",
    )


def _get(kube: KubeClient) -> dict[str, Any]:
    return kube.get_scaleset(NAMESPACE, "web")


def _instance_id(pod: dict[str, Any]) -> int:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    try:
        return int(labels.get("scaleset.dev/instance-id") or 0)
    except ValueError:
        return 0


def _start_time(rolling_upgrade: dict[str, Any] | None) -> str | None:
    """`runningStatus.startTime` of a raw `status.rollingUpgrade`, either of which may be
    absent or null."""
    running = (rolling_upgrade or {}).get("runningStatus") or {}
    start = running.get("startTime")
    return str(start) if start is not None else None


def _instances_table(kube: KubeClient, real: bool = False) -> Table:
    table = Table(title="instances", title_justify="left")
    columns = ["instance", "node", "image", "ready"]
    if real:
        columns += ["pod IP", "restarts", "serves"]
    for col in columns:
        table.add_column(col)
    for pod in sorted(kube.list_pods(NAMESPACE, "scaleset.dev/scaleset=web"), key=_instance_id):
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        containers = spec.get("containers") or [{}]
        row = [
            (pod.get("metadata") or {}).get("name") or "-",
            spec.get("nodeName") or "-",
            containers[0].get("image") or "-",
            "yes" if condition(pod, "Ready") == "True" else "no",
        ]
        if real:
            statuses = status.get("containerStatuses") or [{}]
            row += [
                str(status.get("podIP") or "-"),
                str(statuses[0].get("restartCount", "-")),
                served_version(status.get("podIP")),
            ]
        table.add_row(*row)
    return table


def _wait(what: str, predicate: Any, timeout: float = 120) -> Any:
    with console.status(what):
        try:
            return poll(predicate, what=what, timeout=timeout, interval=0.2)
        except PollTimeoutError:
            raise click.ClickException(f"timed out after {timeout:.0f}s: {what}") from None


def _follow_upgrade(kube: KubeClient, since: str | None, timeout: float = 180) -> dict[str, Any]:
    """Live progress bars until the upgrade started after `since` ends."""
    with Live(console=console, refresh_per_second=8) as live:

        def ended() -> dict[str, Any] | None:
            status = _get(kube).get("status") or {}
            raw = status.get("rollingUpgrade")
            if not raw or _start_time(raw) == since:
                return None
            ru = RollingUpgradeStatus.model_validate(raw)
            live.update(progress_view("web", ru))
            code = ru.running_status.code if ru.running_status else None
            return status if code not in (None, RunningStatusCode.ROLLING_FORWARD) else None

        try:
            status = poll(ended, what="the upgrade", timeout=timeout, interval=0.25)
        except PollTimeoutError:
            raise click.ClickException(
                "the upgrade did not finish in time; see the operator log"
            ) from None
        live.stop()
    console.print()
    return status


def _start_operator(
    directory: Path, kubeconfig: Path, metrics_port: int
) -> subprocess.Popen[bytes]:
    log = (directory / "logs" / "operator.log").open("ab")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scaleset_operator",
            "run",
            "--upgrade-delay",
            "2",
            "--metrics-port",
            str(metrics_port),
            "--health-port",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".cluster"),
    show_default=True,
    help="Where the local cluster keeps its data, logs and kubeconfig.",
)
@click.option("--capacity", type=click.IntRange(2, 200), default=10, show_default=True)
@click.option(
    "--keep",
    is_flag=True,
    help="Leave the cluster and the operator running afterwards, for exploring.",
)
@click.option(
    "--real-nodes",
    "real",
    is_flag=True,
    help="Run the instances as real containers on two real nodes (kubelet + containerd; "
    "needs root), and the operator as a pod installed by its Helm chart.",
)
def demo(directory: Path, capacity: int, keep: bool, real: bool) -> None:
    """Run the whole story live: an automatic OS upgrade, then a bad image rolled back.

    \b
    Examples:
      scaleset-operator demo               # about a minute, cleans up after itself
      scaleset-operator demo --keep        # then: export KUBECONFIG=.cluster/kubeconfig
      scaleset-operator demo --real-nodes  # real containers, the operator from its chart
    """
    local = _start_cluster(directory, real)
    operator: subprocess.Popen[bytes] | None = None
    try:
        kube = KubeClient(make_api_client(str(local.kubeconfig_path)))
        _say("installing the ScaleSet and ImageVersion CRDs")
        _install_crds(kube)
        metrics_port = _free_port()
        if real:
            _say(
                "building the operator's image from this checkout and installing its chart "
                f"into the namespace {OPERATOR_NAMESPACE} (Pod Security: restricted)"
            )
            pod = install_operator(local, kube, lambda m: console.print(f"   [dim]{m}[/]"))
            _say(f"operator pod {OPERATOR_NAMESPACE}/{pod} is Ready on a real node")
        else:
            operator = _start_operator(directory, local.kubeconfig_path, metrics_port)
            _say(f"operator started (pid {operator.pid}), log: {directory}/logs/operator.log")
        _story(kube, _images(local.registry if real else None), capacity, real)
        _look_around(local.kubeconfig_path, metrics_port, real)
    except KubeApiError as exc:
        raise click.ClickException(f"the API server refused: {exc}") from exc
    finally:
        _end(local, operator, directory, keep)


def _start_cluster(directory: Path, real: bool) -> LocalCluster:
    local = LocalCluster(
        directory,
        real_nodes=REAL_NODES if real else 0,
        zones=REAL_NODES if real else 3,
        log=lambda m: console.print(f"   [dim]{m}[/]"),
    )
    extra = f" and {REAL_NODES} real nodes (kubelet + containerd)" if real else ""
    _say(
        f"starting a local control plane in {directory}/ (etcd, kube-apiserver, "
        f"controller-manager, scheduler, kwok){extra}"
    )
    try:
        local.up(timeout=600)
    except (LocalClusterError, BinaryNotFoundError, RealNodeError) as exc:
        raise click.ClickException(str(exc)) from exc
    return local


def _story(kube: KubeClient, images: tuple[str, str, str], capacity: int, real: bool) -> None:
    """A healthy set, an automatic upgrade to 1.1.0, then a bad 1.2.0 rolled back."""
    with contextlib.suppress(AlreadyExistsError):
        kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": NAMESPACE}})
    _publish(kube, "1.0.0", images[0])
    with contextlib.suppress(AlreadyExistsError):
        kube.request(
            "POST",
            f"/apis/scaleset.dev/v1alpha1/namespaces/{NAMESPACE}/scalesets",
            body=_scaleset(capacity, real),
        )
    probe = "an HTTP readiness probe" if real else "readiness"
    _say(
        f"created ScaleSet demo/web: {capacity} instances, automatic OS upgrades on, "
        f"20 % per batch, health by {probe}"
    )

    def all_ready() -> bool:
        return bool((_get(kube).get("status") or {}).get("readyInstances") == capacity)

    _wait(f"waiting for {capacity} healthy instances", all_ready, timeout=300)
    console.print(_instances_table(kube, real))

    before = (_get(kube).get("status") or {}).get("rollingUpgrade") or {}
    _publish(kube, "1.1.0", images[1])
    _say("the platform starts a rolling OS upgrade after a 2 s delay:")
    status = _follow_upgrade(kube, _start_time(before))
    _say(f"upgrade {status['rollingUpgrade']['runningStatus']['code']}: all instances on 1.1.0")
    if real:
        _say("same pods, same IPs: each container was restarted in place on the new image")
    console.print(_instances_table(kube, real))

    before = status["rollingUpgrade"]
    _publish(kube, "1.2.0", images[2])
    _say("1.2.0 is a bad image (its tag was never pushed): watch it fail and roll back")
    status = _follow_upgrade(kube, _start_time(before))
    entry = (status.get("osUpgradeHistory") or [{}])[0]
    _say("the newest history entry, in Azure's shape:")
    console.print_json(json.dumps(entry))
    _wait("waiting for rolled-back instances to be healthy again", all_ready)
    console.print(_instances_table(kube, real))


def _look_around(kubeconfig: Path, metrics_port: int, real: bool) -> None:
    _say("look around:")
    metrics = (
        f"  kubectl -n {OPERATOR_NAMESPACE} logs deploy/{RELEASE}\n  kubectl get nodes -o wide"
        if real
        else f"  curl -s localhost:{metrics_port}/metrics | grep ^scaleset_"
    )
    console.print(
        f"  export KUBECONFIG={kubeconfig} PATH={Path(sys.executable).parent}:$PATH\n"
        f"  kubectl -n {NAMESPACE} get vmss\n"
        f"  kubectl scaleset -n {NAMESPACE} get-os-upgrade-history web\n"
        f"  kubectl scaleset -n {NAMESPACE} get web\n"
        f"  kubectl -n {NAMESPACE} get events --sort-by=.lastTimestamp\n"
        f"{metrics}"
    )


def _end(
    local: LocalCluster,
    operator: subprocess.Popen[bytes] | None,
    directory: Path,
    keep: bool,
) -> None:
    if keep:
        _say(
            f"still running; stop with: kill {operator.pid if operator else ''}; "
            f"scaleset-operator cluster down --dir {directory}"
        )
        return
    if operator is not None:
        operator.terminate()
        operator.wait(timeout=20)
    local.down()
    _say("stopped the operator and the local cluster (use --keep to explore)")
