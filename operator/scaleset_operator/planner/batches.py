"""Batch sizing and selection for a rolling OS upgrade (Azure's steps 1-2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import RollingUpgradePolicy


def percent_of(total: int, percent: int) -> int:
    """Whole instances in `percent` of `total`, rounded down."""
    return total * percent // 100


def batch_size(total: int, policy: RollingUpgradePolicy) -> int:
    """At most `maxBatchInstancePercent` of all instances, at least one."""
    return max(1, percent_of(total, policy.max_batch_instance_percent))


def exceeds(count: int, total: int, percent: int) -> bool:
    """True when `count` is strictly above `percent` of `total`."""
    return count * 100 > percent * max(total, 1)


def next_batch(
    candidates: Sequence[Instance],
    *,
    total: int,
    policy: RollingUpgradePolicy,
    is_unhealthy: Callable[[Instance], bool],
    unhealthy_now: int,
) -> tuple[list[Instance], str | None]:
    """The instances of the next batch and its zone.

    Unhealthy instances first when `prioritizeUnhealthyInstances`; one zone per batch unless
    `enableCrossZoneUpgrade`. The batch shrinks so that the healthy instances it takes down plus
    those already unhealthy stay within `maxUnhealthyInstancePercent` (Azure: unhealthy instances
    can make a batch smaller), but it always holds at least one instance.
    """
    if not candidates:
        return [], None

    def order(inst: Instance) -> tuple[int, str, int]:
        first = 0 if policy.prioritize_unhealthy_instances and is_unhealthy(inst) else 1
        return (first, inst.zone or "", inst.instance_id)

    ordered = sorted(candidates, key=order)
    zone = ordered[0].zone
    if not policy.enable_cross_zone_upgrade:
        ordered = [i for i in ordered if i.zone == zone]
    size = batch_size(total, policy)
    budget = percent_of(total, policy.max_unhealthy_instance_percent) - unhealthy_now
    chosen: list[Instance] = []
    taken_down = 0
    for inst in ordered:
        if len(chosen) >= size:
            break
        cost = 0 if is_unhealthy(inst) else 1
        if chosen and taken_down + cost > budget:
            continue
        chosen.append(inst)
        taken_down += cost
    return chosen, (zone if not policy.enable_cross_zone_upgrade else None)
