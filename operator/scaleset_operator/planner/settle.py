"""Settling the batch in flight: patch its members, judge them, roll back what fails, and
close the batch against the upgraded-unhealthy budget."""

from __future__ import annotations

from dataclasses import dataclass

from scaleset_operator.models.instance import Instance, UpgradeMark, UpgradePhase
from scaleset_operator.models.status import ApiErrorBase, ErrorCode, UpgradeRun
from scaleset_operator.planner.actions import (
    CreateInstance,
    DeleteInstance,
    DeleteReason,
    EventReason,
)
from scaleset_operator.planner.batches import exceeds
from scaleset_operator.planner.budget_wait import (
    Started,
    fault_on_expired,
    start_members,
    starts_nobody,
)
from scaleset_operator.planner.health import counts_as_unhealthy
from scaleset_operator.planner.health_deadline import Judgement, Outcome, judge_by_deadline
from scaleset_operator.planner.instance_upgrade import roll_back
from scaleset_operator.planner.instances import creation_time, mark_left_by, upgrade_mark
from scaleset_operator.planner.passstate import NORMAL, WARNING, PassState
from scaleset_operator.planner.run_end import fault_run, finish_faulting
from scaleset_operator.planner.timefmt import parse_stamp, stamp


@dataclass
class BatchTally:
    """The run's per-instance outcomes, copied so that judging a batch can add to them."""

    succeeded: list[int]
    failed: list[int]
    rolled_back: list[int]
    rollback_failed: list[int]
    rolling_back: list[int]
    reasons: dict[str, str]
    causes: dict[str, str]

    @classmethod
    def of(cls, run: UpgradeRun) -> BatchTally:
        return cls(
            succeeded=list(run.succeeded),
            failed=list(run.failed),
            rolled_back=list(run.rolled_back),
            rollback_failed=list(run.rollback_failed),
            rolling_back=list(run.rolling_back),
            reasons=dict(run.failure_reasons),
            causes=dict(run.failure_causes),
        )

    def onto(self, run: UpgradeRun) -> UpgradeRun:
        return run.model_copy(
            update={
                "succeeded": self.succeeded,
                "failed": self.failed,
                "rolled_back": self.rolled_back,
                "rollback_failed": self.rollback_failed,
                "rolling_back": self.rolling_back,
                "failure_reasons": self.reasons,
                "failure_causes": self.causes,
            }
        )

    def settled_ids(self) -> set[int]:
        """Judged for good, as of now: upgraded, or failed and not on its way back. A set, as
        the tally's lists grow to the whole scale set and every member is looked up."""
        back = set(self.rolling_back)
        return set(self.succeeded) | {i for i in self.failed if i not in back}


def settle_batch(state: PassState, run: UpgradeRun, live: dict[int, Instance]) -> UpgradeRun:
    """Judge the members started, roll back what fails, start the members still to start
    within the disruption budgets, and close the batch once none is open."""
    batch = run.batch
    if batch is None:
        return finish_faulting(state, run)
    tally = BatchTally.of(run)
    # Members scaled in by this pass are no longer waited for.
    kept = _kept_ids(state, live)
    skipped = set(run.skipped)
    members = [i for i in batch.instance_ids if i in kept and i not in skipped]
    waiting: list[Instance] = []
    # Judging a member changes the tally for that member alone: what was settled before the
    # loop is what each member finds when its turn comes.
    settled = tally.settled_ids()
    rolling_back = set(tally.rolling_back)
    for iid in members:
        if iid in settled:
            continue
        inst = live.get(iid)
        if inst is None or inst.deleting:
            continue  # recreated by capacity keeping, on the target and with a mark
        if iid in rolling_back:
            _settle_rollback(state, run, inst, tally)
        elif _to_start(run, inst):
            waiting.append(inst)
        else:
            _settle_member(state, run, inst, tally)
    run = tally.onto(run)
    started = start_members(state, run, waiting, _in_flight(members, tally, live, waiting))
    run = started.run
    dropped = _not_waited_for(run, waiting, started)
    still_open = [i for i in _open_members(members, tally, live) if i not in dropped]
    if still_open:
        state.open_ids = tuple(still_open)
        return run
    run = close_batch(state, run, batch.number, live)
    return fault_on_expired(state, run, started.expired)


def _not_waited_for(run: UpgradeRun, waiting: list[Instance], started: Started) -> set[int]:
    """Members left unstarted that the batch no longer waits for: skipped, blocked past
    disruptionBudgetTimeout, or any once the run faults or is cancelled."""
    assert run.batch is not None
    waits = {w.instance_id for w in run.batch.blocked_by_disruption_budget or []}
    if starts_nobody(run):
        waits = set()
    else:
        waits -= {w.instance_id for w in started.expired}
    return {i.instance_id for i in waiting} - set(started.started) - waits


def _to_start(run: UpgradeRun, inst: Instance) -> bool:
    """A member not on the target yet: it waits for its start (a protected one never starts)."""
    return inst.os_image != run.target.container_image and not inst.protected


def _in_flight(
    members: list[int], tally: BatchTally, live: dict[int, Instance], waiting: list[Instance]
) -> list[Instance]:
    """Members out of service by this run's doing: started and not settled, or on their way
    back."""
    not_started = {i.instance_id for i in waiting}
    settled = tally.settled_ids()
    ids = [i for i in members if i not in settled and i not in not_started]
    listed = set(ids)
    ids += [i for i in tally.rolling_back if i not in listed]
    return [live[i] for i in ids if i in live and not live[i].protected]


def _settle_rollback(state: PassState, run: UpgradeRun, inst: Instance, tally: BatchTally) -> None:
    """Send a member back until it runs its previous image under a rollback mark, then judge
    it there; without this run's mark there is nothing to go back to."""
    iid = inst.instance_id
    mark = mark_left_by(run, inst)
    if mark is None:
        tally.rolling_back.remove(iid)
        tally.rollback_failed.append(iid)
        return
    if inst.os_image != mark.previous_image or mark.phase is not UpgradePhase.ROLLING_BACK:
        roll_back(state, run, inst, mark)
        return
    judged = judge_by_deadline(
        state, inst, expected_image=mark.previous_image, since=parse_stamp(mark.started_at)
    )
    if judged.outcome is Outcome.HEALTHY:
        tally.rolling_back.remove(iid)
        tally.rolled_back.append(iid)
        state.event(
            NORMAL,
            EventReason.INSTANCE_ROLLED_BACK,
            f"instance {iid} is healthy on {mark.previous_image}",
        )
    elif judged.outcome is Outcome.FAILED:
        tally.rolling_back.remove(iid)
        tally.rollback_failed.append(iid)
        state.event(
            WARNING,
            EventReason.ROLLBACK_FAILED,
            f"instance {iid} did not recover on {mark.previous_image}: {judged.verdict.reason}",
        )


def _settle_member(state: PassState, run: UpgradeRun, inst: Instance, tally: BatchTally) -> None:
    """Judge a member on the target (a protected one not on it is not waited for)."""
    mark = mark_left_by(run, inst)
    if inst.os_image != run.target.container_image:
        return
    if mark is None:
        if inst.protected:
            return
        mark = _adopted_mark(state, run, inst)
    judged = judge_by_deadline(
        state, inst, expected_image=run.target.container_image, since=parse_stamp(mark.started_at)
    )
    if judged.outcome is Outcome.HEALTHY:
        tally.succeeded.append(inst.instance_id)
    elif judged.outcome is Outcome.FAILED:
        _fail_member(state, run, inst, mark, judged, tally)


def _adopted_mark(state: PassState, run: UpgradeRun, inst: Instance) -> UpgradeMark:
    """The mark to judge a member by that is on the target without this run's mark."""
    own = inst.upgrade
    if own is not None and own.target_version == run.target.version:
        # Patched by a pass whose status write was lost: its own mark knows what it ran
        # before and when its upgrade began.
        return own.model_copy(update={"run": run.start_time})
    # Created on the target (scale-out or recreation): judge it from its creation.
    since = creation_time(inst) or state.now
    return upgrade_mark(
        run,
        run.previous.container_image if run.previous else inst.os_image,
        run.previous.version if run.previous else None,
        stamp(since),
    )


def _fail_member(
    state: PassState,
    run: UpgradeRun,
    inst: Instance,
    mark: UpgradeMark,
    judged: Judgement,
    tally: BatchTally,
) -> None:
    iid = inst.instance_id
    tally.failed.append(iid)
    tally.reasons[str(iid)] = judged.reason
    tally.causes[str(iid)] = judged.cause
    state.event(
        WARNING,
        EventReason.INSTANCE_UPGRADE_FAILED,
        f"instance {iid} unhealthy on {run.target.urn}: {judged.reason}",
        cause=judged.cause,
    )
    if run.automatic_rollback and mark.previous_image != run.target.container_image:
        tally.rolling_back.append(iid)
        roll_back(state, run, inst, mark)


def _open_members(members: list[int], tally: BatchTally, live: dict[int, Instance]) -> list[int]:
    """Members the batch still waits for; a protected one is not waited for unless it failed."""
    succeeded, failed, back = set(tally.succeeded), set(tally.failed), set(tally.rolling_back)
    open_members = [i for i in members if i not in succeeded and (i not in failed or i in back)]
    return [i for i in open_members if not (i in live and live[i].protected and i not in failed)]


def close_batch(
    state: PassState, run: UpgradeRun, number: int, live: dict[int, Instance]
) -> UpgradeRun:
    """After every batch, in place or surge: abort above the upgraded-unhealthy share."""
    run = run.model_copy(
        update={"batch": None, "batches_done": run.batches_done + 1, "last_batch_end": state.now_s}
    )
    succeeded, failed = len(run.succeeded), len(run.failed)
    state.event(
        NORMAL,
        EventReason.BATCH_COMPLETED,
        f"batch {number} done: {succeeded} upgraded, {failed} failed so far",
    )
    upgraded = succeeded + failed
    limit = run.policy.max_unhealthy_upgraded_instance_percent
    relapsed = _unhealthy_after_passing(state, run, live)
    unhealthy = failed + len(relapsed)
    if run.stop_reason is None and exceeds(unhealthy, upgraded, limit):
        later = f" ({len(relapsed)} of them after passing their health check)" if relapsed else ""
        run = fault_run(
            state,
            run,
            ErrorCode.UPGRADED_UNHEALTHY,
            f"{unhealthy} of {upgraded} upgraded instances are unhealthy{later}, above "
            f"maxUnhealthyUpgradedInstancePercent {limit}%",
            also=relapsed,
        )
    return finish_faulting(state, run)


def _unhealthy_after_passing(
    state: PassState, run: UpgradeRun, live: dict[int, Instance]
) -> list[ApiErrorBase]:
    """Upgraded instances that passed their health check and are unhealthy now.

    Azure stops when too many upgraded instances *become* unhealthy, so an instance that broke
    after its check counts too. It stays counted as upgraded (it did run the new image
    healthily) and is not rolled back: automatic rollback is for instances that never became
    healthy. Surge runs cannot be followed this way: the instance that took over has a new id.
    """
    found = []
    for iid in sorted(run.succeeded):
        inst = live.get(iid)
        if inst is None or inst.deleting or inst.os_image != run.target.container_image:
            continue
        v = state.verdict_of(inst)
        if counts_as_unhealthy(v):
            found.append(
                ApiErrorBase(
                    code=v.reason,
                    target=f"instance {iid}",
                    message=f"{v.reason} after passing its health check on {run.target.version}",
                )
            )
    return found


def _kept_ids(state: PassState, live: dict[int, Instance]) -> set[int]:
    """Instance ids that exist after this pass's scale-in."""
    removed = {
        a.name
        for a in state.actions
        if isinstance(a, DeleteInstance) and a.reason is DeleteReason.SCALE_IN
    }
    return {iid for iid, inst in live.items() if inst.name not in removed} | {
        a.instance_id for a in state.actions if isinstance(a, CreateInstance)
    }
