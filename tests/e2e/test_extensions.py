"""The OS upgrade and its rollback re-run the extensions (init containers) in order and keep
the data disks, on a real API server with kwok as the kubelet.

Init containers run only when a pod starts, so an instance with extensions is upgraded by
deleting its pod and bringing it back under the same name and instance id; the simulated
kubelet reports a new pod's init containers completed in their declared order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from tests.e2e.support import OperatorProcess, World, eventually

EXTENSIONS = ["configure", "monitoring-agent"]
UPGRADE_MARK = "scaleset.dev/os-upgrade"


def _body(world: World, capacity: int) -> dict[str, Any]:
    body = world.scaleset_body(capacity=capacity, disks=True)
    body["spec"]["template"]["spec"]["initContainers"] = [
        {"name": name, "image": f"example.test/{name}:1"} for name in EXTENSIONS
    ]
    return body


def _instances(world: World) -> dict[int, client.V1Pod]:
    return {
        int(p.metadata.labels["scaleset.dev/instance-id"]): p
        for p in world.pods()
        if p.metadata.deletion_timestamp is None
    }


def _seconds(at: datetime) -> datetime:
    # The kubelet's timestamps have whole seconds.
    return at.replace(microsecond=0)


def _assert_extensions_ran_for(pod: client.V1Pod, since: datetime) -> None:
    """This pod ran every extension, in declared order, to completion, after `since` and
    before its OS container started."""
    statuses = pod.status.init_container_statuses or []
    assert [s.name for s in statuses] == [c.name for c in pod.spec.init_containers] == EXTENSIONS
    (os_status,) = pod.status.container_statuses
    assert os_status.state.running is not None
    os_started = os_status.state.running.started_at
    previous_finish = _seconds(since)
    for s in statuses:
        done = s.state.terminated
        assert done is not None, f"{s.name} did not run to completion"
        assert (done.reason, done.exit_code) == ("Completed", 0)
        assert previous_finish <= done.started_at <= done.finished_at <= os_started
        previous_finish = done.finished_at


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_os_upgrade_reruns_extensions_in_order_and_keeps_name_id_and_disks(world: World) -> None:
    world.publish("1.0.0")
    world.create(_body(world, capacity=3))
    world.wait_ready(capacity=3)
    before = _instances(world)
    claims = world.claims()
    assert sorted(claims) == ["data-web-0", "data-web-1", "data-web-2"]

    world.publish("1.1.0")
    status = world.wait_upgrade_code("Completed")
    world.wait_ready(capacity=3)

    started = _parse(status["rollingUpgrade"]["runningStatus"]["startTime"])
    after = _instances(world)
    assert sorted(after) == [0, 1, 2]
    for iid, pod in after.items():
        old = before[iid]
        assert pod.metadata.name == old.metadata.name == f"web-{iid}"
        assert pod.metadata.uid != old.metadata.uid, "a new pod: its extensions ran again"
        assert pod.spec.containers[0].image == "example.test/os:1.1.0"
        _assert_extensions_ran_for(pod, started)
        # The mark that health judgement, rollback and a restarted operator rely on.
        mark = json.loads(pod.metadata.annotations[UPGRADE_MARK])
        assert mark["previousImage"] == "example.test/os:1.0.0"
        assert mark["run"] == status["rollingUpgrade"]["runningStatus"]["startTime"]
    assert world.claims() == claims, "the data disks are the same PVCs"
    entry = world.status()["osUpgradeHistory"][0]
    assert entry["progress"]["successfulInstanceCount"] == 3


def test_rollback_reruns_extensions_on_the_previous_image(world: World) -> None:
    world.publish("1.0.0")
    world.create(_body(world, capacity=3))
    world.wait_ready(capacity=3)
    before = _instances(world)
    claims = world.claims()

    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    status = world.wait_upgrade_code("Faulted")
    world.wait_ready(capacity=3)

    entry = status["osUpgradeHistory"][0]
    assert entry["rollbackInfo"]["successfullyRolledbackInstanceCount"] == 1
    assert entry["rollbackInfo"]["failedRolledbackInstanceCount"] == 0
    started = _parse(status["rollingUpgrade"]["runningStatus"]["startTime"])
    after = _instances(world)
    assert {iid: p.spec.containers[0].image for iid, p in after.items()} == {
        0: "example.test/os:1.0.0",
        1: "example.test/os:1.0.0",
        2: "example.test/os:1.0.0",
    }
    # The one-instance batch was upgraded and rolled back, each time as a new pod.
    (iid,) = [i for i, p in after.items() if UPGRADE_MARK in (p.metadata.annotations or {})]
    rolled_back = after[iid]
    assert rolled_back.metadata.name == f"web-{iid}"
    assert rolled_back.metadata.uid != before[iid].metadata.uid
    _assert_extensions_ran_for(rolled_back, started)
    mark = json.loads(rolled_back.metadata.annotations[UPGRADE_MARK])
    assert (mark["phase"], mark["previousImage"]) == ("RollingBack", "example.test/os:1.0.0")
    # The instances the run never reached are the same pods as before.
    untouched = sorted(set(after) - {iid})
    assert [after[i].metadata.uid for i in untouched] == [before[i].metadata.uid for i in untouched]
    assert world.claims() == claims


def test_update_instances_to_a_pinned_version_reruns_extensions(world: World) -> None:
    """Manual mode: a new pinned version reaches an instance only through update-instances,
    and that reimage re-runs the extensions too."""
    world.publish("1.0.0")
    world.publish("1.1.0")
    body = _body(world, capacity=2)
    body["spec"]["imageReference"]["version"] = "1.0.0"
    body["spec"]["upgradePolicy"]["mode"] = "Manual"
    body["spec"]["upgradePolicy"]["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] = False
    world.create(body)
    world.wait_ready(capacity=2)
    before = _instances(world)
    claims = world.claims()

    reference = dict(body["spec"]["imageReference"], version="1.1.0")
    world.patch_spec({"imageReference": reference})
    asked = datetime.now(UTC)
    world.request("update-instances", instance_ids=["1"])
    eventually(
        lambda: world.images() == {0: "example.test/os:1.0.0", 1: "example.test/os:1.1.0"},
        30,
        what="instance 1 on the pinned version",
    )
    world.wait_ready(capacity=2)
    after = _instances(world)
    assert after[0].metadata.uid == before[0].metadata.uid
    assert after[1].metadata.name == "web-1"
    assert after[1].metadata.uid != before[1].metadata.uid
    _assert_extensions_ran_for(after[1], asked)
    assert world.claims() == claims


def test_operator_killed_while_a_recreated_instance_starts_resumes_from_its_mark(
    world: World, operator: OperatorProcess
) -> None:
    """The recreated pod carries the upgrade mark, so a restarted operator judges it against
    the run it belongs to instead of starting it over."""
    world.publish("1.0.0")
    body = _body(world, capacity=3)
    # Long enough a start that the operator dies while the new pod is not ready yet.
    body["spec"]["template"]["metadata"]["annotations"] = {"sim.scaleset.dev/start-delay": "3s"}
    world.create(body)
    world.wait_ready(capacity=3)
    claims = world.claims()
    world.publish("1.1.0")

    def recreated() -> client.V1Pod | None:
        marked = [p for p in _instances(world).values() if UPGRADE_MARK in p.metadata.annotations]
        return marked[0] if marked else None

    first = eventually(recreated, 60, interval=0.05, what="a pod recreated with its mark")
    operator.kill()
    operator.start()
    status = world.wait_upgrade_code("Completed")
    world.wait_ready(capacity=3)
    run_start = status["rollingUpgrade"]["runningStatus"]["startTime"]
    after = _instances(world)
    assert after[_iid(first)].metadata.uid == first.metadata.uid, "judged, not recreated again"
    for pod in after.values():
        assert json.loads(pod.metadata.annotations[UPGRADE_MARK])["run"] == run_start
    assert status["osUpgradeHistory"][0]["progress"]["successfulInstanceCount"] == 3
    assert len(status["osUpgradeHistory"]) == 1
    assert world.claims() == claims


def _iid(pod: client.V1Pod) -> int:
    return int(pod.metadata.labels["scaleset.dev/instance-id"])
