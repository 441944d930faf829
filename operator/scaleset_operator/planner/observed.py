"""The planner's input and output."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.instance import Instance, Request
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.planner.actions import Action, EmitEvent
from scaleset_operator.planner.disruption import DisruptionBudget
from scaleset_operator.planner.verdict_memo import VerdictMemo
from scaleset_operator.planner.waves.gate import WaveGate


@dataclass(frozen=True)
class PlannerSettings:
    """Operator-wide settings the planner needs (from flags or the chart's values)."""

    automatic_upgrade_delay: timedelta = timedelta(seconds=5)
    fail_fast: bool = True
    history_limit: int = 5


@dataclass(frozen=True)
class Observed:
    """One consistent snapshot of a scale set and everything its decisions depend on."""

    name: str
    namespace: str
    generation: int | None
    spec: ScaleSetSpec
    status: ScaleSetStatus
    instances: tuple[Instance, ...]
    catalog: tuple[CatalogEntry, ...]
    now: datetime
    requests: tuple[Request, ...] = ()
    settings: PlannerSettings = field(default_factory=PlannerSettings)
    # The namespace's PodDisruptionBudgets; listed only while an OS upgrade or a model rollout
    # has instances to take out of service.
    budgets: tuple[DisruptionBudget, ...] = ()
    # The wave that orders this scale set's platform upgrades, if any selects it.
    wave: WaveGate | None = None
    # Verdicts of earlier passes, for the instances that are the same objects (memoisation
    # only: plans are the same without it).
    verdicts: VerdictMemo | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    status: ScaleSetStatus
    events: tuple[EmitEvent, ...]
    requeue_after: float | None
    # Members of the batch in flight still to settle: the controller gathers their watch
    # events a little before the next pass, and wakes at once when the last of them is Ready.
    open_ids: tuple[int, ...] = ()
