"""Verdicts kept between passes change no plan: the same upgrades, planned with and without
them, give the same actions, status and events on every pass."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scaleset_operator.models.instance import Instance
from scaleset_operator.planner.health import HealthState
from scaleset_operator.planner.observed import Observed
from scaleset_operator.planner.plan import plan
from scaleset_operator.planner.verdict_memo import VerdictMemo
from tests.unit.simworld import FINISHED, T0, Sim, spec_of, version_entry
from tests.unit.test_planner_properties import Case, cases, pass_limit, start


def _with_grace(sim: Sim, grace: int) -> None:
    probe = sim.spec.health_probe.model_copy(update={"grace_period": f"PT{grace}S"})
    sim.spec = sim.spec.model_copy(update={"health_probe": probe})


def _interned(obs: Observed, pool: dict[str, Instance]) -> tuple[Instance, ...]:
    """The simulated world copies every instance on every pass; the pod cache does not. Equal
    instances become one object again, as they are in the operator."""
    return tuple(pool.setdefault(i.model_dump_json(), i) for i in obs.instances)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_capacity=20), st.integers(0, 3))
def test_kept_verdicts_plan_exactly_as_fresh_ones(case: Case, grace: int) -> None:
    event("instances reused" if _drive_both_ways(case, grace) else "no instance reused")


def test_a_rolling_upgrade_reuses_kept_verdicts() -> None:
    case = Case(
        capacity=12,
        rolling={"maxBatchInstancePercent": 25, "maxUnhealthyInstancePercent": 50},
        tag="unready-1.1.0",
        user_start=False,
        disable_rollback=False,
        zoned=True,
        protected=frozenset({3}),
        disrupted=frozenset(),
        advance=1,
    )
    assert _drive_both_ways(case, grace=2) > 20


def _drive_both_ways(case: Case, grace: int) -> int:
    """Plans every pass of an upgrade with and without kept verdicts, asserts both are the
    same, and says how many instance objects were met again."""
    sim = start(case)
    _with_grace(sim, grace)
    memo, pool = VerdictMemo(), {}
    reused = 0
    for _ in range(pass_limit(case)):
        obs = sim.observed()
        instances = _interned(obs, pool)
        reused += sum(1 for i, j in zip(instances, obs.instances, strict=True) if i is not j)
        memo.keep_only(instances)
        kept = plan(dataclasses.replace(obs, instances=instances, verdicts=memo))
        assert kept == sim.step(case.advance)
        if sim.code in FINISHED:
            break
    assert len(memo) <= len(pool)
    return reused


def test_a_kept_verdict_turns_when_the_grace_period_ends() -> None:
    """The clock alone moves a verdict across the end of the grace period, with no new
    instance object: unready within it is Initializing, after it Unhealthy."""
    sim = Sim(spec=spec_of(capacity=1), catalog=[version_entry("1.0.0", "unready-1.0.0")])
    _with_grace(sim, 5)
    sim.settle(limit=20, advance=0)
    (inst,) = sim.world.live()
    memo = VerdictMemo()
    probe = sim.spec.health_probe
    from datetime import timedelta

    created = T0
    within = memo.judge(inst, probe, created + timedelta(seconds=2), timedelta(seconds=5))
    after = memo.judge(inst, probe, created + timedelta(seconds=6), timedelta(seconds=5))
    again = memo.judge(inst, probe, created + timedelta(seconds=3), timedelta(seconds=5))
    assert within.state is HealthState.INITIALIZING
    assert after.state is HealthState.UNHEALTHY
    assert again is within


def test_only_the_latest_instances_are_kept() -> None:
    sim = Sim(spec=spec_of(capacity=3), catalog=[version_entry("1.0.0")])
    sim.settle(limit=20)
    memo = VerdictMemo()
    first = sim.world.live()
    for inst in first:
        memo.judge(inst, sim.spec.health_probe, sim.now, timedelta(0))
    assert len(memo) == 3
    memo.keep_only(first[:1])
    assert len(memo) == 1
