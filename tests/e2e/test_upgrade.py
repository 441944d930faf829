"""The automatic OS image upgrade on a real API server, with kwok playing the kubelets.

Image conventions of the simulated kubelet: a tag starting with `bad` never pulls
(ImagePullBackOff), `unready` runs but never becomes Ready.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.support import OperatorProcess, World, eventually


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
