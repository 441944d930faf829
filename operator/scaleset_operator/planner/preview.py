"""A dry run of an OS upgrade: the target and the batches it would take now, assuming each
succeeds.

Pure, like the planner it mirrors, and built from the planner's own decisions: the target
(`upgrade_target`), the health gate (`health_gate`) and the batch choice (`next_batch`), walked
forward without touching anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import ErrorCode, ScaleSetStatus, StartedBy
from scaleset_operator.planner.batches import next_batch
from scaleset_operator.planner.gate import health_gate
from scaleset_operator.planner.schedule import UpgradeTarget, upgrade_target


@dataclass(frozen=True)
class PreviewBatch:
    number: int
    zone: str | None
    instance_ids: tuple[int, ...]


@dataclass(frozen=True)
class Preview:
    batches: tuple[PreviewBatch, ...]
    skipped_protected: tuple[int, ...]
    already_on_target: tuple[int, ...]
    unhealthy: tuple[int, ...]
    refused: str | None


def preview(
    spec: ScaleSetSpec, instances: Sequence[Instance], target_image: str, now: datetime
) -> Preview:
    policy = spec.upgrade_policy.rolling_upgrade_policy
    gate = health_gate(spec, policy, instances, now)
    refused = None
    if gate.closed:
        refused = f"{ErrorCode.UNHEALTHY_BEFORE.value}: {gate.describe()}"
    live = [i for i in instances if not i.deleting and i.surge_for is None]
    remaining = sorted(
        (i for i in live if not i.protected and i.os_image != target_image),
        key=lambda i: i.instance_id,
    )
    unhealthy = set(gate.unhealthy_ids)
    batches: list[PreviewBatch] = []
    while remaining and refused is None:
        now_unhealthy = frozenset(unhealthy)

        def is_unhealthy(inst: Instance, bad: frozenset[int] = now_unhealthy) -> bool:
            return inst.instance_id in bad

        chosen, zone = next_batch(
            remaining,
            total=gate.total,
            policy=policy,
            is_unhealthy=is_unhealthy,
            unhealthy_now=len(now_unhealthy) + gate.missing,
        )
        batches.append(PreviewBatch(len(batches) + 1, zone, tuple(i.instance_id for i in chosen)))
        taken = {i.instance_id for i in chosen}
        # Assume success: upgraded instances are healthy for the next batch's budget.
        unhealthy -= taken
        remaining = [i for i in remaining if i.instance_id not in taken]
    return Preview(
        batches=tuple(batches),
        skipped_protected=tuple(sorted(i.instance_id for i in live if i.protected)),
        already_on_target=tuple(
            sorted(i.instance_id for i in live if not i.protected and i.os_image == target_image)
        ),
        unhealthy=tuple(sorted(unhealthy)),
        refused=refused,
    )


@dataclass(frozen=True)
class StartPreview:
    """What `rolling-upgrade start` would do now: its target, and the batches to it (None
    when there is no target)."""

    target: UpgradeTarget
    preview: Preview | None


def preview_start(
    spec: ScaleSetSpec,
    status: ScaleSetStatus,
    catalog: Sequence[CatalogEntry],
    instances: Sequence[Instance],
    now: datetime,
) -> StartPreview:
    """The dry run of a user's start, with the target the planner's own start would pick."""
    target = upgrade_target(spec, status, catalog, now, started_by=StartedBy.USER)
    if target.image is None:
        return StartPreview(target, None)
    return StartPreview(target, preview(spec, instances, target.image.container_image, now))
