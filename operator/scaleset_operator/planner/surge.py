"""maxSurge batches: new instances first, and each old one removed only once its replacement
is healthy."""

from __future__ import annotations

from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import Batch, UpgradeRun
from scaleset_operator.planner.actions import (
    CreateInstance,
    DeleteInstance,
    DeleteReason,
    EventReason,
    PromoteInstance,
)
from scaleset_operator.planner.health_deadline import Outcome, judge_by_deadline
from scaleset_operator.planner.instances import upgrade_mark, version_of
from scaleset_operator.planner.passstate import WARNING, PassState
from scaleset_operator.planner.settle import BatchTally, close_batch
from scaleset_operator.planner.timefmt import parse_stamp


def surge_batch(
    state: PassState, run: UpgradeRun, chosen: list[Instance], batch: Batch
) -> tuple[Batch, list[CreateInstance]]:
    """One new instance on the target for each chosen one; the old ones keep serving."""
    taken = {i.instance_id for i in state.obs.instances} | {
        a.instance_id for a in state.actions if isinstance(a, CreateInstance)
    }
    # New instances get new ids, as new VMs do: never one this run has counted already.
    used = taken | set(run.succeeded) | set(run.failed)
    free = iter(range(max(used, default=-1) + 1, max(used, default=-1) + 2 + len(chosen)))
    surge_ids: list[int] = []
    creates = []
    for inst in chosen:
        new_id = next(free)
        surge_ids.append(new_id)
        mark = upgrade_mark(run, inst.os_image, version_of(inst), state.now_s)
        creates.append(
            CreateInstance(
                new_id, run.target.container_image, run.target.urn, mark, surge_for=inst.instance_id
            )
        )
    return batch.model_copy(update={"surge_ids": surge_ids}), creates


def settle_surge_batch(state: PassState, run: UpgradeRun, live: dict[int, Instance]) -> UpgradeRun:
    """Judge each new instance; the old one goes only when its replacement is healthy."""
    batch = run.batch
    assert batch is not None
    assert batch.surge_ids is not None
    surges = {i.instance_id: i for i in state.obs.instances if i.surge_for is not None}
    tally = BatchTally.of(run)
    open_pairs = 0
    # Counted by the id of the instance being replaced, as an in-place upgrade would be.
    for old_id, new_id in zip(batch.instance_ids, batch.surge_ids, strict=True):
        if old_id in tally.succeeded or old_id in tally.failed:
            continue
        new = surges.get(new_id) or live.get(new_id)
        if new is None:
            _recreate_lost_surge(state, run, old_id, new_id)
            open_pairs += 1
        elif not _judge_surge(state, run, old_id, new, tally):
            open_pairs += 1
    run = tally.onto(run)
    tidy_surges(state, run)
    if open_pairs:
        return run
    return close_batch(state, run, batch.number, live)


def _recreate_lost_surge(state: PassState, run: UpgradeRun, old_id: int, new_id: int) -> None:
    """A surge instance lost between the status write and its create is created again."""
    fresh = upgrade_mark(
        run,
        run.previous.container_image if run.previous else "",
        run.previous.version if run.previous else None,
        state.now_s,
    )
    state.act(
        CreateInstance(new_id, run.target.container_image, run.target.urn, fresh, surge_for=old_id),
        new_id,
    )


def _judge_surge(
    state: PassState, run: UpgradeRun, old_id: int, new: Instance, tally: BatchTally
) -> bool:
    """Judge the new instance for `old_id`; whether the pair is settled."""
    mark = new.upgrade
    since = parse_stamp(mark.started_at) if mark else state.now
    judged = judge_by_deadline(state, new, expected_image=run.target.container_image, since=since)
    if judged.outcome is Outcome.WAITING:
        return False
    if judged.outcome is Outcome.HEALTHY:
        tally.succeeded.append(old_id)
        return True
    tally.failed.append(old_id)
    tally.reasons[str(old_id)] = judged.reason
    tally.causes[str(old_id)] = judged.cause
    state.event(
        WARNING,
        EventReason.INSTANCE_UPGRADE_FAILED,
        f"new instance {new.instance_id} (for {old_id}) unhealthy on {run.target.urn}: "
        f"{judged.reason}",
        cause=judged.cause,
    )
    if run.automatic_rollback:
        # Rolling back a surge is removing it: the old instance never stopped.
        tally.rolled_back.append(old_id)
    return True


def tidy_surges(state: PassState, run: UpgradeRun | None = None) -> None:
    """Finish what a judged surge instance implies; idempotent, so it runs on every pass."""
    run = run or state.status.upgrade_run
    for inst in sorted(state.obs.instances, key=lambda i: i.instance_id):
        if inst.surge_for is None or inst.deleting or inst.instance_id in state.touched:
            continue
        if _surge_pending(run, inst):
            continue
        old_id = inst.surge_for
        keep = run is not None and (
            old_id in run.succeeded or (old_id in run.failed and old_id not in run.rolled_back)
        )
        if keep:
            _take_over(state, inst)
        else:
            state.act(
                DeleteInstance(inst.name, inst.uid, DeleteReason.SURGE_NOT_KEPT), inst.instance_id
            )


def _surge_pending(run: UpgradeRun | None, inst: Instance) -> bool:
    """The surge instance belongs to the batch in flight and is not judged yet."""
    return (
        run is not None
        and run.batch is not None
        and run.batch.surge_ids is not None
        and inst.instance_id in run.batch.surge_ids
        and inst.surge_for not in run.succeeded
        and inst.surge_for not in run.failed
    )


def _take_over(state: PassState, inst: Instance) -> None:
    """A kept surge instance replaces the old one: the old one goes and the new is promoted."""
    old = next(
        (o for o in state.obs.instances if o.instance_id == inst.surge_for and not o.deleting),
        None,
    )
    if old is not None and old.surge_for is None and old.instance_id not in state.touched:
        state.act(
            DeleteInstance(old.name, old.uid, DeleteReason.REPLACED_BY_SURGE), old.instance_id
        )
    state.act(PromoteInstance(inst.name, inst.uid), inst.instance_id)
