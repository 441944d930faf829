"""Scenario tables for the planner, pass by pass (after openkruise's cloneset_sync_utils_test).

Each pass plans against the world the previous pass left behind: the simulated kubelet
(tests/unit/simworld.py) has started the containers in between, and time has moved by the
step's `advance`. A table row says what one pass must do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from scaleset_operator.models.instance import UpgradePhase
from scaleset_operator.models.status import ErrorCode, RunningStatusCode, StartedBy
from scaleset_operator.planner.actions import CreateInstance, DeleteInstance, SetInstanceImage
from scaleset_operator.planner.conditions import IMAGE_RESOLVED, READY, UPGRADE_FAULTED, UPGRADING
from scaleset_operator.planner.observed import Plan
from scaleset_operator.planner.timefmt import stamp
from tests.unit.simworld import (
    FINISHED,
    LOCATION,
    Sim,
    World,
    image_of,
    spec_of,
    tag_of,
    version_entry,
)

Progress = tuple[int, int, int, int]


def iid(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


@dataclass(frozen=True)
class Pass:
    """What one pass did, in the terms a table row speaks."""

    sets: list[tuple[int, str]]
    creates: list[tuple[int, str]]
    deletes: list[tuple[int, str]]
    batch: list[int] | None
    progress: Progress | None
    code: str | None
    events: list[str]


def seen(plan: Plan) -> Pass:
    run = plan.status.upgrade_run
    rolling = plan.status.rolling_upgrade
    progress = None
    if rolling is not None and rolling.progress is not None:
        p = rolling.progress
        progress = (
            p.successful_instance_count,
            p.failed_instance_count,
            p.in_progress_instance_count,
            p.pending_instance_count,
        )
    return Pass(
        sets=[
            (iid(a.name), tag_of(a.container_image))
            for a in plan.actions
            if isinstance(a, SetInstanceImage)
        ],
        creates=[
            (a.instance_id, tag_of(a.container_image))
            for a in plan.actions
            if isinstance(a, CreateInstance)
        ],
        deletes=[(iid(a.name), a.reason) for a in plan.actions if isinstance(a, DeleteInstance)],
        batch=run.batch.instance_ids if run and run.batch else None,
        progress=progress,
        code=run.code.value if run else None,
        events=[e.reason for e in plan.events],
    )


def settled(capacity: int = 10, *, world: World | None = None, **spec: Any) -> Sim:
    """A scale set on 1.0.0, every instance created and ready."""
    sim = Sim(
        spec=spec_of(capacity=capacity, **spec),
        catalog=[version_entry("1.0.0")],
        world=world or World(),
    )
    sim.settle()
    assert sim.world.on("1.0.0") == list(range(capacity))
    return sim


def until_started(sim: Sim, *, kubelet: bool = True, limit: int = 30) -> Plan:
    """Pass after pass until the one that starts an upgrade; returns that pass."""
    for _ in range(limit):
        plan = sim.step(kubelet=kubelet)
        if plan.status.upgrade_run is not None and "RollingUpgradeStarted" in seen(plan).events:
            return plan
    raise AssertionError("no upgrade started")


def finish(sim: Sim, *, limit: int = 200, advance: float = 1.0) -> list[Pass]:
    passes = []
    for _ in range(limit):
        passes.append(seen(sim.step(advance)))
        if sim.code in FINISHED:
            return passes
    raise AssertionError(f"upgrade still {sim.code} after {limit} passes")


# --- instances and capacity ------------------------------------------------------------------


def test_creation_of_capacity_instances() -> None:
    sim = Sim(spec=spec_of(capacity=3), catalog=[version_entry("1.0.0")])
    # pass 1/3: create all three on the model image, nothing is ready yet
    first = sim.step()
    assert seen(first).creates == [(0, "1.0.0"), (1, "1.0.0"), (2, "1.0.0")]
    assert seen(first).events == ["ScaledOut"]
    created = [a for a in first.actions if isinstance(a, CreateInstance)]
    assert {a.image_urn for a in created} == {"Canonical:ubuntu-24_04-lts:server:1.0.0"}
    assert all(a.upgrade is None for a in created)
    assert first.status.ready_instances == 0
    assert first.status.model_hash is not None
    assert first.status.current_image_version == "1.0.0"
    ready = next(c for c in first.status.conditions if c.type == READY)
    assert ready.status == "False"
    # pass 2/3: the kubelet reported them: nothing to do, all ready
    second = sim.step()
    assert second.actions == ()
    assert second.status.ready_instances == 3
    assert second.status.capacity == 3
    assert second.status.latest_model_instances == 3
    ready = next(c for c in second.status.conditions if c.type == READY)
    assert (ready.status, ready.reason) == ("True", "AllInstancesReady")
    # pass 3/3: steady state, the status does not change at all
    third = sim.step()
    assert third.actions == ()
    assert third.status == second.status
    assert third.requeue_after is None
    for condition in third.status.conditions:
        assert condition.observed_generation == sim.generation


def test_scale_out_and_in_remove_the_highest_ids_and_never_protected_ones() -> None:
    sim = settled(5)
    sim.world.protected.add(3)
    # step 1/4: out to 8 with the lowest free ids
    sim.set_spec(capacity=8)
    assert seen(sim.step()).creates == [(5, "1.0.0"), (6, "1.0.0"), (7, "1.0.0")]
    sim.settle()
    # step 2/4: in to 2: highest ids first, protected 3 stays and counts toward capacity
    sim.set_spec(capacity=2)
    scale_in = seen(sim.step())
    assert [i for i, _ in scale_in.deletes] == [7, 6, 5, 4, 2, 1]
    assert {reason for _, reason in scale_in.deletes} == {"scale in"}
    assert "ScaledIn" in scale_in.events
    sim.settle()
    assert sim.world.ids() == [0, 3]
    assert sim.status.protected_instances == 1
    # step 3/4: in to 0: the protected instance holds, and says so
    sim.set_spec(capacity=0)
    to_zero = seen(sim.step())
    assert to_zero.deletes == [(0, "scale in")]
    assert "ScaleInLimited" in to_zero.events
    sim.settle()
    assert sim.world.ids() == [3]
    # step 4/4: out to 4 fills the gaps below the protected instance
    sim.set_spec(capacity=4)
    assert seen(sim.step()).creates == [(0, "1.0.0"), (1, "1.0.0"), (2, "1.0.0")]
    sim.settle()
    assert sim.world.ids() == [0, 1, 2, 3]


def test_failed_instances_are_recreated() -> None:
    sim = settled(3)
    sim.world.instances[1] = sim.world.instances[1].model_copy(update={"phase": "Failed"})
    first = seen(sim.step())
    assert first.deletes == [(1, "instance failed")]
    assert "InstanceRecreated" in first.events
    assert seen(sim.step()).creates == [(1, "1.0.0")]


# --- the automatic OS upgrade ----------------------------------------------------------------


def test_clean_platform_upgrade_of_ten_instances_in_five_batches() -> None:
    sim = settled(10, automatic=True)
    sim.publish(version_entry("1.1.0"))
    # the new version is seen; the upgrade waits out the configured delay (5 s)
    detect = sim.step()
    assert seen(detect).events == ["NewImageVersion"]
    assert detect.actions == ()
    assert detect.requeue_after == 5.0
    assert detect.status.pending_upgrade is not None
    assert detect.status.pending_upgrade.version == "1.1.0"
    for left in (4.0, 3.0, 2.0, 1.0):
        waiting = sim.step()
        assert waiting.actions == ()
        assert waiting.requeue_after == left
        assert waiting.status.upgrade_run is None

    table: list[tuple[str, list[int], Progress]] = [
        ("batch 1/5", [0, 1], (0, 0, 2, 8)),
        ("batch 2/5", [2, 3], (2, 0, 2, 6)),
        ("batch 3/5", [4, 5], (4, 0, 2, 4)),
        ("batch 4/5", [6, 7], (6, 0, 2, 2)),
        ("batch 5/5", [8, 9], (8, 0, 2, 0)),
    ]
    for label, batch, progress in table:
        now = stamp(sim.now)
        plan = sim.step()
        got = seen(plan)
        assert got.sets == [(i, "1.1.0") for i in batch], label
        assert got.batch == batch, label
        assert got.progress == progress, label
        assert got.code == "RollingForward", label
        assert "BatchStarted" in got.events, label
        started = next(e for e in plan.events if e.reason == "BatchStarted")
        assert started.message.startswith(label), (label, started.message)
        run = plan.status.upgrade_run
        assert run is not None
        assert plan.requeue_after == 60.0  # the health timeout of the batch
        for action in plan.actions:
            assert isinstance(action, SetInstanceImage)
            assert action.image_urn == "Canonical:ubuntu-24_04-lts:server:1.1.0"
            mark = action.upgrade
            assert mark is not None
            assert mark.phase is UpgradePhase.UPGRADING
            assert mark.previous_image == image_of("1.0.0")
            assert mark.previous_version == "1.0.0"
            assert mark.target_version == "1.1.0"
            assert mark.run == run.start_time
            assert mark.started_at == now

    done = sim.step()
    got = seen(done)
    assert got.code == "Completed"
    assert got.progress == (10, 0, 0, 0)
    assert got.events == ["BatchCompleted", "RollingUpgradeCompleted"]
    assert sim.world.on("1.1.0") == list(range(10))
    status = done.status
    assert status.current_image_version == "1.1.0"
    assert status.pending_upgrade is None
    assert status.upgrade_state == "Completed"
    (entry,) = status.os_upgrade_history
    assert entry.started_by is StartedBy.PLATFORM
    assert entry.running_status is not None
    assert entry.running_status.end_time == stamp(sim.now - timedelta(seconds=1))
    assert entry.target_image_reference is not None
    assert entry.target_image_reference.version == "1.1.0"
    assert entry.rollback_info is not None
    assert entry.rollback_info.successfully_rolledback_instance_count == 0
    assert entry.error is None
    upgrading = next(c for c in status.conditions if c.type == UPGRADING)
    assert (upgrading.status, upgrading.reason) == ("False", "Completed")
    # nothing more to do, and the same version never starts a second upgrade
    for _ in range(10):
        assert sim.step().actions == ()
    assert len(sim.status.os_upgrade_history) == 1


def test_no_upgrade_without_enable_automatic_os_upgrade() -> None:
    sim = settled(4, automatic=False)
    sim.publish(version_entry("1.1.0"))
    for _ in range(20):
        plan = sim.step()
        assert plan.actions == ()
        assert plan.status.pending_upgrade is None
    assert sim.run is None


def test_turning_automatic_upgrades_off_drops_the_pending_upgrade() -> None:
    sim = settled(4)
    sim.publish(version_entry("1.1.0"))
    assert sim.step().status.pending_upgrade is not None
    sim.set_spec(capacity=4, automatic=False)
    assert sim.step().status.pending_upgrade is None
    for _ in range(10):
        assert sim.step().actions == ()
    assert sim.run is None


def test_a_stale_ready_condition_does_not_finish_a_batch() -> None:
    """Until the kubelet reports the new container, the old Ready means nothing."""
    sim = settled(5)
    sim.publish(version_entry("1.1.0"))
    until_started(sim, kubelet=False)
    stale = sim.world.instances[0]
    assert stale.ready
    assert stale.os_status is not None
    assert tag_of(stale.os_status.image) == "1.0.0"
    waiting = seen(sim.step(kubelet=False))
    assert waiting.batch == [0]
    assert waiting.progress == (0, 0, 1, 4)
    assert "BatchCompleted" not in waiting.events
    reported = seen(sim.step())
    assert reported.batch == [0]
    assert seen(sim.step()).progress == (1, 0, 1, 3)


@pytest.mark.parametrize(
    ("tag", "reason"),
    [("bad-1.1.0", "ImagePullBackOff"), ("crash-1.1.0", "CrashLoopBackOff")],
)
def test_bad_image_fails_fast_rolls_back_and_faults(tag: str, reason: str) -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0", tag))
    start = seen(until_started(sim))
    assert start.sets == [(0, tag), (1, tag)]

    # batch 1: both fail at once (no need to wait out the health timeout) and go back
    failing = sim.step()
    got = seen(failing)
    assert got.sets == [(0, "1.0.0"), (1, "1.0.0")]
    assert got.events.count("InstanceUpgradeFailed") == 2
    assert got.events.count("InstanceRollingBack") == 2
    assert got.code == "RollingForward"
    assert got.progress is not None
    assert (got.progress[0], got.progress[1], got.progress[3]) == (0, 2, 8)
    for action in failing.actions:
        assert isinstance(action, SetInstanceImage)
        assert action.upgrade is not None
        assert action.upgrade.phase is UpgradePhase.ROLLING_BACK
        assert action.image_urn == "Canonical:ubuntu-24_04-lts:server:1.0.0"

    # the rolled-back instances are healthy again: the run faults on the upgraded budget
    faulted = sim.step()
    got = seen(faulted)
    assert got.code == "Faulted"
    assert got.sets == []
    assert got.events.count("InstanceRolledBack") == 2
    assert "RollingUpgradeFaulted" in got.events
    assert got.progress == (0, 2, 0, 8)  # pending: the instances the run never reached
    assert sim.world.on("1.0.0") == list(range(10))
    status = faulted.status
    (entry,) = status.os_upgrade_history
    assert entry.error is not None
    assert entry.error.code == ErrorCode.UPGRADED_UNHEALTHY.value
    assert [(d.target, d.code) for d in entry.error.details or []] == [
        ("instance 0", reason),
        ("instance 1", reason),
    ]
    assert entry.rollback_info is not None
    assert entry.rollback_info.successfully_rolledback_instance_count == 2
    assert entry.rollback_info.failed_rolledback_instance_count == 0
    assert entry.rollback_info.rollback_error is None
    assert status.faulted_versions == ["1.1.0"]
    assert status.current_image_version == "1.0.0"
    assert status.model_image is not None
    assert status.model_image.version == "1.0.0"
    condition = next(c for c in status.conditions if c.type == UPGRADE_FAULTED)
    assert (condition.status, condition.reason) == ("True", ErrorCode.UPGRADED_UNHEALTHY.value)

    # a faulted version is not retried automatically, and new instances get the old image
    sim.set_spec(capacity=11)
    assert seen(sim.step()).creates == [(10, "1.0.0")]
    for _ in range(30):
        assert "RollingUpgradeStarted" not in seen(sim.step()).events
    assert len(sim.status.os_upgrade_history) == 1


def test_unready_image_waits_out_the_health_timeout() -> None:
    sim = settled(5, health_timeout="PT30S")
    sim.publish(version_entry("1.1.0", "unready-1.1.0"))
    until_started(sim)
    for waited in range(1, 30, 5):
        plan = sim.step(5)
        assert plan.actions == ()
        assert plan.requeue_after == pytest.approx(30 - waited)
    # 31 s after the batch started: past the deadline
    timed_out = sim.step()
    assert seen(timed_out).sets == [(0, "1.0.0")]
    run = timed_out.status.upgrade_run
    assert run is not None
    assert run.failure_reasons == {"0": "HealthTimeout (NotReady)"}


def test_some_failures_within_budget_complete_with_an_error() -> None:
    sim = settled(10, health_timeout="PT10S", rolling={"maxUnhealthyUpgradedInstancePercent": 50})
    sim.world.disrupted.add(3)  # unhealthy whatever image it runs
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    passes = finish(sim, advance=2)
    assert passes[-1].code == "Completed"
    run = sim.run
    assert run is not None
    assert run.failed == [3]
    assert run.rollback_failed == [3]
    assert sorted(run.succeeded) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    entry = sim.status.os_upgrade_history[0]
    assert entry.error is not None
    assert entry.error.code == ErrorCode.FAILED_UPGRADED_VMS.value
    assert entry.progress is not None
    assert entry.progress.successful_instance_count == 9
    assert entry.progress.failed_instance_count == 1
    assert entry.rollback_info is not None
    assert entry.rollback_info.failed_rolledback_instance_count == 1
    assert entry.rollback_info.rollback_error is not None
    assert sim.world.tags()[3] == "1.0.0"
    # With one instance unhealthy the budget allows one healthy instance per batch.
    sizes = [len(p.batch) for p in passes if p.batch and "BatchStarted" in p.events]
    assert sizes[1:] == [1] * len(sizes[1:])


def test_user_started_upgrade_never_rolls_back() -> None:
    """Azure: a manually triggered OS upgrade has no automatic rollback."""
    sim = settled(10, automatic=False)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    for _ in range(5):
        assert sim.step().actions == ()
    sim.request("start")
    start = seen(sim.step())
    assert start.events[:2] == ["RollingUpgradeStarted", "BatchStarted"]
    assert start.sets == [(0, "bad-1.1.0"), (1, "bad-1.1.0")]
    faulted = seen(sim.step())
    assert faulted.sets == []
    assert faulted.code == "Faulted"
    assert "InstanceRollingBack" not in faulted.events
    assert sim.world.on("bad-1.1.0") == [0, 1]
    (entry,) = sim.status.os_upgrade_history
    assert entry.started_by is StartedBy.USER
    assert entry.rollback_info is None
    assert entry.error is not None
    assert entry.error.code == ErrorCode.UPGRADED_UNHEALTHY.value


def test_user_start_leaves_instances_already_on_latest_alone() -> None:
    sim = settled(4, automatic=False)
    sim.request("start")
    plan = sim.step()
    assert plan.actions == ()
    assert seen(plan).code == "Completed"
    assert seen(plan).progress == (0, 0, 0, 0)
    assert sim.world.on("1.0.0") == [0, 1, 2, 3]


def test_requests_are_handled_once() -> None:
    sim = settled(4, automatic=False)
    sim.publish(version_entry("1.1.0"))
    req = sim.request("start")
    finish(sim)
    assert req.id in sim.status.handled_requests
    sim.publish(version_entry("1.2.0"))
    for _ in range(10):
        assert sim.step().actions == ()  # the old start annotation is still there: ignored
    assert len(sim.status.os_upgrade_history) == 1


def test_start_while_running_and_cancel_with_nothing_running_are_refused() -> None:
    sim = settled(10, automatic=False)
    sim.request("cancel")
    assert "NoRollingUpgrade" in seen(sim.step()).events
    sim.publish(version_entry("1.1.0", "unready-1.1.0"))
    sim.request("start")
    sim.step()
    first = sim.run
    sim.request("start")
    assert "RollingUpgradeInProgress" in seen(sim.step()).events
    assert sim.run is not None
    assert first is not None
    assert sim.run.start_time == first.start_time


def test_pre_start_gate_refuses_an_unhealthy_scale_set() -> None:
    sim = settled(10)
    sim.world.disrupted |= {3, 4, 5}  # 30 % unhealthy, above the 20 % allowed
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    plan = until_started(sim)
    got = seen(plan)
    assert got.sets == []
    assert got.code == "Faulted"
    assert got.progress == (0, 0, 0, 10)
    assert "RollingUpgradeFaulted" in got.events
    (entry,) = plan.status.os_upgrade_history
    assert entry.error is not None
    assert entry.error.code == ErrorCode.UNHEALTHY_BEFORE.value
    assert "3 of 10 instances are unhealthy" in (entry.error.message or "")
    assert sim.world.on("1.0.0") == list(range(10))


def test_a_refused_start_is_retried_with_back_off_and_completes_once_healthy() -> None:
    """A refusal touched nothing: no quarantine; the platform tries the same version again,
    waiting longer each time, and one history entry stands for all the refusals."""
    sim = settled(10)
    sim.world.disrupted |= {3, 4, 5}
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    refused = until_started(sim)
    first = sim.now - timedelta(seconds=1)
    assert seen(refused).code == "Faulted"
    assert seen(refused).sets == []
    assert refused.status.faulted_versions == []
    assert refused.status.pending_upgrade is not None
    assert refused.status.pending_upgrade.version == "1.1.0"
    assert refused.requeue_after == pytest.approx(5)  # woken for the retry, not by chance
    condition = next(c for c in refused.status.conditions if c.type == UPGRADE_FAULTED)
    assert condition.reason == ErrorCode.UNHEALTHY_BEFORE.value
    assert f"tries 1.1.0 again at {stamp(first + timedelta(seconds=5))}" in condition.message

    # Still unhealthy: each retry is refused again, and the waits double.
    retries = []
    for _ in range(40):
        plan = sim.step()
        if "RollingUpgradeStarted" in seen(plan).events:
            assert seen(plan).code == "Faulted"
            retries.append(sim.now - timedelta(seconds=1))
    gaps = [(b - a).total_seconds() for a, b in zip([first, *retries], retries, strict=False)]
    assert gaps == [5, 10, 20]
    (entry,) = sim.status.os_upgrade_history
    assert entry.error is not None
    assert entry.error.code == ErrorCode.UNHEALTHY_BEFORE.value
    assert entry.running_status is not None
    assert entry.running_status.start_time == stamp(retries[-1])
    assert sim.world.on("1.0.0") == list(range(10))

    # Healthy again: the next retry upgrades the same version to the end.
    sim.world.disrupted.clear()
    until_started(sim, limit=60)
    finish(sim)
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.1.0") == list(range(10))
    done, refusal = sim.status.os_upgrade_history
    assert done.target_image_reference is not None
    assert done.target_image_reference.version == "1.1.0"
    assert done.error is None
    assert refusal.error is not None
    assert refusal.error.code == ErrorCode.UNHEALTHY_BEFORE.value
    assert sim.status.faulted_versions == []
    assert sim.status.pending_upgrade is None


def test_a_refused_user_start_is_not_quarantined_either() -> None:
    sim = settled(10, automatic=False)
    sim.world.disrupted |= {3, 4, 5}
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    sim.request("start")
    refused = sim.step()
    assert seen(refused).code == "Faulted"
    assert refused.status.faulted_versions == []
    # Automatic upgrades are off: nobody retries on their own, and nothing says one is due.
    assert refused.status.pending_upgrade is None
    run = refused.status.upgrade_run
    assert run is not None
    assert run.error is not None
    assert (run.error.message or "").endswith("nothing was upgraded")
    sim.world.disrupted.clear()
    for _ in range(20):
        assert "RollingUpgradeStarted" not in seen(sim.step()).events


def test_pre_start_gate_allows_exactly_the_budget() -> None:
    sim = settled(10)
    sim.world.disrupted |= {3, 4}  # 20 %: not above the limit
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    got = seen(until_started(sim))
    assert got.code == "RollingForward"
    assert got.sets == [(0, "1.1.0")]  # the budget is already spent: one instance only


def test_external_disruption_mid_upgrade_stops_after_the_current_batch() -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0"))
    until_started(sim)
    assert seen(sim.step()).batch == [2, 3]
    sim.world.disrupted |= {7, 8, 9}  # a node goes bad while batch 2 is in flight
    sim.tick(0)
    stopped = sim.step()
    got = seen(stopped)
    assert got.code == "Faulted"
    assert got.sets == []
    assert got.progress == (4, 0, 0, 6)
    assert got.events[0] == "BatchCompleted"
    entry = stopped.status.os_upgrade_history[0]
    assert entry.error is not None
    assert entry.error.code == ErrorCode.UNHEALTHY_DURING.value
    assert sim.world.on("1.1.0") == [0, 1, 2, 3]
    assert sim.world.on("1.0.0") == [4, 5, 6, 7, 8, 9]


def test_instances_that_pass_and_then_fail_count_towards_the_upgraded_budget() -> None:
    """Azure stops when too many upgraded instances *become* unhealthy: instances of the first
    batch that go unready while the third is in flight count, though they passed their check."""
    sim = settled(10)
    sim.publish(version_entry("1.1.0"))
    until_started(sim)
    assert seen(sim.step()).batch == [2, 3]
    assert seen(sim.step()).batch == [4, 5]
    sim.world.disrupted |= {0, 1}  # 20 % of the set: within maxUnhealthyInstancePercent
    sim.tick(0)
    stopped = sim.step()
    got = seen(stopped)
    assert got.code == "Faulted"
    assert got.sets == []
    assert got.progress == (6, 0, 0, 4)
    entry = stopped.status.os_upgrade_history[0]
    assert entry.error is not None
    assert entry.error.code == ErrorCode.UPGRADED_UNHEALTHY.value
    assert (entry.error.message or "").startswith(
        "2 of 6 upgraded instances are unhealthy (2 of them after passing their health check)"
    )
    assert [(d.target, d.code, d.message) for d in entry.error.details or []] == [
        ("instance 0", "NotReady", "NotReady after passing its health check on 1.1.0"),
        ("instance 1", "NotReady", "NotReady after passing its health check on 1.1.0"),
    ]
    assert stopped.status.faulted_versions == ["1.1.0"]
    # They did run the new image healthily: counted as upgraded, not rolled back.
    assert sim.world.on("1.1.0") == [0, 1, 2, 3, 4, 5]
    assert sim.world.on("1.0.0") == [6, 7, 8, 9]


def test_cause_of_every_failed_instance_when_completed_with_failures() -> None:
    sim = settled(10, health_timeout="PT10S", rolling={"maxUnhealthyUpgradedInstancePercent": 50})
    sim.world.disrupted.add(3)
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    finish(sim, advance=2)
    assert sim.code is RunningStatusCode.COMPLETED
    error = sim.status.os_upgrade_history[0].error
    assert error is not None
    assert error.code == ErrorCode.FAILED_UPGRADED_VMS.value
    assert [(d.target, d.code, d.message) for d in error.details or []] == [
        (
            "instance 3",
            "HealthTimeout",
            "HealthTimeout (NotReady); rolled back to 1.0.0, still unhealthy there",
        )
    ]


def test_cause_of_every_failed_instance_when_cancelled() -> None:
    sim = settled(10, rolling={"maxUnhealthyUpgradedInstancePercent": 100})
    sim.publish(version_entry("1.1.0", "crash-1.1.0"))
    until_started(sim)
    sim.request("cancel")
    finish(sim)
    assert sim.code is RunningStatusCode.CANCELLED
    (entry,) = sim.status.os_upgrade_history
    assert entry.running_status is not None
    assert entry.running_status.code is RunningStatusCode.CANCELLED
    assert entry.error is not None
    assert entry.error.code == ErrorCode.FAILED_UPGRADED_VMS.value
    assert entry.error.message == "cancelled after 2 instance(s) failed to upgrade"
    assert [(d.target, d.code, d.message) for d in entry.error.details or []] == [
        ("instance 0", "CrashLoopBackOff", "CrashLoopBackOff; rolled back to 1.0.0"),
        ("instance 1", "CrashLoopBackOff", "CrashLoopBackOff; rolled back to 1.0.0"),
    ]
    assert sim.world.on("1.0.0") == list(range(10))


def test_cause_and_real_rollback_version_of_every_instance_when_faulted() -> None:
    """Instances on different versions go back to their own: the rollback annotation and the
    history name the version each one really returned to, not the run's previous model."""
    everything = {"maxBatchInstancePercent": 100, "maxUnhealthyInstancePercent": 100}
    sim = settled(2, health_timeout="PT10S", rolling=everything)
    sim.world.protected.add(1)  # left on 1.0.0 by the upgrade to 1.1.0
    sim.publish(version_entry("1.1.0"))
    finish(sim)
    sim.world.protected.clear()
    assert sim.world.tags() == {0: "1.1.0", 1: "1.0.0"}
    sim.publish(version_entry("1.2.0", "unready-1.2.0"))
    until_started(sim)
    rollbacks: dict[str, str] = {}
    for _ in range(30):
        plan = sim.step()
        for action in plan.actions:
            mark = action.upgrade if isinstance(action, SetInstanceImage) else None
            if mark is not None and mark.phase is UpgradePhase.ROLLING_BACK:
                rollbacks[action.name] = action.image_urn
        if sim.code in FINISHED:
            break
    assert sim.code is RunningStatusCode.FAULTED
    family = "Canonical:ubuntu-24_04-lts:server"
    assert rollbacks == {"web-0": f"{family}:1.1.0", "web-1": f"{family}:1.0.0"}
    assert sim.world.tags() == {0: "1.1.0", 1: "1.0.0"}
    entry = sim.status.os_upgrade_history[0]
    assert entry.error is not None
    assert entry.error.code == ErrorCode.UPGRADED_UNHEALTHY.value
    assert [(d.target, d.code, d.message) for d in entry.error.details or []] == [
        ("instance 0", "HealthTimeout", "HealthTimeout (NotReady); rolled back to 1.1.0"),
        ("instance 1", "HealthTimeout", "HealthTimeout (NotReady); rolled back to 1.0.0"),
    ]


def test_a_user_start_names_where_failed_instances_were_left() -> None:
    sim = settled(10, automatic=False)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    sim.request("start")
    finish(sim)
    assert sim.code is RunningStatusCode.FAULTED
    error = sim.status.os_upgrade_history[0].error
    assert error is not None
    assert [(d.target, d.code, d.message) for d in error.details or []] == [
        ("instance 0", "ImagePullBackOff", "ImagePullBackOff; left on 1.1.0"),
        ("instance 1", "ImagePullBackOff", "ImagePullBackOff; left on 1.1.0"),
    ]


def test_cancel_ends_the_run_once_the_in_flight_batch_settles() -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0"))
    until_started(sim, kubelet=False)
    sim.request("cancel")
    # the batch is still in flight: the cancel is recorded, nothing new starts
    cancelling = sim.step(kubelet=False)
    got = seen(cancelling)
    assert got.events == ["RollingUpgradeCancelling"]
    assert got.code == "RollingForward"
    assert got.sets == []
    rolling = cancelling.status.rolling_upgrade
    assert rolling is not None
    assert rolling.running_status is not None
    assert rolling.running_status.last_action == "Cancel"
    assert rolling.running_status.last_action_time == stamp(sim.now - timedelta(seconds=1))
    # the kubelet reports the batch: it settles, and the run ends Cancelled
    sim.tick(0)
    got = seen(sim.step())
    assert got.events == ["BatchCompleted", "RollingUpgradeCancelled"]
    assert got.code == "Cancelled"
    assert got.progress == (2, 0, 0, 8)
    assert sim.world.on("1.1.0") == [0, 1]
    entry = sim.status.os_upgrade_history[0]
    assert entry.running_status is not None
    assert entry.running_status.code is RunningStatusCode.CANCELLED
    assert entry.error is None
    for _ in range(20):
        assert sim.step().actions == ()


def test_excluded_and_unreplicated_versions_are_never_rolled_out() -> None:
    sim = settled(4)
    sim.publish(
        version_entry("2.0.0", excluded=True),
        version_entry("1.5.0", regions=["eastus", "northeurope"]),
    )
    for _ in range(30):
        plan = sim.step()
        assert plan.actions == ()
        assert plan.events == ()
    assert sim.run is None
    sim.publish(version_entry("1.2.0", regions=[LOCATION.upper()]))
    finish(sim)
    assert sim.world.on("1.2.0") == [0, 1, 2, 3]
    entry = sim.status.os_upgrade_history[0]
    assert entry.target_image_reference is not None
    assert entry.target_image_reference.version == "1.2.0"


def test_after_a_fault_only_a_newer_version_or_the_user_starts_an_upgrade() -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0", "bad"))
    finish(sim)
    assert sim.code is RunningStatusCode.FAULTED
    for _ in range(20):
        assert sim.step().actions == ()
    # a user may retry the faulted version by hand, once they release it from quarantine
    # (a start picks its target as the platform does: tests/unit/test_upgrade_target.py)
    sim.request("clear-quarantine")
    assert sim.step().status.faulted_versions == []
    sim.request("start")
    retried = seen(sim.step())
    assert "RollingUpgradeStarted" in retried.events
    assert sim.run is not None
    assert sim.run.started_by is StartedBy.USER
    assert sim.run.target.version == "1.1.0"
    finish(sim)
    # a newer version starts a platform upgrade again
    sim.settle()
    sim.publish(version_entry("1.2.0"))
    until_started(sim)
    finish(sim)
    assert sim.status.upgrade_state == RunningStatusCode.COMPLETED.value
    assert sim.world.on("1.2.0") == list(range(10))
    history = sim.status.os_upgrade_history
    assert [h.started_by for h in history] == [
        StartedBy.PLATFORM,
        StartedBy.USER,
        StartedBy.PLATFORM,
    ]


def test_a_user_start_skips_a_quarantined_version() -> None:
    """A quarantined version is not "latest" until a user clears it, and a user's start
    picks its target as the platform does."""
    sim = settled(4, automatic=False)
    sim.publish(version_entry("1.1.0"), version_entry("1.2.0"))
    sim.status = sim.status.model_copy(update={"faulted_versions": ["1.2.0"]})
    sim.request("start")
    assert "RollingUpgradeStarted" in seen(sim.step()).events
    assert sim.run is not None
    assert sim.run.target.version == "1.1.0"
    finish(sim)
    assert sim.world.on("1.1.0") == [0, 1, 2, 3]


def test_newer_version_mid_upgrade_retargets_after_the_current_batch() -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0"))
    until_started(sim, kubelet=False)
    sim.publish(version_entry("1.2.0"))
    # batch 1 is still in flight on 1.1.0: it is not touched
    in_flight = seen(sim.step(kubelet=False))
    assert in_flight.sets == []
    assert in_flight.batch == [0, 1]
    assert "RollingUpgradeRetargeted" not in in_flight.events
    # batch 1 settles; the next batch goes to 1.2.0
    sim.tick(0)
    retarget = sim.step()
    got = seen(retarget)
    assert "RollingUpgradeRetargeted" in got.events
    assert got.events.index("BatchCompleted") < got.events.index("RollingUpgradeRetargeted")
    assert got.sets
    assert {tag for _, tag in got.sets} == {"1.2.0"}
    assert retarget.status.current_image_version == "1.2.0"
    finish(sim)
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.2.0") == list(range(10))
    (entry,) = sim.status.os_upgrade_history
    assert entry.target_image_reference is not None
    assert entry.target_image_reference.version == "1.2.0"


def test_scale_out_during_an_upgrade_creates_instances_on_the_target() -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0"))
    until_started(sim)
    sim.set_spec(capacity=12)
    assert seen(sim.step()).creates == [(10, "1.1.0"), (11, "1.1.0")]
    finish(sim)
    assert sim.world.on("1.1.0") == list(range(12))


def test_protected_instances_are_never_upgraded() -> None:
    sim = settled(6)
    sim.world.protected |= {1, 4}
    sim.publish(version_entry("1.1.0"))
    passes = finish(sim)
    touched = {i for p in passes for i, _ in p.sets}
    assert touched == {0, 2, 3, 5}
    assert sim.world.tags()[1] == sim.world.tags()[4] == "1.0.0"
    assert passes[-1].progress == (4, 0, 0, 0)
    assert sim.status.protected_instances == 2


@pytest.mark.parametrize("cross_zone", [False, True])
def test_batches_span_zones_only_with_cross_zone_upgrade(cross_zone: bool) -> None:
    rolling = {
        "maxBatchInstancePercent": 40,
        "maxUnhealthyInstancePercent": 40,
        "enableCrossZoneUpgrade": cross_zone,
    }
    sim = settled(10, world=World(zoned=True), rolling=rolling)
    sim.publish(version_entry("1.1.0"))
    passes = finish(sim)
    batches = [p.batch for p in passes if p.batch and "BatchStarted" in p.events]
    zones = [{sim.world.zone_of(i) for i in batch} for batch in batches]
    if cross_zone:
        assert batches == [[0, 3, 6, 9], [1, 4, 7, 2], [5, 8]]
        assert any(len(z) > 1 for z in zones)
    else:
        assert batches == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
        assert zones == [{"zone-1"}, {"zone-2"}, {"zone-3"}]
    assert sim.world.on("1.1.0") == list(range(10))


def test_prioritize_unhealthy_instances_puts_them_in_the_first_batch() -> None:
    sim = settled(10, rolling={"prioritizeUnhealthyInstances": True})
    sim.world.disrupted.add(6)
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    assert seen(until_started(sim)).sets == [(6, "1.1.0"), (0, "1.1.0")]


def test_pause_between_batches() -> None:
    sim = settled(10, rolling={"pauseTimeBetweenBatches": "PT30S"})
    sim.publish(version_entry("1.1.0"))
    until_started(sim)
    ended = sim.step()
    assert seen(ended).events == ["BatchCompleted"]
    assert ended.requeue_after == 30.0
    for left in (25.0, 20.0, 15.0, 10.0, 5.0):
        sim.now += timedelta(seconds=4)
        paused = sim.step()
        assert paused.actions == ()
        assert paused.requeue_after == left
        assert seen(paused).batch is None
    sim.now += timedelta(seconds=4)
    next_batch = seen(sim.step())
    assert next_batch.batch == [2, 3]
    assert "BatchStarted" in next_batch.events


def test_disable_automatic_rollback_leaves_failed_instances_on_the_target() -> None:
    sim = settled(10, disable_rollback=True)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    passes = finish(sim)
    assert passes[-1].code == "Faulted"
    assert all("InstanceRollingBack" not in p.events for p in passes)
    assert sim.world.on("bad-1.1.0") == [0, 1]
    entry = sim.status.os_upgrade_history[0]
    assert entry.started_by is StartedBy.PLATFORM
    assert entry.rollback_info is None


def test_rollback_failed_instances_on_policy_breach() -> None:
    sim = settled(
        10, disable_rollback=True, rolling={"rollbackFailedInstancesOnPolicyBreach": True}
    )
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    until_started(sim)
    breach = seen(sim.step())
    assert breach.code == "RollingForward"  # still rolling the failed instances back
    assert breach.sets == [(0, "1.0.0"), (1, "1.0.0")]
    assert "RollingUpgradeFaulted" in breach.events
    ended = seen(sim.step())
    assert ended.code == "Faulted"
    assert ended.events.count("InstanceRolledBack") == 2
    assert sim.world.on("1.0.0") == list(range(10))
    entry = sim.status.os_upgrade_history[0]
    assert entry.rollback_info is not None
    assert entry.rollback_info.successfully_rolledback_instance_count == 2
    assert entry.error is not None
    assert entry.error.code == ErrorCode.UPGRADED_UNHEALTHY.value


def test_breach_rollbacks_are_named_in_the_details_while_and_after_they_run() -> None:
    sim = settled(
        10, disable_rollback=True, rolling={"rollbackFailedInstancesOnPolicyBreach": True}
    )
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    until_started(sim)
    breach = sim.step()
    rolling = breach.status.rolling_upgrade
    assert rolling is not None
    assert rolling.error is not None
    assert [d.message for d in rolling.error.details or []] == [
        "ImagePullBackOff; rolling back to 1.0.0",
        "ImagePullBackOff; rolling back to 1.0.0",
    ]
    sim.step()
    assert sim.code is RunningStatusCode.FAULTED
    error = sim.status.os_upgrade_history[0].error
    assert error is not None
    assert [(d.target, d.message) for d in error.details or []] == [
        ("instance 0", "ImagePullBackOff; rolled back to 1.0.0"),
        ("instance 1", "ImagePullBackOff; rolled back to 1.0.0"),
    ]


# --- the scale set model ---------------------------------------------------------------------


def test_manual_mode_keeps_the_old_model_until_instances_are_updated() -> None:
    sim = settled(5, mode="Manual")
    sim.world.protected.add(4)
    sim.set_spec(capacity=5, mode="Manual", env="two")
    for _ in range(5):
        plan = sim.step()
        assert plan.actions == ()
        assert plan.status.latest_model_instances == 0
    # update-instances 1, 3, 4 (protected) and 17 (unknown)
    sim.request("update-instances", ["1", "3", "4", "17"])
    update = seen(sim.step())
    assert [i for i, _ in update.deletes] == [1, 3]
    assert "UnknownInstances" in update.events
    assert "UpdateInstances" in update.events
    assert seen(sim.step()).creates == [(1, "1.0.0"), (3, "1.0.0")]
    sim.settle()
    assert sim.status.latest_model_instances == 2
    sim.request("update-instances", ["*"])
    assert [i for i, _ in seen(sim.step()).deletes] == [0, 2]
    sim.settle()
    assert sim.status.latest_model_instances == 4  # the protected instance keeps its model
    assert sim.world.instances[4].model_hash != sim.status.model_hash


def test_rolling_mode_replaces_one_batch_at_a_time() -> None:
    sim = settled(5, mode="Rolling")
    sim.set_spec(capacity=5, mode="Rolling", env="two")
    table = [
        ([0], []),
        ([1], [0]),
        ([2], [1]),
        ([3], [2]),
        ([4], [3]),
        ([], [4]),
    ]
    for deleted, created in table:
        got = seen(sim.step())
        assert [i for i, _ in got.deletes] == deleted
        assert [i for i, _ in got.creates] == created
    sim.settle()
    assert sim.status.latest_model_instances == 5


def test_automatic_mode_replaces_everything_at_once() -> None:
    sim = settled(5, mode="Automatic")
    sim.set_spec(capacity=5, mode="Automatic", env="two")
    assert [i for i, _ in seen(sim.step()).deletes] == [0, 1, 2, 3, 4]
    assert [i for i, _ in seen(sim.step()).creates] == [0, 1, 2, 3, 4]
    sim.settle()
    assert sim.status.latest_model_instances == 5


def test_a_pinned_version_change_is_a_model_change() -> None:
    sim = settled(3, mode="Rolling", automatic=False, version="1.0.0")
    sim.publish(version_entry("1.1.0"))
    sim.set_spec(capacity=3, mode="Rolling", automatic=False, version="1.1.0")
    got = seen(sim.step())
    assert got.sets == [(0, "1.1.0")]
    assert "ModelImageChanged" in got.events
    sim.settle()
    assert sim.world.on("1.1.0") == [0, 1, 2]
    assert sim.status.current_image_version == "1.1.0"


def test_unresolvable_image_reference_sets_a_condition_and_creates_nothing() -> None:
    sim = Sim(spec=spec_of(capacity=3), catalog=[version_entry("1.0.0", regions=["eastus"])])
    for _ in range(3):
        plan = sim.step()
        assert plan.actions == ()
        assert plan.requeue_after is None
    resolved = next(c for c in sim.status.conditions if c.type == IMAGE_RESOLVED)
    assert (resolved.status, resolved.reason) == ("False", "ImageNotFound")
    assert LOCATION in resolved.message
    assert sim.status.model_image is None
    sim.publish(version_entry("1.0.1"))
    assert seen(sim.step()).creates == [(0, "1.0.1"), (1, "1.0.1"), (2, "1.0.1")]
    resolved_now = next(c for c in sim.status.conditions if c.type == IMAGE_RESOLVED)
    assert resolved_now.status == "True"
    assert resolved_now.last_transition_time != resolved.last_transition_time


def test_a_pinned_version_that_vanishes_keeps_the_instances_running() -> None:
    sim = settled(3, automatic=False, version="1.0.0", mode="Rolling")
    sim.set_spec(capacity=3, automatic=False, version="9.9.9", mode="Rolling")
    for _ in range(3):
        assert sim.step().actions == ()
    resolved = next(c for c in sim.status.conditions if c.type == IMAGE_RESOLVED)
    assert (resolved.status, resolved.reason) == ("False", "ImageNotFound")
    assert sim.world.on("1.0.0") == [0, 1, 2]


def test_conditions_move_their_transition_time_only_when_they_flip() -> None:
    sim = settled(3)
    ready = next(c for c in sim.status.conditions if c.type == READY)
    sim.step(30)
    assert next(c for c in sim.status.conditions if c.type == READY) == ready
    sim.world.disrupted.add(0)
    sim.tick()
    sim.step()
    flipped = next(c for c in sim.status.conditions if c.type == READY)
    assert flipped.status == "False"
    assert flipped.last_transition_time == stamp(sim.now - timedelta(seconds=1))


# --- resuming --------------------------------------------------------------------------------

TAGS = ["1.1.0", "bad-1.1.0", "unready-1.1.0"]


def end_state(sim: Sim) -> tuple[object, ...]:
    run = sim.run
    assert run is not None
    return (
        sim.world.tags(),
        run.code,
        sorted(run.succeeded),
        sorted(run.failed),
        sorted(run.rolled_back),
        sorted(run.rollback_failed),
        [h.progress for h in sim.status.os_upgrade_history],
        [h.rollback_info for h in sim.status.os_upgrade_history],
        sim.status.faulted_versions,
    )


def upgrade_with_crash(tag: str, crash_at: int | None) -> tuple[Sim, int]:
    sim = settled(10, health_timeout="PT10S")
    sim.publish(version_entry("1.1.0", tag))
    passes = 0
    while sim.code not in FINISHED:
        sim.step(2, act=passes != crash_at)
        passes += 1
        assert passes < 100
    sim.settle()
    return sim, passes


@pytest.mark.parametrize("tag", TAGS)
def test_a_pass_whose_actions_were_lost_is_repaired_by_the_next(tag: str) -> None:
    """Crash after the status write, before acting: the next pass re-plans and converges."""
    baseline, passes = upgrade_with_crash(tag, None)
    expected = end_state(baseline)
    for crash_at in range(passes + 1):
        crashed, _ = upgrade_with_crash(tag, crash_at)
        assert end_state(crashed) == expected, f"crash at pass {crash_at}"


@pytest.mark.parametrize("tag", TAGS)
def test_every_intermediate_status_replans_identically(tag: str) -> None:
    """Replaying an observation gives the same plan; a second pass at the same instant,
    before the kubelet reports anything, finds nothing more to do."""
    sim = settled(10, health_timeout="PT10S")
    sim.publish(version_entry("1.1.0", tag))
    for _ in range(100):
        plan = sim.plan()
        assert sim.plan() == plan
        sim.step(0, kubelet=False)
        again = sim.plan()
        assert again.actions == (), again.actions
        assert again.status.upgrade_run == plan.status.upgrade_run
        sim.tick(2)
        if sim.code in FINISHED:
            break
    assert sim.code in FINISHED
