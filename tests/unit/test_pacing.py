"""Counts-only status writes are spaced out; anything else goes at once."""

from __future__ import annotations

from scaleset_operator.controller.pacing import StatusPacer, only_counts_changed
from scaleset_operator.models.status import RunningStatusCode, ScaleSetStatus
from scaleset_operator.planner import conditions as cond

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
    assert only_counts_changed(BASE, new)


def test_no_change_is_not_a_counts_only_change() -> None:
    assert not only_counts_changed(BASE, BASE)


def test_other_conditions_and_fields_are_written_at_once() -> None:
    upgrading = with_condition(BASE, cond.UPGRADING, True, "OS upgrade")
    assert not only_counts_changed(BASE, upgrading)
    state = BASE.model_copy(update={"upgrade_state": RunningStatusCode.ROLLING_FORWARD.value})
    assert not only_counts_changed(BASE, state)
    mixed = state.model_copy(update={"ready_instances": 2})
    assert not only_counts_changed(BASE, mixed)
    added = with_condition(BASE, cond.UPGRADE_FAULTED, False, "")
    assert not only_counts_changed(BASE, added)


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
