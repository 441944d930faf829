"""A dry run of an OS upgrade: the batches it would take now, assuming each succeeds.

Pure, like the planner it mirrors: the same gate and the same batch choice
(`next_batch`), walked forward without touching anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.planner.batches import exceeds, next_batch, percent_of
from scaleset_operator.planner.health import counts_as_unhealthy, verdict


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
    spec: ScaleSetSpec, instances: list[Instance], target_image: str, now: datetime
) -> Preview:
    live = [i for i in instances if not i.deleting and i.surge_for is None]
    policy = spec.upgrade_policy.rolling_upgrade_policy
    total = max(spec.capacity, 1)
    unhealthy = {
        i.instance_id for i in live if counts_as_unhealthy(verdict(i, spec.health_probe, now))
    }
    unhealthy_count = len(unhealthy) + max(0, spec.capacity - len(live))
    refused = None
    if exceeds(unhealthy_count, total, policy.max_unhealthy_instance_percent):
        refused = (
            f"MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade: {unhealthy_count} of "
            f"{total} instances are unhealthy, above {policy.max_unhealthy_instance_percent}% "
            f"(at most {percent_of(total, policy.max_unhealthy_instance_percent)})"
        )
    remaining = sorted(
        (i for i in live if not i.protected and i.os_image != target_image),
        key=lambda i: i.instance_id,
    )
    batches: list[PreviewBatch] = []
    while remaining and refused is None:
        now_unhealthy = frozenset(unhealthy)

        def is_unhealthy(inst: Instance, bad: frozenset[int] = now_unhealthy) -> bool:
            return inst.instance_id in bad

        chosen, zone = next_batch(
            remaining,
            total=total,
            policy=policy,
            is_unhealthy=is_unhealthy,
            unhealthy_now=len(now_unhealthy),
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
