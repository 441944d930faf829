"""The automatic OS image upgrade on a real API server, with kwok playing the kubelets.

Image conventions of the simulated kubelet: a tag starting with `bad` never pulls
(ImagePullBackOff), `unready` runs but never becomes Ready.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from kubernetes import client

from scaleset_operator.models.instance import ANNOTATION_PROTECT
from scaleset_operator.models.instance import ANNOTATION_UPGRADE as UPGRADE_MARK
from tests.e2e.support import OperatorProcess, PodEvents, World, eventually

ZONE = "topology.kubernetes.io/zone"


def _history(world: World) -> list[dict]:
    return list(world.status().get("osUpgradeHistory") or [])


def test_clean_upgrade_of_ten_instances_in_five_batches(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(rolling={"enableCrossZoneUpgrade": True}, disks=True))
    world.wait_ready()
    claims = world.claims()
    assert len(claims) == 10

    world.publish("1.1.0")
    status = world.wait_upgrade_code("Completed")

    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    assert status["currentImageVersion"] == "1.1.0"
    entry = _history(world)[0]
    assert entry["startedBy"] == "Platform"
    assert entry["runningStatus"]["code"] == "Completed"
    assert entry["progress"] == {
        "successfulInstanceCount": 10,
        "failedInstanceCount": 0,
        "inProgressInstanceCount": 0,
        "pendingInstanceCount": 0,
    }
    assert entry["targetImageReference"]["version"] == "1.1.0"
    assert status["upgradeRun"]["batchesDone"] == 5
    # Data disks survive the image change: same claims, same uids.
    assert world.claims() == claims
    world.wait_ready()


def test_bad_image_rolls_back_and_faults(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(disks=True))
    world.wait_ready()
    claims = world.claims()

    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    status = world.wait_upgrade_code("Faulted")

    entry = _history(world)[0]
    assert entry["runningStatus"]["code"] == "Faulted"
    assert entry["error"]["code"] == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    failed = entry["progress"]["failedInstanceCount"]
    assert failed >= 1
    assert entry["rollbackInfo"]["successfullyRolledbackInstanceCount"] == failed
    assert entry["rollbackInfo"]["failedRolledbackInstanceCount"] == 0
    # Every instance is back on (or never left) the previous image and healthy.
    world.wait_ready()
    assert set(world.images().values()) == {"example.test/os:1.0.0"}
    assert status["currentImageVersion"] == "1.0.0"
    assert world.claims() == claims
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["UpgradeFaulted"]["status"] == "True"


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _marks(world: World) -> dict[str, dict]:
    """The upgrade mark of every instance that has one, by pod name."""
    annotations = {p.metadata.name: p.metadata.annotations or {} for p in world.pods()}
    return {
        name: json.loads(a[UPGRADE_MARK]) for name, a in annotations.items() if UPGRADE_MARK in a
    }


def test_bad_image_fails_fast_long_before_the_health_timeout(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=5, health_timeout="PT120S"))
    world.wait_ready(capacity=5)

    published = time.monotonic()
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    world.wait_upgrade_code("Faulted", timeout=60)
    elapsed = time.monotonic() - published

    # Rolled back on the pull failure, not after the 120 s window.
    assert elapsed < 30, f"faulted only after {elapsed:.1f}s"
    entry = _history(world)[0]
    took = _stamp(entry["runningStatus"]["endTime"]) - _stamp(entry["runningStatus"]["startTime"])
    assert took < timedelta(seconds=30)
    # One instance per batch (20 % of 5): the first one failed, and it says why.
    [detail] = entry["error"]["details"]
    assert detail["code"] == "ImagePullBackOff"
    assert detail["target"].startswith("instance ")
    assert detail["message"] == "ImagePullBackOff; rolled back to 1.0.0"
    assert entry["rollbackInfo"]["successfullyRolledbackInstanceCount"] == 1
    world.wait_ready(capacity=5)
    assert set(world.images().values()) == {"example.test/os:1.0.0"}


def test_never_ready_image_is_rolled_back_after_the_health_timeout(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=5, health_timeout="PT3S"))
    world.wait_ready(capacity=5)

    published = time.monotonic()
    world.publish("2.0.0", image="example.test/os:unready-2.0.0")
    # The first batch's instance, while it waits for health on the new image.
    [(upgrading, mark)] = eventually(
        lambda: list(_marks(world).items()), 30, interval=0.05, what="an instance on 2.0.0"
    )
    assert mark["phase"] == "Upgrading"
    patched = _stamp(mark["startedAt"])
    world.wait_upgrade_code("Faulted", timeout=60)
    elapsed = time.monotonic() - published

    # Running but never ready is no reason to fail fast: the whole window was waited out.
    back = _marks(world)[upgrading]
    assert back["phase"] == "RollingBack"
    assert _stamp(back["startedAt"]) - patched >= timedelta(seconds=3)
    assert elapsed >= 3
    entry = _history(world)[0]
    [detail] = entry["error"]["details"]
    assert detail["code"] == "HealthTimeout"
    assert detail["target"] == f"instance {upgrading.removeprefix('web-')}"
    assert detail["message"] == "HealthTimeout (NotReady); rolled back to 1.0.0"
    world.wait_ready(capacity=5)
    assert set(world.images().values()) == {"example.test/os:1.0.0"}


def _zones(world: World) -> dict[int, str]:
    """Each instance's zone: the topology label of the node its pod runs on."""
    nodes = {n.metadata.name: n.metadata.labels for n in world.core.list_node().items}
    return {
        int(p.metadata.labels["scaleset.dev/instance-id"]): nodes[p.spec.node_name][ZONE]
        for p in world.pods()
    }


def _on(pod: client.V1Pod, image: str) -> bool:
    """Running `image` and ready: what the operator waits for before its next batch."""
    statuses = pod.status.container_statuses or []
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return bool(statuses) and statuses[0].image == image and ready


def test_batches_stay_in_one_zone(world: World) -> None:
    world.publish("1.0.0")
    # Batches of two (25 % of 9) over three zones: an odd count of instances in some zone,
    # so a batch that filled up across zones would show.
    policy = {"maxBatchInstancePercent": 25, "maxUnhealthyInstancePercent": 25}
    world.create(world.scaleset_body(capacity=9, rolling=policy))
    world.wait_ready(capacity=9)
    zones = _zones(world)
    assert set(zones.values()) == {"zone-1", "zone-2", "zone-3"}

    new = "example.test/os:1.1.0"
    events = PodEvents(world)
    events.start()
    try:
        world.publish("1.1.0")
        status = world.wait_upgrade_code("Completed")
    finally:
        seen = events.stop()

    patched_at: dict[int, str] = {}  # instance -> its upgrade mark's start: one per pass
    in_flight: set[int] = set()
    for pod in seen:
        iid = int(pod.metadata.labels["scaleset.dev/instance-id"])
        mark = json.loads((pod.metadata.annotations or {}).get(UPGRADE_MARK, "{}"))
        if mark.get("targetVersion") == "1.1.0":
            patched_at.setdefault(iid, mark["startedAt"])
        if pod.spec.containers[0].image == new and not _on(pod, new):
            in_flight.add(iid)
        else:
            in_flight.discard(iid)
        # Whatever is patched but not yet healthy on the new image lies in one zone.
        assert len({zones[i] for i in in_flight}) <= 1, (pod.metadata.resource_version, in_flight)

    batches: dict[str, set[int]] = {}
    for iid, started in patched_at.items():
        batches.setdefault(started, set()).add(iid)
    assert sorted(patched_at) == list(range(9))
    for batch in batches.values():
        assert len({zones[i] for i in batch}) == 1, batch
        assert len(batch) <= 2
    per_zone = [list(zones.values()).count(z) for z in ("zone-1", "zone-2", "zone-3")]
    assert (
        len(batches) == sum((n + 1) // 2 for n in per_zone) == status["upgradeRun"]["batchesDone"]
    )
    assert set(world.images().values()) == {new}


def test_an_upgrade_passes_over_a_protected_instance(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=5))
    world.wait_ready(capacity=5)
    protected = world.pods()[2]
    world.core.patch_namespaced_pod(
        "web-2", world.namespace, {"metadata": {"annotations": {ANNOTATION_PROTECT: "true"}}}
    )
    eventually(lambda: world.status().get("protectedInstances") == 1, 20, what="1 protected")

    world.publish("1.1.0")
    world.wait_upgrade_code("Completed")

    images = world.images()
    assert images.pop(2) == "example.test/os:1.0.0"
    assert set(images.values()) == {"example.test/os:1.1.0"}
    kept = world.pods()[2]
    assert kept.metadata.uid == protected.metadata.uid
    assert UPGRADE_MARK not in kept.metadata.annotations
    # Azure leaves a protected instance out of the upgrade: it is not even pending.
    assert _history(world)[0]["progress"] == {
        "successfulInstanceCount": 4,
        "failedInstanceCount": 0,
        "inProgressInstanceCount": 0,
        "pendingInstanceCount": 0,
    }
    world.wait_ready(capacity=5)


def test_faulted_version_is_not_retried_but_a_newer_one_is(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=5))
    world.wait_ready(capacity=5)
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    world.wait_upgrade_code("Faulted")
    assert world.status()["faultedVersions"] == ["2.0.0"]

    world.publish("2.1.0")
    world.wait_upgrade_code("Completed")
    history = _history(world)
    assert [h["targetImageReference"]["version"] for h in history] == ["2.1.0", "2.0.0"]
    assert set(world.images().values()) == {"example.test/os:2.1.0"}


def test_pre_start_gate_refuses_when_too_many_are_unhealthy(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body())
    world.wait_ready()
    for pod in ("web-0", "web-1", "web-2"):
        world.set_image(pod, "example.test/os:unready-1")
    eventually(lambda: world.status().get("readyInstances") == 7, 30, what="3 unready")

    world.publish("1.1.0")
    world.wait_upgrade_code("Faulted")
    entry = _history(world)[0]
    assert entry["error"]["code"] == "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
    assert entry["progress"]["successfulInstanceCount"] == 0
    assert "1.1.0" not in " ".join(world.images().values())


def test_refused_start_is_retried_once_the_set_is_healthy(world: World) -> None:
    """A health blip at publish time: the start is refused and recorded, the version is not
    quarantined, and the platform upgrades to it once the instances are healthy again."""
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=5))
    world.wait_ready(capacity=5)
    blip = ("web-0", "web-1")  # 40 % unhealthy, above the 20 % allowed
    for pod in blip:
        world.set_image(pod, "example.test/os:unready-1")
    eventually(lambda: world.status().get("readyInstances") == 3, 30, what="2 unready")

    world.publish("1.1.0")
    status = world.wait_upgrade_code("Faulted")
    refusal = _history(world)[0]
    assert refusal["error"]["code"] == "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
    assert "the platform tries 1.1.0 again at" in refusal["error"]["message"]
    assert not status.get("faultedVersions")
    assert status["pendingUpgrade"]["version"] == "1.1.0"
    faulted = next(c for c in status["conditions"] if c["type"] == "UpgradeFaulted")
    assert faulted["reason"] == "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
    assert faulted["message"] == refusal["error"]["message"]

    for pod in blip:
        world.set_image(pod, "example.test/os:1.0.0")
    status = world.wait_upgrade_code("Completed", timeout=60)
    history = _history(world)
    runs = [(h["targetImageReference"]["version"], h["runningStatus"]["code"]) for h in history]
    assert runs == [("1.1.0", "Completed"), ("1.1.0", "Faulted")]
    assert history[1]["error"]["code"] == refusal["error"]["code"]
    assert history[0]["progress"]["successfulInstanceCount"] == 5
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    assert not status.get("faultedVersions")
    assert not status.get("pendingUpgrade")


def test_disruption_mid_upgrade_stops_after_the_batch(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(rolling={"pauseTimeBetweenBatches": "PT4S"}))
    world.wait_ready()

    world.publish("1.1.0")

    def first_batch_done() -> bool:
        run = world.status().get("upgradeRun") or {}
        return run.get("batchesDone", 0) >= 1

    eventually(first_batch_done, 30, what="first batch done")
    upgraded = {i for i, img in world.images().items() if img.endswith("1.1.0")}
    others = [i for i in range(10) if i not in upgraded][:3]
    for i in others:
        world.set_image(f"web-{i}", "example.test/os:unready-1")

    world.wait_upgrade_code("Faulted", timeout=60)
    entry = _history(world)[0]
    assert entry["error"]["code"] == "MaxUnhealthyInstancePercentExceededInRollingUpgrade"
    assert entry["progress"]["successfulInstanceCount"] == len(upgraded)


def test_manual_start_with_bad_image_never_rolls_back(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(automatic=False))
    world.wait_ready()
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")

    world.request("start")
    world.wait_upgrade_code("Faulted")
    entry = _history(world)[0]
    assert entry["startedBy"] == "User"
    assert "rollbackInfo" not in entry
    failed = entry["progress"]["failedInstanceCount"]
    assert failed >= 1
    # The failed instances keep the new (bad) image: a manual upgrade does not roll back.
    bad = [i for i, img in world.images().items() if "bad-2.0.0" in img]
    assert len(bad) == failed


def test_manual_start_skips_instances_already_on_target(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=4, automatic=False))
    world.wait_ready(capacity=4)
    world.publish("1.1.0")
    world.set_image("web-0", "example.test/os:1.1.0")
    world.wait_ready(capacity=4)
    world.request("start")
    world.wait_upgrade_code("Completed")
    entry = _history(world)[0]
    assert entry["startedBy"] == "User"
    assert entry["progress"]["successfulInstanceCount"] == 3


def test_cancel_stops_after_in_flight_instances_settle(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(automatic=False, rolling={"pauseTimeBetweenBatches": "PT30S"}))
    world.wait_ready()
    world.publish("1.1.0")
    world.request("start")
    eventually(lambda: (world.status().get("upgradeRun") or {}).get("batchesDone", 0) >= 1, 30)
    world.request("cancel")
    status = world.wait_upgrade_code("Cancelled")
    assert status["rollingUpgrade"]["runningStatus"]["lastAction"] == "Cancel"
    on_new = [i for i, img in world.images().items() if img.endswith("1.1.0")]
    assert 0 < len(on_new) < 10
    assert _history(world)[0]["runningStatus"]["code"] == "Cancelled"


def test_excluded_and_unreplicated_versions_are_never_rolled_out(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=3))
    world.wait_ready(capacity=3)
    world.publish("3.0.0", excludeFromLatest=True)
    world.publish("4.0.0", targetRegions=["eastus"])
    world.publish("1.5.0", targetRegions=["westeurope"])
    world.wait_upgrade_code("Completed")
    assert set(world.images().values()) == {"example.test/os:1.5.0"}
    assert [h["targetImageReference"]["version"] for h in _history(world)] == ["1.5.0"]


def test_a_running_upgrade_does_not_switch_to_a_version_younger_than_the_minimum_age(
    world: World,
) -> None:
    world.publish("1.0.0")
    body = world.scaleset_body(
        capacity=2,
        rolling={
            "maxBatchInstancePercent": 50,
            "maxUnhealthyInstancePercent": 50,
            "pauseTimeBetweenBatches": "PT4S",
        },
    )
    body["spec"]["upgradePolicy"]["automaticUpgradeSchedule"] = {"minimumImageAge": "PT20S"}
    world.create(body)
    world.wait_ready(capacity=2)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    world.publish("1.1.0", publishedDate=an_hour_ago.strftime("%Y-%m-%dT%H:%M:%SZ"))
    world.wait_upgrade_code("RollingForward", "Completed")
    # Published now: too young for the batch after the pause, old enough 20 s later.
    world.publish("1.2.0")

    eventually(lambda: len(_history(world)) == 2, 90, what="a second upgrade, to 1.2.0")
    world.wait_upgrade_code("Completed")

    newer, first = _history(world)
    assert first["targetImageReference"]["version"] == "1.1.0"
    assert first["runningStatus"]["code"] == "Completed"
    assert first["progress"]["successfulInstanceCount"] == 2
    assert newer["targetImageReference"]["version"] == "1.2.0"
    assert newer["startedBy"] == "Platform"
    assert set(world.images().values()) == {"example.test/os:1.2.0"}


def test_operator_killed_mid_batch_resumes_and_completes(
    world: World, operator: OperatorProcess
) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(rolling={"pauseTimeBetweenBatches": "PT1S"}, disks=True))
    world.wait_ready()
    claims = world.claims()
    world.publish("1.1.0")
    eventually(lambda: (world.status().get("upgradeRun") or {}).get("batch"), 30, interval=0.05)
    operator.kill()
    operator.start()
    eventually(lambda: (world.status().get("upgradeRun") or {}).get("batchesDone", 0) >= 2, 60)
    operator.kill()
    operator.start()
    world.wait_upgrade_code("Completed")
    history = _history(world)
    assert len(history) == 1
    assert history[0]["progress"]["successfulInstanceCount"] == 10
    assert history[0]["progress"]["failedInstanceCount"] == 0
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    assert world.claims() == claims


def test_max_surge_creates_new_instances_before_removing_old_ones(world: World) -> None:
    world.publish("1.0.0")
    world.create(
        world.scaleset_body(capacity=5, rolling={"maxSurge": True, "enableCrossZoneUpgrade": True})
    )
    world.wait_ready(capacity=5)
    old = set(world.images())

    world.publish("1.1.0")
    world.wait_upgrade_code("Completed")
    eventually(lambda: len(world.images()) == 5, 30, what="old instances removed")
    world.wait_ready(capacity=5)
    images = world.images()
    assert set(images.values()) == {"example.test/os:1.1.0"}
    # New instances, new ids (as new VMs get); none still marked as a surge.
    assert not set(images) & old
    assert all("scaleset.dev/surge-for" not in (p.metadata.annotations or {}) for p in world.pods())
    assert _history(world)[0]["progress"]["successfulInstanceCount"] == 5


def test_max_surge_with_a_bad_image_keeps_the_old_instances(world: World) -> None:
    world.publish("1.0.0")
    world.create(
        world.scaleset_body(capacity=5, rolling={"maxSurge": True, "enableCrossZoneUpgrade": True})
    )
    world.wait_ready(capacity=5)
    old = world.images()
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    world.wait_upgrade_code("Faulted")
    eventually(lambda: world.images() == old, 30, what="surge instances removed")
    entry = _history(world)[0]
    assert entry["rollbackInfo"]["successfullyRolledbackInstanceCount"] == 1
    world.wait_ready(capacity=5)


def test_load_balancer_health_comes_from_endpoint_slices(world: World) -> None:
    world.core.create_namespaced_service(
        world.namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    world.publish("1.0.0")
    world.create(
        world.scaleset_body(
            capacity=4, healthProbe={"source": "LoadBalancer", "serviceName": "web"}
        )
    )
    # Healthy only once the Service's EndpointSlices list the instances as ready.
    world.wait_ready(capacity=4)
    world.publish("1.1.0")
    world.wait_upgrade_code("Completed")
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    assert _history(world)[0]["progress"]["successfulInstanceCount"] == 4


def test_endpoints_turning_ready_without_a_pod_change_are_noticed(world: World) -> None:
    # The Service selects no instance at first: Ready pods, no ready endpoints, not healthy.
    world.core.create_namespaced_service(
        world.namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web", "tier": "none"}, "ports": [{"port": 80}]},
        },
    )
    world.publish("1.0.0")
    world.create(
        world.scaleset_body(
            capacity=3, healthProbe={"source": "LoadBalancer", "serviceName": "web"}
        )
    )
    eventually(lambda: world.healthy_count() == 3, 60, what="3 Ready pods")
    eventually(
        lambda: world.status().get("capacity") == 3 and world.status().get("readyInstances") == 0,
        30,
        what="3 instances, none healthy",
    )
    # Only the Service changes: its EndpointSlices list the pods as ready, and no pod event
    # follows. The operator hears of it through its EndpointSlice watch alone.
    world.core.patch_namespaced_service(
        "web", world.namespace, {"spec": {"selector": {"app": "web", "tier": None}}}
    )
    world.wait_ready(capacity=3, timeout=30)
