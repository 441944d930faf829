"""Upgrades on real nodes: kubelets with containerd run the instances as real containers, with
an HTTP readiness probe as the health signal, images pulled from the cluster's registry.

What these tests show, and kwok cannot: an in-place image change restarts the container in its
pod (same UID, IP and data disk; restartCount grows; imageID changes), a tag that does not exist
fails the pull for real, a server that answers 503 never becomes ready, and rollbacks bring the
previous container back.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client

from scaleset_operator.localcluster import LocalCluster, find_binary
from scaleset_operator.localcluster.realnodes import TAINT_KEY
from tests.e2e.realnode_support import os_status, real_scaleset, served_version
from tests.e2e.support import REPO, World

pytestmark = pytest.mark.realnodes


def _history(world: World) -> list[dict]:
    return list(world.status().get("osUpgradeHistory") or [])


def test_real_nodes_run_next_to_the_simulated_ones(
    real_nodes: LocalCluster, kube_api: client.ApiClient
) -> None:
    nodes = client.CoreV1Api(kube_api).list_node().items
    real = [n for n in nodes if n.metadata.labels.get("type") == "real"]
    simulated = [n for n in nodes if n.metadata.labels.get("type") == "kwok"]
    assert len(real) >= 2
    assert simulated
    for node in real:
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
        assert node.status.node_info.kubelet_version.startswith("v1.")
        assert node.metadata.labels["topology.kubernetes.io/zone"].startswith("zone-")
        assert any(t.key == TAINT_KEY for t in node.spec.taints or [])
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready
        assert ready[0].status == "True"
    zones = {n.metadata.labels["topology.kubernetes.io/zone"] for n in real}
    assert len(zones) >= 2
    for node in simulated:
        assert "kwok" in node.status.node_info.container_runtime_version


def test_in_place_upgrade_keeps_pod_ip_and_disk(real_nodes: LocalCluster, world: World) -> None:
    registry = real_nodes.registry
    world.publish("1.0.0", image=f"{registry}/app:v1")
    world.create(
        real_scaleset(
            world,
            capacity=4,
            disks=True,
            rolling={"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50},
        )
    )
    world.wait_ready(capacity=4, timeout=120)
    before = {p.metadata.name: p for p in world.pods()}
    claims = world.claims()
    for pod in before.values():
        assert served_version(pod.status.pod_ip) == "v1"

    world.publish("1.1.0", image=f"{registry}/app:v2")
    status = world.wait_upgrade_code("Completed", timeout=120)

    assert status["currentImageVersion"] == "1.1.0"
    assert status["upgradeRun"]["batchesDone"] == 2
    world.wait_ready(capacity=4)
    after = {p.metadata.name: p for p in world.pods()}
    assert set(after) == set(before)
    for name, pod in after.items():
        old, new = before[name], pod
        assert new.metadata.uid == old.metadata.uid
        assert new.status.pod_ip == old.status.pod_ip
        assert new.spec.node_name == old.spec.node_name
        assert os_status(new).restart_count == os_status(old).restart_count + 1
        assert os_status(new).image_id != os_status(old).image_id
        assert os_status(new).image == f"{registry}/app:v2"
        assert served_version(new.status.pod_ip) == "v2"
    assert world.claims() == claims
    entry = _history(world)[0]
    assert entry["progress"]["successfulInstanceCount"] == 4
    assert entry["progress"]["failedInstanceCount"] == 0


def test_missing_tag_fails_the_pull_and_rolls_back_fast(
    real_nodes: LocalCluster, world: World
) -> None:
    registry = real_nodes.registry
    world.publish("1.0.0", image=f"{registry}/app:v1")
    # A long health timeout: only fail-fast can end this run soon.
    world.create(real_scaleset(world, capacity=3, health_timeout="PT120S"))
    world.wait_ready(capacity=3, timeout=120)
    uids = {p.metadata.name: p.metadata.uid for p in world.pods()}

    started = time.monotonic()
    world.publish("2.0.0", image=f"{registry}/app:bad-2")
    world.wait_upgrade_code("Faulted", timeout=100)
    elapsed = time.monotonic() - started

    assert elapsed < 60, (
        f"fail-fast should end the run well before the 120 s health timeout: {elapsed:.0f}s"
    )
    entry = _history(world)[0]
    assert entry["error"]["code"] == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    failed = entry["progress"]["failedInstanceCount"]
    assert failed >= 1
    assert entry["rollbackInfo"]["successfullyRolledbackInstanceCount"] == failed
    assert entry["rollbackInfo"]["failedRolledbackInstanceCount"] == 0
    causes = str(entry["error"].get("details") or entry["error"])
    assert "ErrImagePull" in causes or "ImagePullBackOff" in causes, causes
    world.wait_ready(capacity=3, timeout=60)
    assert set(world.images().values()) == {f"{registry}/app:v1"}
    assert {p.metadata.name: p.metadata.uid for p in world.pods()} == uids
    for pod in world.pods():
        assert served_version(pod.status.pod_ip) == "v1"


def test_never_ready_version_rolls_back_after_the_health_timeout(
    real_nodes: LocalCluster, world: World
) -> None:
    registry = real_nodes.registry
    world.publish("1.0.0", image=f"{registry}/app:v1")
    world.create(real_scaleset(world, capacity=3, health_timeout="PT6S"))
    world.wait_ready(capacity=3, timeout=120)

    started = time.monotonic()
    world.publish("3.0.0", image=f"{registry}/app:unready-1")
    world.wait_upgrade_code("Faulted", timeout=100)
    elapsed = time.monotonic() - started

    assert elapsed >= 6, "a never-ready instance is judged at the health timeout, not before"
    entry = _history(world)[0]
    failed = entry["progress"]["failedInstanceCount"]
    assert failed >= 1
    assert entry["rollbackInfo"]["successfullyRolledbackInstanceCount"] == failed
    assert entry["rollbackInfo"]["failedRolledbackInstanceCount"] == 0
    world.wait_ready(capacity=3, timeout=60)
    assert set(world.images().values()) == {f"{registry}/app:v1"}
    # The unready server really ran: its container started (restartCount grew) on the new
    # image before the rollback replaced it again.
    for pod in world.pods():
        assert served_version(pod.status.pod_ip) == "v1"


def test_crashing_version_fails_fast_and_rolls_back(real_nodes: LocalCluster, world: World) -> None:
    registry = real_nodes.registry
    world.publish("1.0.0", image=f"{registry}/app:v1")
    world.create(real_scaleset(world, capacity=2, health_timeout="PT120S"))
    world.wait_ready(capacity=2, timeout=120)

    started = time.monotonic()
    world.publish("4.0.0", image=f"{registry}/app:crash-1")
    world.wait_upgrade_code("Faulted", timeout=100)
    assert time.monotonic() - started < 60

    entry = _history(world)[0]
    assert entry["rollbackInfo"]["failedRolledbackInstanceCount"] == 0
    world.wait_ready(capacity=2, timeout=60)
    assert set(world.images().values()) == {f"{registry}/app:v1"}


def test_real_nodes_example_applies_and_upgrades(
    real_nodes: LocalCluster, world: World, kubeconfig: Path
) -> None:
    text = (REPO / "examples" / "scaleset-real-nodes.yaml").read_text()
    text = text.replace("127.0.0.1:5000", str(real_nodes.registry))
    # ImageVersions are cluster-scoped: one name per test, under the test's own publisher.
    text = text.replace("contoso-realos-2024-1.0.0", f"{world.publisher}-1-0-0")
    text = text.replace("publisher: contoso", f"publisher: {world.publisher}")
    kubectl = find_binary("kubectl")
    assert kubectl is not None
    subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "-n", world.namespace, "apply", "-f", "-"],
        input=text,
        text=True,
        check=True,
        capture_output=True,
    )
    world.published.append(f"{world.publisher}-1-0-0")
    world.wait_ready(capacity=4, timeout=120)
    world.publish("1.1.0", image=f"{real_nodes.registry}/app:v2", offer="realos", sku="2024")
    world.wait_upgrade_code("Completed", timeout=120)
    for pod in world.pods():
        assert served_version(pod.status.pod_ip) == "v2"
