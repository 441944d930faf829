"""The model image: what the spec's image reference resolves to, the image new instances get,
and the ImageResolved condition that says so."""

from __future__ import annotations

from scaleset_operator.catalog.resolve import pin, resolve
from scaleset_operator.models.scaleset import LATEST, ScaleSetSpec
from scaleset_operator.models.status import Condition, ResolvedImage
from scaleset_operator.planner import conditions as cond
from scaleset_operator.planner.actions import EventReason
from scaleset_operator.planner.passstate import NORMAL, PassState


def resolve_model(state: PassState) -> ResolvedImage | None:
    """The image new instances get; `latest` moves only through OS upgrades once pinned."""
    obs, status = state.obs, state.status
    ref = obs.spec.image_reference
    current = status.model_image
    same_family = current is not None and _ref_matches(current, obs.spec)
    pinned_ok = ref.version == LATEST or (current is not None and current.version == ref.version)
    if current is not None and same_family and pinned_ok:
        model = current
    else:
        entry = resolve(obs.catalog, ref, obs.spec.location, skip_versions=status.faulted_versions)
        if entry is None:
            _report_unresolved(state, current)
            return current
        model = pin(entry, ref)
        if current is not None and model.urn != current.urn:
            state.event(
                NORMAL, EventReason.MODEL_IMAGE_CHANGED, f"model image {current.urn} -> {model.urn}"
            )
    state.status = state.status.model_copy(
        update={
            "model_image": model,
            "model_hash": state.model_hash,
            "current_image_version": model.version,
            "conditions": resolved_conditions(state, model),
        }
    )
    return model


def _report_unresolved(state: PassState, current: ResolvedImage | None) -> None:
    obs, status = state.obs, state.status
    ref = obs.spec.image_reference
    keep = f"; instances keep {current.urn}" if current else ""
    state.status = status.model_copy(
        update={
            "conditions": cond.set_condition(
                status.conditions,
                type_=cond.IMAGE_RESOLVED,
                status=False,
                reason="ImageNotFound",
                message=f"no ImageVersion matches {ref.describe()} in location "
                f"{obs.spec.location} (published, not excluded, replicated there)" + keep,
                now=state.now_s,
                generation=obs.generation,
            )
        }
    )


def resolved_conditions(state: PassState, model: ResolvedImage) -> list[Condition]:
    """The conditions with ImageResolved saying what the image reference resolves to."""
    ref = state.obs.spec.image_reference
    return cond.set_condition(
        state.status.conditions,
        type_=cond.IMAGE_RESOLVED,
        status=True,
        reason="Resolved",
        message=f"{ref.describe()} resolves to {model.urn} ({model.container_image})",
        now=state.now_s,
        generation=state.obs.generation,
    )


def _ref_matches(current: ResolvedImage, spec: ScaleSetSpec) -> bool:
    ref = spec.image_reference
    return (current.publisher, current.offer, current.sku, current.gallery, current.image) == (
        ref.publisher,
        ref.offer,
        ref.sku,
        ref.gallery,
        ref.image,
    )
