"""Between two batches of a run: cancel, pause, maintenance window, retarget, the overall health
check (a refusal before the first batch), then the next batch or the end of the run."""

from __future__ import annotations

from datetime import datetime

from scaleset_operator.catalog.resolve import is_newer
from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.instance import Instance, UpgradePhase
from scaleset_operator.models.status import (
    ApiError,
    Batch,
    ErrorCode,
    LastAction,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner import conditions as cond
from scaleset_operator.planner.actions import EventReason
from scaleset_operator.planner.batches import batch_size, next_batch
from scaleset_operator.planner.budget_wait import start_members
from scaleset_operator.planner.gate import HealthGate, health_gate
from scaleset_operator.planner.instances import id_list
from scaleset_operator.planner.passstate import NORMAL, PassState
from scaleset_operator.planner.run_end import (
    end_run,
    fault_run,
    finish_faulting,
    pending_after_refusal,
    refusal_retry_at,
)
from scaleset_operator.planner.schedule import upgrade_target, window_state
from scaleset_operator.planner.surge import surge_batch
from scaleset_operator.planner.timefmt import parse_stamp, stamp


def between_batches(state: PassState, run: UpgradeRun, live: dict[int, Instance]) -> UpgradeRun:
    """Before each batch: cancel, pause, retarget, overall health, then pick the batch."""
    orphans = _orphans(state, run, live)
    if orphans:
        # Patched by a pass whose status write was lost: that batch is still in flight.
        batch = Batch(number=run.batches_done + 1, instance_ids=orphans, started_at=state.now_s)
        return run.model_copy(update={"batch": batch})
    if run.last_action is LastAction.CANCEL:
        return end_run(state, run, RunningStatusCode.CANCELLED, None)
    if _pausing(state, run) or _outside_window(state, run):
        return run
    run = _retarget(state, run)
    gate = health_gate(state.obs.spec, run.policy, live.values(), state.now, state.verdict_of)
    if gate.closed:
        return _fault_on_unhealthy_set(state, run, gate)
    candidates = _candidates(state, run, live)
    if not candidates:
        return _complete(state, run)
    return _start_batch(state, run, candidates, gate)


def _orphans(state: PassState, run: UpgradeRun, live: dict[int, Instance]) -> list[int]:
    """Instances already upgrading to the run's target that the run has not counted."""
    counted = {*run.succeeded, *run.failed}
    image, version = run.target.container_image, run.target.version
    return [
        iid
        for iid, inst in sorted(live.items())
        if iid not in counted
        and iid not in state.touched
        and (mark := inst.upgrade) is not None
        and mark.phase is UpgradePhase.UPGRADING
        and mark.target_version == version
        and inst.os_image == image
        and not inst.deleting
        and not inst.protected
    ]


def pause_ends_at(run: UpgradeRun) -> datetime | None:
    """When the pause after the run's last batch ends; None before its first batch ends."""
    if run.last_batch_end is None:
        return None
    return parse_stamp(run.last_batch_end) + parse_duration(run.policy.pause_time_between_batches)


def _pausing(state: PassState, run: UpgradeRun) -> bool:
    """Whether the pause after the last batch still runs; the pass wakes when it ends."""
    resume_at = pause_ends_at(run)
    if resume_at is None:
        return False
    if state.now < resume_at:
        state.wake(resume_at)
        return True
    return False


def _outside_window(state: PassState, run: UpgradeRun) -> bool:
    """A platform run starts batches only inside a maintenance window: when one closes, the
    batch in flight has settled by now and the next waits for the next window. A user's run
    ignores the windows, as its start did."""
    if run.started_by is not StartedBy.PLATFORM:
        return False
    schedule = state.obs.spec.upgrade_policy.automatic_upgrade_schedule
    inside, opens = window_state(schedule, state.now)
    if inside:
        return False
    if opens is not None:
        state.wake(opens)
    state.waiting_for_window, state.window_opens_at = True, opens
    if not _was_waiting_for_window(state.obs.status):
        state.event(
            NORMAL, EventReason.WAITING_FOR_MAINTENANCE_WINDOW, window_wait_text(run, opens)
        )
    return True


def window_wait_text(run: UpgradeRun, opens: datetime | None) -> str:
    until = stamp(opens) if opens is not None else "never (no window opens)"
    return f"batch {run.batches_done + 1} waits for the next maintenance window, until {until}"


def _was_waiting_for_window(status: ScaleSetStatus) -> bool:
    upgrading = next((c for c in status.conditions if c.type == cond.UPGRADING), None)
    return upgrading is not None and upgrading.reason == cond.WAITING_FOR_WINDOW


def _retarget(state: PassState, run: UpgradeRun) -> UpgradeRun:
    """A platform run moves on to an even newer eligible version after a batch; eligible as for
    any start, so never a quarantined one or one younger than the minimum
    image age."""
    unpromoted = any(i.surge_for is not None for i in state.obs.instances)
    if run.started_by is not StartedBy.PLATFORM or unpromoted:
        # (Surge instances of the last batch are promoted first: retargeting forgets
        # which instances were done.)
        return run
    obs = state.obs
    found = upgrade_target(
        obs.spec, state.status, obs.catalog, state.now, started_by=StartedBy.PLATFORM, wave=obs.wave
    )
    target = found.image
    if target is None or not is_newer(target.version, run.target.version):
        return run
    state.event(
        NORMAL, EventReason.ROLLING_UPGRADE_RETARGETED, f"newer version {target.urn}: retargeting"
    )
    state.status = state.status.model_copy(
        update={"model_image": target, "current_image_version": target.version}
    )
    # Instances done on the old target are candidates again, judged afresh.
    return run.model_copy(update={"target": target, "succeeded": []})


def _fault_on_unhealthy_set(state: PassState, run: UpgradeRun, gate: HealthGate) -> UpgradeRun:
    """Too much of the set is unhealthy to take another batch down: before the first batch
    that is a refused start, later a fault."""
    code = ErrorCode.UNHEALTHY_BEFORE if run.batches_done == 0 else ErrorCode.UNHEALTHY_DURING
    message = gate.describe()
    if code is ErrorCode.UNHEALTHY_BEFORE:
        message += _refusal_note(state, run)
    run = fault_run(state, run, code, message)
    return finish_faulting(state, run)


def _refusal_note(state: PassState, run: UpgradeRun) -> str:
    """Status says why nothing happens and when the platform tries again."""
    pending = pending_after_refusal(state, run)
    if pending is None:
        return "; nothing was upgraded"
    at = refusal_retry_at(state, state.now_s, pending)
    return (
        f"; nothing was upgraded, and the platform tries {pending.version} again at "
        f"{stamp(at)} at the earliest"
    )


def _candidates(state: PassState, run: UpgradeRun, live: dict[int, Instance]) -> list[Instance]:
    """Instances still to upgrade; a failed one is not tried again in the same run."""
    passed_over = {*run.failed, *run.skipped, *state.touched}
    return [
        inst
        for iid, inst in sorted(live.items())
        if not inst.deleting
        and not inst.protected
        and inst.os_image != run.target.container_image
        and iid not in passed_over
    ]


def _complete(state: PassState, run: UpgradeRun) -> UpgradeRun:
    """Nothing is left to upgrade: the run completes, saying how many instances failed."""
    error = None
    if run.failed:
        error = ApiError(
            code=ErrorCode.FAILED_UPGRADED_VMS.value,
            message=f"{len(run.failed)} instance(s) failed to upgrade; "
            f"the rest run {run.target.urn}",
            target=state.obs.name,
        )
    return end_run(state, run, RunningStatusCode.COMPLETED, error)


def _start_batch(
    state: PassState, run: UpgradeRun, candidates: list[Instance], gate: HealthGate
) -> UpgradeRun:
    """Pick the next batch within the budgets and upgrade it, in place or by surge."""
    policy = run.policy
    chosen, zone = next_batch(
        candidates,
        total=gate.total,
        policy=policy,
        is_unhealthy=lambda i: i.instance_id in gate.unhealthy_ids,
        unhealthy_now=gate.unhealthy,
    )
    number = run.batches_done + 1
    batch = Batch(
        number=number,
        instance_ids=[i.instance_id for i in chosen],
        zone=zone,
        started_at=state.now_s,
    )
    if policy.max_surge:
        batch, creates = surge_batch(state, run, chosen, batch)
        run = run.model_copy(update={"batch": batch})
        for action in creates:
            state.act(action, action.instance_id)
    else:
        # Every member waits for the budgets, the first ones too: the batch as chosen stands,
        # and members a budget blocks start in later passes.
        run = start_members(state, run.model_copy(update={"batch": batch}), chosen, ()).run
    size = batch_size(gate.total, policy)
    estimate = run.batches_done + -(-len(candidates) // max(1, size))
    state.event(
        NORMAL,
        EventReason.BATCH_STARTED,
        f"batch {number}/{estimate}: instances {id_list(chosen)}"
        + (f" in {zone}" if zone else "")
        + f" -> {run.target.urn}",
    )
    state.wake(state.now + state.health_timeout)
    return run
