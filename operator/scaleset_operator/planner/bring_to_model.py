"""Bringing out-of-date instances to the latest model: Rolling mode in batches, Automatic all
at once, Manual only when the user asks (update-instances). Rolling and Automatic take a member
out of service only within the PodDisruptionBudgets; one that would overdraw a budget waits
(without a timeout: nothing in status dates the wait, and there is no run to fault)."""

from __future__ import annotations

from collections.abc import Iterable

from scaleset_operator.models.instance import LABEL_INSTANCE_ID, LABEL_SCALESET, Instance
from scaleset_operator.models.scaleset import LATEST, ScaleSetSpec, UpgradeMode
from scaleset_operator.models.status import HoldReason, ResolvedImage, ScaleSetStatus
from scaleset_operator.planner.actions import (
    CreateInstance,
    DeleteInstance,
    DeleteReason,
    EventReason,
    SetInstanceImage,
)
from scaleset_operator.planner.batches import batch_size
from scaleset_operator.planner.budget_wait import BUDGET_POLL, announce_waits
from scaleset_operator.planner.disruption import BudgetLedger
from scaleset_operator.planner.health import verdict
from scaleset_operator.planner.instances import id_list
from scaleset_operator.planner.model_hash import has_extensions
from scaleset_operator.planner.passstate import NORMAL, PassState
from scaleset_operator.planner.run_end import run_finished

# The holds `status.outOfDate` shows for a model rollout with instances still to take out.
_ROLLOUT_HOLDS = frozenset(
    {HoldReason.UPGRADING, HoldReason.WAITING_FOR_BATCH, HoldReason.DISRUPTION_BUDGET}
)


def apply_model(state: PassState, live: dict[int, Instance]) -> None:
    """Rolling and Automatic modes carry model changes to instances; Manual waits for the user."""
    spec = state.obs.spec
    model = state.status.model_image
    if model is None or spec.upgrade_policy.mode is UpgradeMode.MANUAL:
        return
    model_hash = state.model_hash
    stale = [
        i
        for i in sorted(live.values(), key=lambda i: i.instance_id)
        if not i.deleting
        and not i.protected
        and i.instance_id not in state.touched
        and is_out_of_date(i, model, model_hash, spec)
    ]
    if not stale:
        return
    in_flight = _in_flight(state, model, live)
    if spec.upgrade_policy.mode is UpgradeMode.AUTOMATIC:
        room = len(stale)
    else:
        total = max(spec.capacity, 1)
        room = batch_size(total, spec.upgrade_policy.rolling_upgrade_policy) - len(in_flight)
    chosen = _within_budgets(state, stale, room, [*in_flight, *_created(state)])
    for inst in chosen:
        bring_to_model(state, inst, model, model_hash)
    if chosen:
        state.event(
            NORMAL,
            EventReason.MODEL_UPDATE,
            f"bringing instances {id_list(chosen)} to the latest model",
        )


def _in_flight(state: PassState, model: ResolvedImage, live: dict[int, Instance]) -> list[Instance]:
    """Instances out of service on the way to the model: going, or up to date but not healthy
    yet. Rolling mode counts them against its batch, the budgets against what they allow."""
    spec = state.obs.spec
    probe = spec.health_probe
    return [
        i
        for i in live.values()
        if i.deleting
        or (
            not is_out_of_date(i, model, state.model_hash, spec)
            and not verdict(i, probe, state.now).healthy
        )
    ]


def _created(state: PassState) -> list[Instance]:
    """The instances this pass creates, with the labels their pods will carry: missing until
    now, and no budget's status may show that yet."""
    spec, name = state.obs.spec, state.obs.name
    labels = dict((spec.template.get("metadata") or {}).get("labels") or {})
    return [
        Instance(
            instance_id=a.instance_id,
            name=f"{name}-{a.instance_id}",
            os_image=a.container_image,
            labels={**labels, LABEL_SCALESET: name, LABEL_INSTANCE_ID: str(a.instance_id)},
        )
        for a in state.actions
        if isinstance(a, CreateInstance) and a.surge_for is None
    ]


def _within_budgets(
    state: PassState, stale: list[Instance], room: int, in_flight: Iterable[Instance]
) -> list[Instance]:
    """Up to `room` members, in id order, that no PodDisruptionBudget holds back. A held member
    does not take a place: the next one may go instead. Held members are recorded for
    `status.outOfDate`, announced when their wait begins, and looked at again soon."""
    ledger = BudgetLedger(state.obs.budgets, in_flight)
    chosen: list[Instance] = []
    for inst in stale:
        if len(chosen) >= room:
            break
        blocked = ledger.check(inst)
        if blocked is not None:
            state.budget_waits[inst.instance_id] = blocked.budget
            continue
        ledger.take(inst)
        chosen.append(inst)
    if state.budget_waits:
        before = _waiting_before(state.obs.status)
        announce_waits(state, {i: b for i, b in state.budget_waits.items() if i not in before})
        state.wake(state.now + BUDGET_POLL)
    return chosen


def _waiting_before(status: ScaleSetStatus) -> set[int]:
    """Members the previous pass already showed waiting for a budget in a model rollout."""
    if not rollout_pending(status) or status.out_of_date is None:
        return set()
    return {
        iid
        for hold in status.out_of_date.holds
        if hold.reason is HoldReason.DISRUPTION_BUDGET
        for iid in hold.instance_ids
    }


def rollout_pending(status: ScaleSetStatus) -> bool:
    """Whether `status` shows a model rollout with instances still to take out of service (no
    OS upgrade running): the controller lists the budgets for such passes only."""
    run = status.upgrade_run
    if run is not None and not run_finished(run):
        return False
    found = status.out_of_date
    return found is not None and any(h.reason in _ROLLOUT_HOLDS for h in found.holds)


def bring_to_model(state: PassState, inst: Instance, model: ResolvedImage, model_hash: str) -> None:
    # A new image for an instance with extensions is a reimage too: they must run again.
    if inst.model_hash == model_hash and not has_extensions(state.obs.spec):
        state.act(
            SetInstanceImage(inst.name, inst.uid, model.container_image, model.urn, None),
            inst.instance_id,
        )
    else:
        state.act(
            DeleteInstance(inst.name, inst.uid, DeleteReason.RECREATE_ON_MODEL), inst.instance_id
        )


def is_out_of_date(
    inst: Instance, model: ResolvedImage, model_hash: str, spec: ScaleSetSpec
) -> bool:
    if inst.model_hash != model_hash:
        return True
    family = (inst.image_urn or "").rsplit(":", 1)[0] if inst.image_urn else None
    if family != model.family:
        return True
    # A pinned version is part of the model; with `latest` only OS upgrades move the image.
    return spec.image_reference.version != LATEST and inst.image_urn != model.urn
