"""The user's whole journey on real nodes: the operator's image built from this checkout, the
chart installed into a namespace that enforces the `restricted` Pod Security Standard, the
operator running as a pod (its ServiceAccount, in-cluster config through the `kubernetes`
Service, Ready by its own probes, /metrics scraped by Prometheus), upgrading a ScaleSet of real
containers, and coming back after its pod is deleted in the middle of an upgrade.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from scaleset_operator.cli.operator.demo_realnodes import RESTRICTED
from scaleset_operator.localcluster import LocalCluster
from scaleset_operator.localcluster.images import Registry, find_crane
from scaleset_operator.localcluster.operatorimage import build_operator_image
from scaleset_operator.localcluster.realnodes import NODE_TYPE_LABEL, TAINT_KEY
from tests.e2e.helm import CHART, Helm
from tests.e2e.prometheus_process import PrometheusProcess, binaries
from tests.e2e.realnode_support import real_scaleset
from tests.e2e.support import OperatorProcess, World, eventually

pytestmark = pytest.mark.realnodes


@dataclass
class InCluster:
    name: str
    namespace: str
    watched: str
    image: str


def _operator_pods(core: client.CoreV1Api, rel: InCluster) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(
        rel.namespace, label_selector=f"app.kubernetes.io/instance={rel.name}"
    ).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _ready_pod(core: client.CoreV1Api, rel: InCluster) -> client.V1Pod | None:
    for pod in _operator_pods(core, rel):
        conds = (pod.status.conditions or []) if pod.status else []
        if any(c.type == "Ready" and c.status == "True" for c in conds):
            return pod
    return None


@pytest.fixture(scope="module")
def operator_image(real_nodes: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    assert real_nodes.registry is not None
    return build_operator_image(
        find_crane(), Registry(real_nodes.registry), tmp_path_factory.mktemp("operator-image")
    )


@pytest.fixture(scope="module")
def in_cluster(
    real_nodes: LocalCluster,
    operator_image: str,
    kubeconfig: Path,
    api_client: client.ApiClient,
    crds_installed: None,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InCluster]:
    """The chart's operator as a pod on a real node, managing one namespace; the session's
    operator process is stopped meanwhile so that only the pod acts."""
    core = client.CoreV1Api(api_client)
    suffix = secrets.token_hex(3)
    namespace, watched = f"t-real-ops-{suffix}", f"t-real-apps-{suffix}"
    core.create_namespace({"metadata": {"name": namespace, "labels": RESTRICTED}})
    core.create_namespace({"metadata": {"name": watched}})
    repository, tag = operator_image.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag},
        "watchNamespaces": [watched],
        "operator": {"upgradeDelaySeconds": 0.5, "logFormat": "text"},
        "nodeSelector": {"type": NODE_TYPE_LABEL},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    }
    helm = Helm(kubeconfig, tmp_path_factory.mktemp("helm"))
    operator.stop()
    rel = InCluster("real", namespace, watched, operator_image)
    try:
        helm(
            "install", rel.name, str(CHART), "--namespace", namespace,
            "-f", helm.values_file("real", values),
        )  # fmt: skip
        yield rel
    finally:
        helm("uninstall", rel.name, "--namespace", namespace, check=False)
        for ns in (namespace, watched):
            core.delete_namespace(ns, propagation_policy="Background")
        operator.start()


def test_operator_pod_runs_restricted_and_is_scraped(
    in_cluster: InCluster, api_client: client.ApiClient, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    pod = eventually(lambda: _ready_pod(core, in_cluster), 120, 1, "the operator pod Ready")
    assert pod.spec.node_name.startswith("real-node-")
    container = pod.spec.containers[0]
    assert container.image == in_cluster.image
    assert container.security_context.read_only_root_filesystem is True
    assert pod.spec.security_context.run_as_user == 65532
    status = pod.status.container_statuses[0]
    assert status.ready
    assert status.state.running is not None
    namespace = core.read_namespace(in_cluster.namespace)
    assert namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"

    prometheus = PrometheusProcess(binaries()[0], tmp_path, [f"{pod.status.pod_ip}:8080"])
    prometheus.start()
    try:
        eventually(
            lambda: prometheus.value('up{job="scaleset-operator"}') == 1.0,
            30,
            what="Prometheus scraping the operator pod",
        )
        assert prometheus.query("scaleset_operator_info") or prometheus.query(
            '{__name__=~"scaleset_operator_.+"}'
        )
    finally:
        prometheus.stop()


def test_operator_pod_upgrades_and_survives_its_deletion(
    in_cluster: InCluster, real_nodes: LocalCluster, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    eventually(lambda: _ready_pod(core, in_cluster), 120, 1, "the operator pod Ready")
    world = World(api_client, in_cluster.watched)
    registry = real_nodes.registry
    try:
        world.publish("1.0.0", image=f"{registry}/app:v1")
        world.create(
            real_scaleset(
                world,
                capacity=4,
                rolling={"maxBatchInstancePercent": 25, "maxUnhealthyInstancePercent": 25},
            )
        )
        world.wait_ready(capacity=4, timeout=120)

        world.publish("1.1.0", image=f"{registry}/app:v2")
        eventually(
            lambda: (world.status().get("upgradeRun") or {}).get("batchesDone", 0) >= 1,
            90,
            what="the first batch done",
        )
        first = _ready_pod(core, in_cluster)
        assert first is not None
        core.delete_namespaced_pod(first.metadata.name, in_cluster.namespace)

        status = world.wait_upgrade_code("Completed", timeout=180)
        # The new pod may finish the upgrade before its readiness probe (every 10 s) passes.
        replacement = eventually(
            lambda: _ready_pod(core, in_cluster), 60, 1, "the replacement operator pod Ready"
        )
        assert replacement.metadata.uid != first.metadata.uid
        assert status["currentImageVersion"] == "1.1.0"
        assert set(world.images().values()) == {f"{registry}/app:v2"}
        entry = (world.status().get("osUpgradeHistory") or [])[0]
        assert entry["progress"] == {
            "successfulInstanceCount": 4,
            "failedInstanceCount": 0,
            "inProgressInstanceCount": 0,
            "pendingInstanceCount": 0,
        }
        world.wait_ready(capacity=4)
    finally:
        world.cleanup()
