"""Status writes that only record progress are spaced out; anything else goes at once."""

from __future__ import annotations

from datetime import timedelta

from scaleset_operator.controller.pacing import StatusPacer, only_progress_changed
from scaleset_operator.models.status import (
    Batch,
    ResolvedImage,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner import conditions as cond
from scaleset_operator.planner.history import history_entry, rolling_upgrade_status
from scaleset_operator.planner.observed import PlannerSettings
from tests.unit.simworld import Sim, World, spec_of, version_entry

NOW = "2026-01-01T00:00:00Z"


def with_condition(status: ScaleSetStatus, type_: str, ok: bool, message: str) -> ScaleSetStatus:
    conditions = cond.set_condition(
        status.conditions,
        type_=type_,
        status=ok,
        reason="R",
        message=message,
        now=NOW,
        generation=1,
    )
    return status.model_copy(update={"conditions": conditions})


BASE = with_condition(
    with_condition(ScaleSetStatus(capacity=4, ready_instances=4), cond.READY, True, "4/4"),
    cond.UPGRADING,
    False,
    "",
)


def test_ready_count_and_ready_condition_are_counts_only() -> None:
    new = with_condition(BASE.model_copy(update={"ready_instances": 3}), cond.READY, False, "3/4")
    assert only_progress_changed(BASE, new)


def test_no_change_is_not_a_counts_only_change() -> None:
    assert not only_progress_changed(BASE, BASE)


def test_other_conditions_and_fields_are_written_at_once() -> None:
    upgrading = with_condition(BASE, cond.UPGRADING, True, "OS upgrade")
    assert not only_progress_changed(BASE, upgrading)
    state = BASE.model_copy(update={"upgrade_state": RunningStatusCode.ROLLING_FORWARD.value})
    assert not only_progress_changed(BASE, state)
    mixed = state.model_copy(update={"ready_instances": 2})
    assert not only_progress_changed(BASE, mixed)
    added = with_condition(BASE, cond.UPGRADE_FAULTED, False, "")
    assert not only_progress_changed(BASE, added)


def test_pacer_holds_counts_only_writes_for_the_interval() -> None:
    clock = [100.0]
    pacer = StatusPacer(interval=1.0, clock=lambda: clock[0])
    key = ("ns", "web")
    assert pacer.hold_for(key) == 0.0
    pacer.wrote(key)
    clock[0] += 0.25
    assert pacer.hold_for(key) == 0.75
    assert pacer.hold_for(("ns", "other")) == 0.0
    clock[0] += 1.0
    assert pacer.hold_for(key) == 0.0
    pacer.wrote(key)
    pacer.forget(key)
    assert pacer.hold_for(key) == 0.0


def test_hold_update_holds_only_idle_counts_only_changes() -> None:
    clock = [0.0]
    pacer = StatusPacer(interval=1.0, clock=lambda: clock[0])
    key = ("ns", "web")
    pacer.wrote(key)
    counts = with_condition(BASE.model_copy(update={"ready_instances": 3}), cond.READY, False, "")
    assert pacer.hold_update(key, BASE, counts, acting=False) == 1.0
    assert pacer.hold_update(key, BASE, counts, acting=True) == 0.0
    assert pacer.hold_update(key, BASE, BASE, acting=False) == 0.0
    upgrading = with_condition(BASE, cond.UPGRADING, True, "OS upgrade")
    assert pacer.hold_update(key, BASE, upgrading, acting=False) == 0.0


def running(succeeded: list[int], **run: object) -> ScaleSetStatus:
    target = ResolvedImage(version="1.1.0", container_image="registry.example/os:1.1.0")
    upgrade = UpgradeRun(
        started_by=StartedBy.PLATFORM,
        start_time=NOW,
        target=target,
        batch=Batch(number=1, instance_ids=[0, 1, 2], started_at=NOW),
        succeeded=succeeded,
    ).model_copy(update=run)
    status = BASE.model_copy(
        update={
            "upgrade_run": upgrade,
            "rolling_upgrade": rolling_upgrade_status(upgrade, pending=1),
            "os_upgrade_history": [history_entry(upgrade, pending=1)],
        }
    )
    return with_condition(status, cond.UPGRADING, True, f"{len(succeeded)} upgraded")


def test_instances_recorded_as_upgraded_are_progress() -> None:
    assert only_progress_changed(running([]), running([1]))
    assert only_progress_changed(running([1]), running([1, 0, 2]))
    fewer = with_condition(
        running([1]).model_copy(update={"ready_instances": 2}), cond.READY, False, ""
    )
    assert only_progress_changed(running([]), fewer)


def test_other_run_changes_are_written_at_once() -> None:
    assert not only_progress_changed(running([1]), running([]))
    assert not only_progress_changed(running([1]), running([0]))
    assert not only_progress_changed(running([]), running([], failed=[2]))
    assert not only_progress_changed(running([]), running([1], rolling_back=[2]))
    assert not only_progress_changed(running([0, 1, 2]), running([0, 1, 2], batch=None))
    assert not only_progress_changed(BASE, running([]))
    stopped = with_condition(running([1]), cond.UPGRADING, False, "1 upgraded")
    assert not only_progress_changed(running([1]), stopped)


def test_a_held_record_of_upgraded_instances_is_made_again_later() -> None:
    """Mid-batch, the pass that records instance 3 as upgraded is held back (not persisted);
    when instance 2 recovers too, the next pass records both and closes the batch."""
    rolling = {"maxBatchInstancePercent": 100, "maxUnhealthyInstancePercent": 100}
    sim = Sim(
        spec=spec_of(capacity=4, rolling=rolling),
        catalog=[version_entry("1.0.0")],
        world=World(),
        settings=PlannerSettings(automatic_upgrade_delay=timedelta(seconds=0)),
    )
    sim.settle()
    sim.publish(version_entry("1.1.0"))
    sim.world.disrupted |= {2, 3}  # their new containers do not get ready yet
    started = sim.step()
    assert len(started.actions) == 4
    first = sim.step()  # records 0 and 1
    assert first.status.upgrade_run is not None
    assert sorted(first.status.upgrade_run.succeeded) == [0, 1]
    sim.world.disrupted.discard(3)
    sim.tick(0)
    recorded = sim.plan()
    assert not recorded.actions
    assert not recorded.events
    assert recorded.status.upgrade_run is not None
    assert sorted(recorded.status.upgrade_run.succeeded) == [0, 1, 3]
    assert only_progress_changed(sim.status, recorded.status)
    sim.step(persist=False)
    assert sim.run is not None
    assert sorted(sim.run.succeeded) == [0, 1]
    sim.world.disrupted.clear()
    sim.tick(0)
    closed = sim.step()
    assert not only_progress_changed(first.status, closed.status)
    run = sim.run
    assert run is not None
    assert sorted(run.succeeded) == [0, 1, 2, 3]
    assert run.code is RunningStatusCode.COMPLETED
