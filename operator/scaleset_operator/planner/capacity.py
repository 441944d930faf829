"""Keeping the instance count: recreate failed or missing instances, scale out, scale in.
It never removes a protected instance."""

from __future__ import annotations

from datetime import datetime, timedelta

from scaleset_operator.models.instance import Instance, UpgradeMark, UpgradePhase
from scaleset_operator.models.status import (
    ResolvedImage,
    RunningStatusCode,
    ScaleSetStatus,
    UpgradeRun,
)
from scaleset_operator.planner.actions import (
    CreateInstance,
    DeleteInstance,
    DeleteReason,
    EventReason,
)
from scaleset_operator.planner.instances import (
    current_origins,
    id_list,
    previous_urn,
    recreated_mark,
)
from scaleset_operator.planner.passstate import NORMAL, WARNING, PassState
from scaleset_operator.planner.timefmt import parse_stamp

# A pod stuck on a lost node never finishes terminating: how long past its grace period the
# planner waits before it stops keeping that instance's id for it.
_TERMINATION_SLACK = timedelta(seconds=30)


def keep_capacity(state: PassState, model: ResolvedImage, live: dict[int, Instance]) -> None:
    """Recreate failed or missing instances under their own ids, scale out with the lowest
    free ids, scale in from the highest ids, never removing a protected instance."""
    capacity = state.obs.spec.capacity
    run = state.status.upgrade_run
    active = [i for i in live.values() if not i.deleting]
    for inst in active:
        if inst.phase in ("Failed", "Succeeded") and not inst.protected:
            state.act(
                DeleteInstance(
                    inst.name,
                    inst.uid,
                    DeleteReason.FAILED if inst.phase == "Failed" else DeleteReason.SUCCEEDED,
                ),
                inst.instance_id,
            )
            state.event(
                WARNING,
                EventReason.INSTANCE_RECREATED,
                f"instance {inst.instance_id} {inst.phase.lower()}; recreating",
            )
    # A surge instance that is taking over stands for the original it replaces.
    standing_in = {
        i.surge_for for i in state.obs.instances if i.surge_for is not None and not i.deleting
    }
    leaving = [i for i in live.values() if i.deleting]
    terminating = [i for i in leaving if i.instance_id not in standing_in]
    wanted = capacity - len(active) - (len(leaving) - len(terminating))
    returning: list[int] = []
    if wanted > 0:
        returning = _create_missing(state, model, run, terminating, wanted)
    elif wanted < 0:
        _scale_in(state, active, -wanted)
    if returning != state.status.returning_instances:
        state.status = state.status.model_copy(update={"returning_instances": returning})
    origins = current_origins(state.status)
    if origins != state.status.recreated_from:
        state.status = state.status.model_copy(update={"recreated_from": origins})


def _create_missing(
    state: PassState,
    model: ResolvedImage,
    run: UpgradeRun | None,
    terminating: list[Instance],
    wanted: int,
) -> list[int]:
    """Create `wanted` instances; return the ids to bring back once their pods are gone.

    A deleted or failed instance comes back under its own id, so its name and its data disks
    stay; two pods cannot share a name, so that waits until the old pod is gone, but no longer
    than its grace period and a little slack (a pod stuck on a lost node would hold capacity).
    """
    awaited = []
    for inst in terminating:
        due = _termination_overdue_at(inst)
        if due is None or state.now < due:
            awaited.append(inst.instance_id)
            if due is not None:
                state.wake(due)
    taken = {i.instance_id for i in state.obs.instances}
    remembered = [iid for iid in state.status.returning_instances if iid not in taken]
    reserved = taken | set(remembered)
    lowest = (i for i in range(len(reserved) + wanted + 1) if i not in reserved)
    count = max(0, wanted - len(awaited))
    ids = remembered[:count]
    ids += [next(lowest) for _ in range(count - len(ids))]
    for iid in ids:
        state.act(_recreation(state.status, run, iid, model, state.now_s), iid)
    if ids:
        state.event(
            NORMAL, EventReason.SCALED_OUT, f"creating {len(ids)} instance(s) on {model.urn}"
        )
    return sorted(awaited)


def _termination_overdue_at(inst: Instance) -> datetime | None:
    if inst.deletion_due is None:
        return None
    return parse_stamp(inst.deletion_due) + _TERMINATION_SLACK


def _scale_in(state: PassState, active: list[Instance], excess: int) -> None:
    removable = sorted(
        (i for i in active if not i.protected), key=lambda i: i.instance_id, reverse=True
    )
    for inst in removable[:excess]:
        state.act(DeleteInstance(inst.name, inst.uid, DeleteReason.SCALE_IN), inst.instance_id)
    if len(removable) < excess:
        state.event(
            WARNING,
            EventReason.SCALE_IN_LIMITED,
            f"{excess - len(removable)} protected instance(s) keep the set above capacity",
        )
    if removable[:excess]:
        state.event(
            NORMAL, EventReason.SCALED_IN, f"removing instances {id_list(removable[:excess])}"
        )


def _mark_for_new(
    status: ScaleSetStatus, run: UpgradeRun | None, iid: int, now: str
) -> UpgradeMark | None:
    """A batch member recreated mid-upgrade still carries what to roll back to: the image it
    ran before the run."""
    if run is None or run.batch is None or iid not in run.batch.instance_ids:
        return None
    if run.code is not RunningStatusCode.ROLLING_FORWARD:
        return None
    return recreated_mark(status, run, iid, now)


def _recreation(
    status: ScaleSetStatus, run: UpgradeRun | None, iid: int, model: ResolvedImage, now: str
) -> CreateInstance:
    """A batch member recreated mid-run comes back on the target with its upgrade mark; one
    that is rolling back (deleted so that its extensions run again, or lost meanwhile) comes
    back on the image it ran before the run with a rollback mark, judged like an in-place
    rollback."""
    mark = _mark_for_new(status, run, iid, now)
    if mark is None or run is None or iid not in run.rolling_back:
        return CreateInstance(iid, model.container_image, model.urn, mark)
    back = mark.model_copy(update={"phase": UpgradePhase.ROLLING_BACK})
    return CreateInstance(iid, back.previous_image, previous_urn(run, back, None), back)
