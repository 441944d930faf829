"""The controller lists PodDisruptionBudgets only for a pass that would take instances out.

A pass plans first as if the namespace had no budgets; only when that plan acts does it list
the budgets and plan again. That is sound if budgets can only hold back what a plan takes out:
a plan that takes nothing out without them is the plan with them. Checked here pass by pass,
through OS upgrades and model rollouts, with budgets over random instances.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleset_operator.models.instance import LABEL_INSTANCE_ID
from scaleset_operator.planner.disruption import SelectorRequirement
from scaleset_operator.planner.plan import plan
from tests.unit.simworld import FINISHED, Sim, spec_of, version_entry


def _check_and_step(sim: Sim) -> bool:
    """One pass: the property, then the pass with the budgets as the controller acts it.
    Returns whether the plan acted."""
    observed = sim.observed()
    without = plan(replace(observed, budgets=()))
    if not without.actions:
        assert plan(observed) == without
    sim.step()
    return bool(without.actions)


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, int, int, frozenset[int], bool]:
    capacity = draw(st.integers(2, 10))
    return (
        capacity,
        draw(st.sampled_from([20, 50, 100])),
        draw(st.integers(0, 2)),
        frozenset(draw(st.sets(st.integers(0, capacity - 1), min_size=1))),
        draw(st.booleans()),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_a_plan_that_takes_nobody_out_is_the_same_with_the_budgets(
    case: tuple[int, int, int, frozenset[int], bool],
) -> None:
    capacity, batch, max_unavailable, selected, os_upgrade = case
    rolling = {
        "maxBatchInstancePercent": batch,
        "maxUnhealthyInstancePercent": 100,
        "maxUnhealthyUpgradedInstancePercent": 100,
    }
    sim = Sim(
        spec=spec_of(capacity=capacity, automatic=False, mode="Rolling", rolling=rolling),
        catalog=[version_entry("1.0.0")],
    )
    sim.settle()
    expressions = (SelectorRequirement(LABEL_INSTANCE_ID, "In", tuple(map(str, selected))),)
    # maxUnavailable 0 blocks for good: the run waits, then skips or faults on its timeout.
    sim.add_budget("some", max_unavailable, match_expressions=expressions)
    if os_upgrade:
        sim.publish(version_entry("1.1.0"))
        sim.request("start")
    else:
        sim.set_spec(capacity=capacity, mode="Rolling", automatic=False, rolling=rolling, env="two")
    acted = 0
    for _ in range(120):
        acted += _check_and_step(sim)
        if os_upgrade and sim.code in FINISHED:
            break
    assert acted, "the scenario never took anyone out"
