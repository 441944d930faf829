"""Ending an OS upgrade run: faulting it on a policy breach, closing it as Completed,
Cancelled or Faulted, and what a refused start leaves pending."""

from __future__ import annotations

from datetime import datetime

from scaleset_operator.models.status import (
    ApiError,
    ApiErrorBase,
    Batch,
    ErrorCode,
    PendingUpgrade,
    QuarantinedVersion,
    QuarantineReason,
    RunningStatusCode,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.actions import EventReason
from scaleset_operator.planner.history import failure_details
from scaleset_operator.planner.instance_upgrade import roll_back
from scaleset_operator.planner.instances import live_instances, mark_left_by, version_of
from scaleset_operator.planner.passstate import NORMAL, WARNING, PassState
from scaleset_operator.planner.refusal import is_refusal, retry_at
from scaleset_operator.planner.timefmt import parse_stamp

# Quarantined versions are remembered in status; the oldest are forgotten first.
_FAULTED_MEMORY = 20
_QUARANTINE_MESSAGES = {
    QuarantineReason.UPGRADE_FAULTED: "its OS upgrade ended Faulted",
    QuarantineReason.ROLLED_BACK_BY_USER: "rolled back by user",
}


def run_finished(run: UpgradeRun) -> bool:
    return run.code is not RunningStatusCode.ROLLING_FORWARD


def fault_run(
    state: PassState,
    run: UpgradeRun,
    code: ErrorCode,
    message: str,
    *,
    also: list[ApiErrorBase] | None = None,
) -> UpgradeRun:
    """A policy breach: the run ends Faulted, after optional rollback of failed instances.
    `also`: details of instances that are not failed but count towards the breach."""
    state.event(WARNING, EventReason.ROLLING_UPGRADE_FAULTED, f"{code.value}: {message}")
    if run.policy.rollback_failed_instances_on_policy_breach:
        run = _roll_back_failed(state, run)
    # After the rollbacks above, so that the details say where those instances are going.
    base = ApiError(code=code.value, message=message, target=state.obs.name, details=also or None)
    return run.model_copy(update={"stop_reason": _with_causes(state, run, base)})


def _roll_back_failed(state: PassState, run: UpgradeRun) -> UpgradeRun:
    """Send every failed instance not yet sent back to its previous image; they form the
    batch that must settle before the run ends."""
    rolling_back = list(run.rolling_back)
    live = live_instances(state.obs.instances)
    for iid in run.failed:
        if iid in run.rolled_back or iid in rolling_back or iid in run.rollback_failed:
            continue
        inst = live.get(iid)
        mark = mark_left_by(run, inst) if inst else None
        if inst is None or mark is None:
            continue
        rolling_back.append(iid)
        roll_back(state, run, inst, mark)
    run = run.model_copy(update={"rolling_back": rolling_back})
    if rolling_back:
        run = run.model_copy(
            update={
                "batch": Batch(
                    number=run.batches_done, instance_ids=rolling_back, started_at=state.now_s
                )
            }
        )
    return run


def finish_faulting(state: PassState, run: UpgradeRun) -> UpgradeRun:
    """A faulted run ends once the rollbacks it started have settled."""
    if run.stop_reason is None or run.batch is not None:
        return run
    return end_run(state, run, RunningStatusCode.FAULTED, run.stop_reason)


def end_run(
    state: PassState, run: UpgradeRun, code: RunningStatusCode, error: ApiError | None
) -> UpgradeRun:
    """Close the run with `code`; its error carries the cause of every failed instance."""
    ended = run.model_copy(
        update={
            "code": code,
            "end_time": state.now_s,
            "error": _with_causes(state, run, error),
            "batch": None,
        }
    )
    _remember_outcome(state, run, ended)
    kind = WARNING if code is RunningStatusCode.FAULTED else NORMAL
    state.event(
        kind,
        EventReason(f"RollingUpgrade{code.value}"),
        f"OS upgrade to {run.target.urn} {code.value.lower()}: {len(run.succeeded)} upgraded, "
        f"{len(run.failed)} failed, {len(run.rolled_back)} rolled back",
    )
    return ended


def _remember_outcome(state: PassState, run: UpgradeRun, ended: UpgradeRun) -> None:
    """What status keeps of an ended run beyond the run itself."""
    code = ended.code
    status_update: dict[str, object] = {}
    if is_refusal(ended):
        # It touched nothing, so it is no verdict on the version: quarantining it would let a
        # health blip at publish time block a good version for good. It stays pending and
        # the platform tries it again after a back-off.
        pending = pending_after_refusal(state, run)
        status_update["pending_upgrade"] = pending
        if pending is not None:
            state.wake(refusal_retry_at(state, state.now_s, pending))
    elif run.rollback_of is not None:
        # A rollback that faults says nothing new about the version it goes back to: the user
        # chose it, and the version undone stays quarantined. New instances keep getting it.
        return
    elif code is RunningStatusCode.FAULTED:
        quarantine(state, run.target.version, QuarantineReason.UPGRADE_FAULTED)
    if code is RunningStatusCode.FAULTED and run.previous is not None:
        # New instances must not get an image whose upgrade faulted or never began.
        status_update["model_image"] = run.previous
        status_update["current_image_version"] = run.previous.version
    if status_update:
        state.status = state.status.model_copy(update=status_update)


def quarantine(state: PassState, version: str, reason: QuarantineReason) -> None:
    """Keep `version` out of `latest` until a user clears it, saying why."""
    status = state.status
    kept = [*(v for v in status.faulted_versions if v != version), version][-_FAULTED_MEMORY:]
    why = QuarantinedVersion(
        version=version, reason=reason, message=_QUARANTINE_MESSAGES[reason], since=state.now_s
    )
    reasons = [q for q in status.quarantine_reasons if q.version != version and q.version in kept]
    state.status = status.model_copy(
        update={"faulted_versions": kept, "quarantine_reasons": [*reasons, why]}
    )


def _with_causes(state: PassState, run: UpgradeRun, error: ApiError | None) -> ApiError | None:
    """Every failed instance's cause in `error.details`, whatever ended the run; details that
    name other instances (those unhealthy after passing) are kept."""
    causes = failure_details(run, _rolled_back_to(state, run))
    if not causes:
        return error
    if error is None:
        # A cancel leaves no error of its own; Azure's code for a run with failed instances
        # says what the user should look at.
        error = ApiError(
            code=ErrorCode.FAILED_UPGRADED_VMS.value,
            message=f"cancelled after {len(run.failed)} instance(s) failed to upgrade",
            target=state.obs.name,
        )
    named = {d.target for d in causes}
    others = [d for d in error.details or [] if d.target not in named]
    return error.model_copy(update={"details": [*causes, *others]})


def _rolled_back_to(state: PassState, run: UpgradeRun) -> dict[int, str | None]:
    """The version each instance sent back went to, as its own upgrade mark remembers it."""
    live = live_instances(state.obs.instances)
    versions: dict[int, str | None] = {}
    for iid in (*run.rolled_back, *run.rollback_failed, *run.rolling_back):
        inst = live.get(iid)
        if inst is None:
            continue
        mark = mark_left_by(run, inst)
        # A surge run never touched the old instance: its own version is where it stayed.
        own = mark.previous_version if mark is not None else None
        versions[iid] = own or version_of(inst)
    return versions


def pending_after_refusal(state: PassState, run: UpgradeRun) -> PendingUpgrade | None:
    """What is pending once a start was refused: whatever was pending before it (a refusal
    changed nothing), else the refused platform version, detected when the run started."""
    before = state.obs.status.pending_upgrade
    if before is not None:
        return before
    if run.started_by is StartedBy.PLATFORM:
        return PendingUpgrade(version=run.target.version, detected_at=run.start_time)
    return None


def refusal_retry_at(state: PassState, refused_at: str, pending: PendingUpgrade) -> datetime:
    return retry_at(
        parse_stamp(refused_at),
        parse_stamp(pending.detected_at),
        state.obs.settings.automatic_upgrade_delay,
    )
