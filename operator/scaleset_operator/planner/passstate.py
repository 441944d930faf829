"""What one planning pass carries from step to step: the snapshot, the status it is building,
and the actions, events and wake-ups decided so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.planner.actions import Action, EmitEvent, EventReason
from scaleset_operator.planner.health import HealthVerdict
from scaleset_operator.planner.observed import Observed
from scaleset_operator.planner.timefmt import stamp
from scaleset_operator.planner.verdict_memo import VerdictMemo

NORMAL = "Normal"
WARNING = "Warning"


@dataclass
class PassState:
    """Scratch state of one planning pass."""

    obs: Observed
    status: ScaleSetStatus
    # The hash of the spec's model, computed once for the whole pass.
    model_hash: str
    actions: list[Action] = field(default_factory=list)
    events: list[EmitEvent] = field(default_factory=list)
    wake_at: list[datetime] = field(default_factory=list)
    # Instances an earlier step of this pass already acted on: later steps leave them alone.
    touched: set[int] = field(default_factory=set)
    # A platform run held between batches by a closed maintenance window, and when the next
    # one opens (None only for windows that never open).
    waiting_for_window: bool = False
    window_opens_at: datetime | None = None
    # Model-rollout members a PodDisruptionBudget holds back in this pass, with its name (an OS
    # upgrade's members wait in its batch's status instead).
    budget_waits: dict[int, str] = field(default_factory=dict)
    # Members of the batch in flight still to settle after this pass (none, or no batch).
    open_ids: tuple[int, ...] = ()
    _verdicts: VerdictMemo | None = field(default=None, repr=False)

    @property
    def now(self) -> datetime:
        return self.obs.now

    # The snapshot does not change during a pass: what is derived from it is derived once.
    @cached_property
    def now_s(self) -> str:
        return stamp(self.obs.now)

    @cached_property
    def health_timeout(self) -> timedelta:
        return parse_duration(self.obs.spec.upgrade_policy.health_timeout)

    @cached_property
    def grace_period(self) -> timedelta:
        return parse_duration(self.obs.spec.health_probe.grace_period)

    def verdict_of(self, inst: Instance) -> HealthVerdict:
        """The instance's health now, judged from its creation (the gate, the summary and the
        check of upgraded instances all ask): once per instance and pass at most, and once per
        instance object when the caller keeps verdicts between passes."""
        if self._verdicts is None:
            self._verdicts = self.obs.verdicts if self.obs.verdicts is not None else VerdictMemo()
        return self._verdicts.judge(
            inst, self.obs.spec.health_probe, self.obs.now, self.grace_period
        )

    def event(
        self,
        type_: str,
        reason: EventReason,
        message: str,
        *,
        version: str | None = None,
        cause: str | None = None,
    ) -> None:
        self.events.append(EmitEvent(type_, reason, message, version, cause))

    def act(self, action: Action, instance_id: int | None = None) -> None:
        self.actions.append(action)
        if instance_id is not None:
            self.touched.add(instance_id)

    def wake(self, at: datetime) -> None:
        self.wake_at.append(at)
