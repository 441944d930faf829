"""Bringing out-of-date instances to the latest model: Rolling mode in batches, Automatic all
at once, Manual only when the user asks (update-instances)."""

from __future__ import annotations

from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import LATEST, ScaleSetSpec, UpgradeMode
from scaleset_operator.models.status import ResolvedImage
from scaleset_operator.planner.actions import (
    DeleteInstance,
    DeleteReason,
    EventReason,
    SetInstanceImage,
)
from scaleset_operator.planner.batches import batch_size
from scaleset_operator.planner.health import verdict
from scaleset_operator.planner.instances import id_list
from scaleset_operator.planner.model_hash import has_extensions
from scaleset_operator.planner.passstate import NORMAL, PassState


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
    if spec.upgrade_policy.mode is UpgradeMode.AUTOMATIC:
        chosen = stale
    else:
        chosen = stale[: max(0, _rolling_room(state, model, live))]
    for inst in chosen:
        bring_to_model(state, inst, model, model_hash)
    if chosen:
        state.event(
            NORMAL,
            EventReason.MODEL_UPDATE,
            f"bringing instances {id_list(chosen)} to the latest model",
        )


def _rolling_room(state: PassState, model: ResolvedImage, live: dict[int, Instance]) -> int:
    """How many more instances Rolling mode may take down now: a batch, less those that are
    going or are up to date but not healthy yet."""
    spec = state.obs.spec
    total = max(spec.capacity, 1)
    probe = spec.health_probe
    busy = sum(
        1
        for i in live.values()
        if i.deleting
        or (
            not is_out_of_date(i, model, state.model_hash, spec)
            and not verdict(i, probe, state.now).healthy
        )
    )
    return batch_size(total, spec.upgrade_policy.rolling_upgrade_policy) - busy


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
