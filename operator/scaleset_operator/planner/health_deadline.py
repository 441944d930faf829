"""Judging one changed instance against its health deadline: healthy, failed, or still to wait
for (the pass then wakes at the deadline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from scaleset_operator.models.instance import Instance
from scaleset_operator.planner.health import HealthVerdict, verdict
from scaleset_operator.planner.passstate import PassState


class Outcome(Enum):
    HEALTHY = "Healthy"
    FAILED = "Failed"
    WAITING = "Waiting"


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    verdict: HealthVerdict
    timed_out: bool = False

    @property
    def cause(self) -> str:
        """The failure as a code: the deadline's, or the verdict's own."""
        return "HealthTimeout" if self.timed_out else self.verdict.reason

    @property
    def reason(self) -> str:
        """Why it failed, saying so when the deadline rather than the instance decided."""
        if self.timed_out:
            return f"HealthTimeout ({self.verdict.reason})"
        return self.verdict.reason


def judge_by_deadline(
    state: PassState, inst: Instance, *, expected_image: str, since: datetime
) -> Judgement:
    """An instance changed at `since` gets the health timeout to become healthy on
    `expected_image`; a fail-fast verdict ends the wait early when the operator allows it."""
    v = verdict(
        inst,
        state.obs.spec.health_probe,
        state.now,
        expected_image=expected_image,
        since=since,
        grace=state.grace_period,
    )
    if v.healthy:
        return Judgement(Outcome.HEALTHY, v)
    deadline = since + state.health_timeout
    timed_out = state.now >= deadline
    if timed_out or (v.fail_fast and state.obs.settings.fail_fast):
        return Judgement(Outcome.FAILED, v, timed_out)
    state.wake(deadline)
    return Judgement(Outcome.WAITING, v)
