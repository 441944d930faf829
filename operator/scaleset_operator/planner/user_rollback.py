"""A user's rollback of the last OS upgrade run: a run like any other (same batches, health
checks, pauses, budgets) whose target is that run's previous model image, started by the user,
holding the version it undoes in quarantine. A run still in progress is cancelled first.
Decisions only; the run itself is advanced by the same steps as an upgrade."""

from __future__ import annotations

from dataclasses import dataclass

from scaleset_operator.models.scaleset import LATEST
from scaleset_operator.models.status import (
    LastAction,
    QuarantineReason,
    ResolvedImage,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.actions import EventReason
from scaleset_operator.planner.instances import live_instances
from scaleset_operator.planner.passstate import NORMAL, WARNING, PassState
from scaleset_operator.planner.run_end import quarantine, run_finished
from scaleset_operator.planner.run_start import start_run


@dataclass(frozen=True)
class Undo:
    """What rolling a run back means: go back to `target`, hold `undone`."""

    target: ResolvedImage
    undone: ResolvedImage


def request_rollback(state: PassState) -> None:
    """Roll the last run back now, or cancel it and roll back once it has ended."""
    run = state.status.upgrade_run
    undo = _undo_or_refuse(state, run, check_instances=run is not None and run_finished(run))
    if undo is None or run is None:
        return
    if run_finished(run):
        _start(state, undo)
        return
    if run.rollback_of is not None:
        _refuse(state, f"a rollback of {run.rollback_of.version} is already running")
        return
    # Cancel semantics: the batch in flight settles, no new batch starts, the run ends
    # Cancelled, and the pass after that starts the rollback (resume_requested_rollback).
    stopping = run.model_copy(
        update={
            "last_action": LastAction.CANCEL,
            "last_action_time": state.now_s,
            "rollback_requested_at": state.now_s,
        }
    )
    state.status = state.status.model_copy(update={"upgrade_run": stopping})
    state.event(
        NORMAL,
        EventReason.ROLLING_UPGRADE_CANCELLING,
        f"rollback requested: the upgrade to {run.target.version} stops once its batch in "
        f"flight settles, then the rollback to {undo.target.version} starts",
    )


def resume_requested_rollback(state: PassState) -> None:
    """The rollback asked for while its run ran starts once that run has ended, in the pass
    after the one that ended it (so that history records how it ended first)."""
    run = state.status.upgrade_run
    if run is None or not run_finished(run) or run.rollback_requested_at is None:
        return
    ended = run.model_copy(update={"rollback_requested_at": None})
    state.status = state.status.model_copy(update={"upgrade_run": ended})
    undo = _undo_or_refuse(state, ended, check_instances=True)
    if undo is not None:
        _start(state, undo)


def wake_for_requested_rollback(state: PassState, run: UpgradeRun) -> None:
    """A run that ended with a rollback requested has the next pass come at once."""
    if run_finished(run) and run.rollback_requested_at is not None:
        state.wake(state.now)


def _start(state: PassState, undo: Undo) -> None:
    # Held before the first batch: nothing may bring the version back while the rollback
    # runs or after it, until a user clears it.
    quarantine(state, undo.undone.version, QuarantineReason.ROLLED_BACK_BY_USER)
    # As for any user's start (Azure: it never rolls back automatically): an instance that
    # fails on the previous image counts as failed and stays there.
    start_run(state, undo.target, StartedBy.USER, automatic_rollback=False, rollback_of=undo.undone)


def _undo_or_refuse(
    state: PassState, run: UpgradeRun | None, *, check_instances: bool
) -> Undo | None:
    why, undo = _undo_of(state, run)
    if undo is not None and check_instances and _all_on(state, undo.target):
        why = (
            f"every instance already runs {undo.target.version}, the image before the upgrade "
            f"to {undo.undone.version}"
        )
    if why is not None:
        _refuse(state, why)
        return None
    return undo


def _undo_of(state: PassState, run: UpgradeRun | None) -> tuple[str | None, Undo | None]:
    """(why not, None) or (None, what to undo). Rolling back a rollback that did not finish
    its job carries it on: the version it undoes is never the target."""
    ref = state.obs.spec.image_reference
    if run is None:
        return "no OS upgrade has run on this scale set", None
    if ref.version != LATEST:
        return (
            f"imageReference.version pins {ref.version}: set it to the version wanted instead",
            None,
        )
    if run.rollback_of is not None:
        return None, Undo(target=run.target, undone=run.rollback_of)
    previous = run.previous
    if previous is None:
        return f"the upgrade to {run.target.version} has no previous image to go back to", None
    if previous.container_image == run.target.container_image:
        return f"the last run stayed on {run.target.version}: there is nothing to undo", None
    return None, Undo(target=previous, undone=run.target)


def _all_on(state: PassState, target: ResolvedImage) -> bool:
    live = live_instances(state.obs.instances)
    return all(
        inst.os_image == target.container_image
        for inst in live.values()
        if not inst.deleting and not inst.protected
    )


def _refuse(state: PassState, why: str) -> None:
    state.event(WARNING, EventReason.ROLLBACK_REFUSED, f"rollback refused: {why}")
