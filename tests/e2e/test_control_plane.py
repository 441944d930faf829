"""Smoke tests of the local control plane and of the simulated kubelet (tests/kwok/stages.yaml)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from scaleset_operator.localcluster import LocalCluster, find_binary
from scaleset_operator.localcluster.binaries import HELM_VERSION, K8S_VERSION
from tests.helpers import holds_for, wait_for

pytestmark = pytest.mark.e2e

GOOD = "registry.test/app:1.0"
GOOD2 = "registry.test/app:2.0"
BAD = "registry.test/app:bad-2.0"
CRASH = "registry.test/app:crash-2.0"
UNREADY = "registry.test/app:unready-2.0"


def _pod(name: str, image: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": image}], **spec},
    }


def _conditions(pod: client.V1Pod) -> dict[str, str]:
    return {c.type: c.status for c in (pod.status.conditions or [])}


def _main(pod: client.V1Pod) -> client.V1ContainerStatus | None:
    statuses = pod.status.container_statuses or []
    return next((s for s in statuses if s.name == "main"), None)


class Pods:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.ns = namespace

    def create(self, body: dict[str, Any]) -> client.V1Pod:
        pod: client.V1Pod = self.core.create_namespaced_pod(self.ns, body)
        return pod

    def get(self, name: str) -> client.V1Pod:
        pod: client.V1Pod = self.core.read_namespaced_pod(name, self.ns)
        return pod

    def wait(self, name: str, check: Callable[[client.V1Pod], bool], what: str) -> client.V1Pod:
        def probe() -> client.V1Pod | None:
            pod = self.get(name)
            return pod if check(pod) else None

        return wait_for(probe, timeout=30, message=f"pod {name}: {what}")

    def set_image(self, name: str, image: str) -> client.V1Pod:
        patch = {"spec": {"containers": [{"name": "main", "image": image}]}}
        pod: client.V1Pod = self.core.patch_namespaced_pod(name, self.ns, patch)
        return pod

    def events_until(
        self, name: str, since: str, done: Callable[[client.V1Pod], bool], timeout: int = 30
    ) -> list[client.V1Pod]:
        """Pod versions seen by a watch from resourceVersion ``since`` until ``done``."""
        seen: list[client.V1Pod] = []
        w = watch.Watch()
        for event in w.stream(
            self.core.list_namespaced_pod,
            self.ns,
            field_selector=f"metadata.name={name}",
            resource_version=since,
            timeout_seconds=timeout,
        ):
            pod = event["object"]
            seen.append(pod)
            if done(pod):
                w.stop()
                return seen
        raise AssertionError(f"pod {name} never reached the expected state; saw {len(seen)} events")

    def settled(self, name: str, seconds: float = 1.5) -> None:
        """No further writes (kwok stages must not patch in a loop)."""
        version = self.get(name).metadata.resource_version
        holds_for(
            lambda: self.get(name).metadata.resource_version == version,
            seconds,
            message=f"resourceVersion of {name} unchanged",
        )


@pytest.fixture
def pods(kube_api: client.ApiClient, namespace: str) -> Pods:
    return Pods(kube_api, namespace)


def _image(pod: client.V1Pod) -> str:
    main = _main(pod)
    return str(main.image) if main else ""


def _restarts(pod: client.V1Pod) -> int:
    main = _main(pod)
    return int(main.restart_count) if main else -1


def _ready(pod: client.V1Pod) -> bool:
    return _conditions(pod).get("Ready") == "True"


def _waiting(reason: str) -> Callable[[client.V1Pod], bool]:
    def check(pod: client.V1Pod) -> bool:
        main = _main(pod)
        return bool(main and main.state.waiting and main.state.waiting.reason == reason)

    return check


# -- the control plane ---------------------------------------------------------------------------


def test_nodes_are_ready_in_three_zones(kube_api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(kube_api).list_node(label_selector="type=kwok").items
    assert len(nodes) == 6
    zones = {n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes}
    assert zones == {"zone-1", "zone-2", "zone-3"}
    for node in nodes:
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        assert not node.spec.taints
        assert parse_quantity(node.status.allocatable["pods"]) >= 1000


def test_kubectl_and_helm_talk_to_the_cluster(kubeconfig: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    kubectl, helm = find_binary("kubectl"), find_binary("helm")
    assert kubectl is not None
    assert helm is not None
    out = subprocess.run(
        [str(kubectl), "version", "--output=json"], env=env, capture_output=True, check=True
    )
    versions = json.loads(out.stdout)
    assert versions["serverVersion"]["gitVersion"] == f"v{K8S_VERSION}"
    assert versions["clientVersion"]["gitVersion"].startswith("v1.")
    out = subprocess.run([str(helm), "version", "--short"], capture_output=True, check=True)
    assert out.stdout.decode().startswith(f"v{HELM_VERSION}")
    out = subprocess.run(
        [str(helm), "list", "--all-namespaces", "--output=json"],
        env=env,
        capture_output=True,
        check=True,
    )
    assert json.loads(out.stdout) == []


def test_pod_security_admission_is_enforced(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    core.patch_namespace(namespace, {"metadata": {"labels": labels}})
    with pytest.raises(ApiException) as failure:
        core.create_namespaced_pod(namespace, _pod("privileged", GOOD))
    assert failure.value.status == 403
    assert "violates PodSecurity" in str(failure.value.body)


def test_garbage_collector_removes_dependents(
    kube_api: client.ApiClient, namespace: str, pods: Pods
) -> None:
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    body = _pod("dependent", GOOD)
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    ]
    pods.create(body)
    pods.wait("dependent", _ready, "Ready")
    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            pods.get("dependent")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=30, message="dependent pod garbage-collected")


def test_claim_is_provisioned_and_bound_and_its_pod_runs(
    kube_api: client.ApiClient, namespace: str, pods: Pods
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "2Gi"}},
            },
        },
    )
    claim = wait_for(
        lambda: (
            (c := core.read_namespaced_persistent_volume_claim("data", namespace)).status.phase
            == "Bound"
            and c
        ),
        message="claim Bound",
    )
    assert claim.spec.storage_class_name == "standard"
    volume_name = claim.spec.volume_name
    volume = core.read_persistent_volume(volume_name)
    assert volume.spec.claim_ref.uid == claim.metadata.uid
    assert volume.spec.capacity["storage"] == "2Gi"

    body = _pod("with-disk", GOOD)
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "d", "mountPath": "/data"}]
    body["spec"]["volumes"] = [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    pods.create(body)
    pods.wait("with-disk", _ready, "Ready")

    core.delete_namespaced_pod("with-disk", namespace)
    core.delete_namespaced_persistent_volume_claim("data", namespace)

    def volume_deleted() -> bool:
        try:
            core.read_persistent_volume(volume_name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(volume_deleted, timeout=30, message="released volume deleted")


# -- the simulated kubelet -----------------------------------------------------------------------


def test_good_image_runs_and_becomes_ready(pods: Pods) -> None:
    body = _pod("good", GOOD, initContainers=[{"name": "init", "image": "registry.test/init:1"}])
    pods.create(body)
    pod = pods.wait("good", _ready, "Ready")
    main = _main(pod)
    assert main is not None
    assert pod.status.phase == "Running"
    assert main.image == GOOD
    assert main.image_id.startswith("sim://sha256:")
    assert main.ready
    assert main.started
    assert main.state.running
    assert main.restart_count == 0
    init = pod.status.init_container_statuses[0]
    assert init.state.terminated.reason == "Completed"
    assert init.state.terminated.exit_code == 0
    assert pod.spec.node_name.startswith("kwok-node-")
    assert pod.status.pod_ip
    assert pod.status.host_ip
    # ServiceAccount admission mounted the API token.
    assert any(v.projected for v in pod.spec.volumes)
    pods.settled("good")


def test_bad_image_stays_in_image_pull_back_off(pods: Pods) -> None:
    pods.create(_pod("bad", BAD))
    pod = pods.wait("bad", _waiting("ImagePullBackOff"), "ImagePullBackOff")
    main = _main(pod)
    assert main is not None
    assert main.image == BAD
    assert not main.ready
    assert pod.status.phase == "Pending"
    assert _conditions(pod)["Ready"] == "False"
    pods.settled("bad")


def test_crashing_image_loops_with_growing_restart_count(pods: Pods) -> None:
    pods.create(_pod("crash", CRASH))
    pods.wait("crash", _waiting("CrashLoopBackOff"), "CrashLoopBackOff")
    pod = pods.wait("crash", lambda p: _restarts(p) >= 3, "restartCount >= 3")
    main = _main(pod)
    assert main is not None
    assert pod.status.phase == "Running"
    assert not main.ready
    assert main.last_state.terminated.exit_code == 1
    # Back-off doubles (1s, 2s, 4s, ...): no hot loop.
    assert main.state.waiting.message.startswith("back-off 4s")
    count = main.restart_count
    holds_for(
        lambda: _restarts(pods.get("crash")) <= count + 1,
        2.0,
        message="at most one restart within 2s at 4s back-off",
    )


def test_unready_image_runs_but_never_becomes_ready(pods: Pods) -> None:
    pods.create(_pod("unready", UNREADY))

    def running(pod: client.V1Pod) -> bool:
        main = _main(pod)
        return bool(main and main.state.running)

    pod = pods.wait("unready", running, "container running")
    main = _main(pod)
    assert main is not None
    assert pod.status.phase == "Running"
    assert main.started
    assert not main.ready
    assert _conditions(pod)["Ready"] == "False"
    pods.settled("unready")
    assert not _ready(pods.get("unready"))


def test_in_place_image_patch_restarts_the_container(pods: Pods) -> None:
    pods.create(_pod("patched", GOOD))
    pods.wait("patched", _ready, "Ready")
    patched = pods.set_image("patched", GOOD2)

    def new_image_ready(pod: client.V1Pod) -> bool:
        main = _main(pod)
        return _ready(pod) and main is not None and main.image == GOOD2

    seen = pods.events_until("patched", patched.metadata.resource_version, new_image_ready)
    restarting = [
        p
        for p in seen
        if not _ready(p) and (m := _main(p)) is not None and m.image == GOOD and not m.ready
    ]
    assert restarting, "expected an unready phase still showing the old image"
    assert restarting[0].status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    final = seen[-1]
    # Two status updates, as from a kubelet: going down on the old image, then up and Ready.
    assert len(seen) == 2, [(p.metadata.resource_version, _ready(p)) for p in seen]
    main = _main(final)
    assert main is not None
    assert main.restart_count == 1
    assert final.status.phase == "Running"
    pods.settled("patched")


def test_patch_to_bad_image_then_back_to_good_recovers(pods: Pods) -> None:
    pods.create(_pod("flip", GOOD))
    pods.wait("flip", _ready, "Ready")
    pods.set_image("flip", BAD)
    pod = pods.wait("flip", _waiting("ImagePullBackOff"), "ImagePullBackOff")
    main = _main(pod)
    assert main is not None
    # As a real kubelet reports it: the status keeps the image of the container it replaced,
    # and the waiting message names the tag that failed.
    assert main.image == GOOD
    assert BAD in main.state.waiting.message
    assert not _ready(pod)
    assert pod.status.phase == "Running"  # it had been running; the kubelet keeps the phase
    pods.settled("flip")
    pods.set_image("flip", GOOD2)
    pods.wait("flip", lambda p: _ready(p) and _image(p) == GOOD2, "Ready on the new image")
    pods.settled("flip")


def test_bad_pod_patched_to_good_becomes_ready(pods: Pods) -> None:
    pods.create(_pod("fixme", BAD))
    pods.wait("fixme", _waiting("ImagePullBackOff"), "ImagePullBackOff")
    pods.set_image("fixme", GOOD)
    pod = pods.wait("fixme", _ready, "Ready")
    assert pod.status.phase == "Running"
    assert _image(pod) == GOOD


def test_readiness_gate_decides_pod_readiness(pods: Pods) -> None:
    gate = "scaleset.dev/instance-healthy"
    pods.create(_pod("gated", GOOD, readinessGates=[{"conditionType": gate}]))
    pod = pods.wait(
        "gated", lambda p: _conditions(p).get("ContainersReady") == "True", "containers ready"
    )
    pods.settled("gated")
    pod = pods.get("gated")
    assert _conditions(pod)["Ready"] == "False"
    assert gate not in _conditions(pod)

    def set_gate(status: str) -> None:
        body = {"status": {"conditions": [{"type": gate, "status": status}]}}
        pods.core.patch_namespaced_pod_status("gated", pods.ns, body)

    set_gate("True")
    pods.wait("gated", _ready, "Ready after the gate turned True")
    set_gate("False")
    pods.wait("gated", lambda p: not _ready(p), "unready after the gate turned False")
    pods.settled("gated")


def test_deletion_waits_for_finalizers(pods: Pods) -> None:
    body = _pod("held", GOOD)
    body["metadata"]["finalizers"] = ["scaleset.dev/test-hold"]
    pods.create(body)
    pods.wait("held", _ready, "Ready")
    pods.core.delete_namespaced_pod("held", pods.ns)
    # Our delete asks for the default grace period; kwok's own delete (grace 0) then updates the
    # pod once more. Only after that may nothing change.
    pods.wait(
        "held",
        lambda p: (
            p.metadata.deletion_timestamp is not None
            and p.metadata.deletion_grace_period_seconds == 0
        ),
        "terminating, deleted by the simulated kubelet",
    )
    pods.settled("held")
    pods.core.patch_namespaced_pod("held", pods.ns, {"metadata": {"finalizers": None}})

    def gone() -> bool:
        try:
            pods.get("held")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=30, message="pod deleted once its finalizer is removed")


# Restarting the apiserver disturbs every client, so it runs last in this module.
def test_restart_of_apiserver_and_etcd_keeps_objects(
    cluster: LocalCluster, kube_api: client.ApiClient, namespace: str, pods: Pods
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept"}, "data": {"k": "v"}})
    pods.create(_pod("before", GOOD))
    pods.wait("before", _ready, "Ready")

    cluster.restart_apiserver_and_etcd()

    assert core.read_namespaced_config_map("kept", namespace).data == {"k": "v"}
    assert _ready(pods.get("before"))
    # Scheduler and kwok reconnected: a new pod still gets scheduled and started.
    pods.create(_pod("after", GOOD))
    pods.wait("after", _ready, "Ready after the restart")
    assert cluster.status().running
