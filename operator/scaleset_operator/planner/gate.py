"""The overall health check before an OS upgrade starts and before each of its batches, as
Azure's rolling upgrade does it. The planner acts on it and the dry-run preview
reports it, so a plan refuses exactly when a start would be refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import RollingUpgradePolicy, ScaleSetSpec
from scaleset_operator.planner.batches import exceeds
from scaleset_operator.planner.health import HealthVerdict, counts_as_unhealthy, verdict
from scaleset_operator.planner.timefmt import parse_stamp


@dataclass(frozen=True)
class HealthGate:
    """Unhealthy instances of the whole set against maxUnhealthyInstancePercent."""

    verdicts: Mapping[int, HealthVerdict]
    unhealthy_ids: frozenset[int]
    missing: int
    total: int
    limit_percent: int

    @property
    def unhealthy(self) -> int:
        # An instance that does not exist (yet) serves nothing: it counts as unhealthy.
        return len(self.unhealthy_ids) + self.missing

    @property
    def closed(self) -> bool:
        return exceeds(self.unhealthy, self.total, self.limit_percent)

    def describe(self) -> str:
        return (
            f"{self.unhealthy} of {self.total} instances are unhealthy, above "
            f"maxUnhealthyInstancePercent {self.limit_percent}%"
        )


def health_gate(
    spec: ScaleSetSpec,
    policy: RollingUpgradePolicy,
    instances: Iterable[Instance],
    now: datetime,
    judge: Callable[[Instance], HealthVerdict] | None = None,
) -> HealthGate:
    """`policy` is the run's own (the spec's when it starts); an instance within the health
    probe's grace period since its creation is Initializing and does not count yet. `judge`
    is a pass's own memo of exactly that verdict, when there is one."""
    probe = spec.health_probe
    grace = parse_duration(probe.grace_period)

    def judged(i: Instance) -> HealthVerdict:
        since = parse_stamp(i.created_at) if i.created_at else None
        return verdict(i, probe, now, since=since, grace=grace)

    # Surge instances stand in for the instances they replace, and a pod being deleted is
    # counted through the slot it leaves (`missing`), never twice.
    present = [i for i in instances if i.surge_for is None and not i.deleting]
    verdicts = {i.instance_id: (judge or judged)(i) for i in present}
    return HealthGate(
        verdicts=verdicts,
        unhealthy_ids=frozenset(iid for iid, v in verdicts.items() if counts_as_unhealthy(v)),
        missing=max(0, spec.capacity - len(present)),
        total=max(spec.capacity, 1),
        limit_percent=policy.max_unhealthy_instance_percent,
    )
