"""PodDisruptionBudgets during model rollouts (upgradePolicy.mode Rolling and Automatic), pass
by pass in the simulated world.

A template change recreates instances (or patches them in place when only the pinned version
changed); either takes them out of service, so a member that would overdraw a budget waits.
The simulated disruption controller (`Sim.disruption_budgets`) counts only the pods it sees: an
instance deleted and not created again yet is out of service all the same, and the planner must
count it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleset_operator.models.instance import LABEL_INSTANCE_ID, LABEL_SCALESET
from scaleset_operator.models.status import (
    HoldReason,
    OutOfDate,
    OutOfDateHold,
    RunningStatusCode,
    ScaleSetStatus,
    UpgradeRun,
)
from scaleset_operator.planner.actions import DeleteInstance, SetInstanceImage
from scaleset_operator.planner.bring_to_model import rollout_pending
from scaleset_operator.planner.disruption import SelectorRequirement
from scaleset_operator.planner.observed import Plan
from tests.unit.simworld import Sim, spec_of, version_entry

EVERY_POD = {LABEL_SCALESET: "web"}


def settled(capacity: int = 10, **spec: Any) -> Sim:
    """A scale set on 1.0.0, every instance ready, no OS upgrade of its own."""
    sim = Sim(
        spec=spec_of(capacity=capacity, automatic=False, **spec),
        catalog=[version_entry("1.0.0")],
    )
    sim.settle()
    return sim


def taken_out(plan: Plan) -> list[int]:
    """Instances a pass deletes or patches."""
    return sorted(
        int(a.name.rsplit("-", 1)[1])
        for a in plan.actions
        if isinstance(a, DeleteInstance | SetInstanceImage)
    )


def out_of_service(sim: Sim, capacity: int, patched: list[int]) -> set[int]:
    """Instances not serving: missing, terminating, not ready, or patched and not restarted."""
    serving = {i.instance_id for i in sim.world.live() if i.ready}
    return (set(range(capacity)) - serving) | set(patched)


def rollout_watching(sim: Sim, selected: set[int], limit: int, *, passes: int = 300) -> int:
    """Steps until every instance is on the latest model; returns the most selected instances
    ever out of service at once (checked after each act step and after each kubelet round)."""
    capacity = sim.spec.capacity
    worst = 0
    for _ in range(passes):
        plan = sim.step(kubelet=False)
        worst = max(worst, len(out_of_service(sim, capacity, taken_out(plan)) & selected))
        sim.world.kubelet(sim.now)
        worst = max(worst, len(out_of_service(sim, capacity, []) & selected))
        assert worst <= limit, f"{worst} selected instances out at once, budget allows {limit}"
        if sim.status.latest_model_instances == capacity and not plan.actions:
            return worst
    raise AssertionError("the model rollout did not end")


def holds(sim: Sim) -> dict[str, list[int]]:
    found = sim.status.out_of_date
    assert found is not None
    return {h.reason.value: h.instance_ids for h in found.holds}


@pytest.mark.parametrize("mode", ["Rolling", "Automatic"])
def test_a_template_change_takes_out_no_more_than_the_budget_allows(mode: str) -> None:
    # Batches of two, so that the budget, not the batch, is what holds a member back.
    rolling = {"maxBatchInstancePercent": 20, "maxUnhealthyInstancePercent": 20}
    sim = settled(mode=mode, rolling=rolling)
    sim.add_budget("web", 1, EVERY_POD)
    sim.set_spec(capacity=10, mode=mode, automatic=False, rolling=rolling, env="two")
    first = sim.step(kubelet=False)
    assert taken_out(first) == [0]
    assert "WaitingForDisruptionBudget" in [e.reason for e in first.events]
    # A held member takes no place in the batch: every one the budget stops is held by it.
    assert holds(sim)["DisruptionBudget"] == list(range(1, 10))
    # A blocked member looks again soon: the budgets are not watched.
    assert first.requeue_after is not None
    assert first.requeue_after <= 2
    sim.world.kubelet(sim.now)

    worst = rollout_watching(sim, set(range(10)), 1)
    assert worst == 1
    assert sim.status.latest_model_instances == 10
    assert sim.status.out_of_date is None
    # One event when the wait begins, not one per pass.
    waits = [e for e in sim.events if e.reason == "WaitingForDisruptionBudget"]
    assert len(waits) < 10


@st.composite
def rollout_cases(draw: st.DrawFn) -> tuple[int, str, int, int, frozenset[int]]:
    capacity = draw(st.integers(2, 12))
    return (
        capacity,
        draw(st.sampled_from(["Rolling", "Automatic"])),
        draw(st.sampled_from([10, 20, 50, 100])),
        draw(st.integers(1, 3)),
        frozenset(draw(st.sets(st.integers(0, capacity - 1), min_size=1))),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rollout_cases())
def test_no_model_rollout_pass_takes_more_out_than_a_budget_allows(
    case: tuple[int, str, int, int, frozenset[int]],
) -> None:
    """Whatever the mode, the batch size and the instances a budget selects, a template change
    never has more of them out of service at once than the budget allows, and still ends."""
    capacity, mode, batch, max_unavailable, selected = case
    rolling = {"maxBatchInstancePercent": batch, "maxUnhealthyInstancePercent": 100}
    sim = settled(capacity, mode=mode, rolling=rolling)
    expressions = (SelectorRequirement(LABEL_INSTANCE_ID, "In", tuple(map(str, selected))),)
    sim.add_budget("some", max_unavailable, match_expressions=expressions)
    sim.set_spec(capacity=capacity, mode=mode, automatic=False, rolling=rolling, env="two")
    worst = rollout_watching(sim, set(selected), max_unavailable)
    assert worst <= max_unavailable
    assert sim.status.latest_model_instances == capacity


def test_a_budget_over_some_instances_holds_only_those() -> None:
    rolling = {"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50}
    sim = settled(mode="Rolling", rolling=rolling)
    first_three = SelectorRequirement(LABEL_INSTANCE_ID, "In", ("0", "1", "2"))
    sim.add_budget("few", 1, match_expressions=(first_three,))
    sim.set_spec(capacity=10, mode="Rolling", automatic=False, rolling=rolling, env="two")
    first = sim.step(kubelet=False)
    # Batches of five: 1 and 2 wait for "few", and 5 and 6 go in their place.
    assert taken_out(first) == [0, 3, 4, 5, 6]
    assert holds(sim)["DisruptionBudget"] == [1, 2]
    sim.world.kubelet(sim.now)
    assert rollout_watching(sim, {0, 1, 2}, 1) == 1


def test_a_budget_of_zero_holds_a_model_rollout_until_it_allows() -> None:
    sim = settled(capacity=4, mode="Rolling")
    sim.add_budget("frozen", 0, EVERY_POD)
    sim.set_spec(capacity=4, mode="Rolling", automatic=False, env="two")
    for _ in range(40):
        plan = sim.step()
        assert taken_out(plan) == []
    # No timeout for a model rollout: it simply waits, and says why.
    assert holds(sim) == {"DisruptionBudget": [0, 1, 2, 3]}
    assert [e.reason for e in sim.events].count("WaitingForDisruptionBudget") == 1
    sim.budgets["frozen"] = (sim.budgets["frozen"][0], 1)
    assert rollout_watching(sim, {0, 1, 2, 3}, 1) == 1


def test_an_unready_instance_is_out_already_and_goes_whatever_the_budget() -> None:
    sim = settled(capacity=5, mode="Rolling")
    sim.world.disrupted.add(2)
    sim.world.kubelet(sim.now)
    sim.add_budget("web", 1, EVERY_POD)  # allows 0: instance 2 is down
    sim.set_spec(capacity=5, mode="Rolling", automatic=False, env="two")
    first = sim.step(kubelet=False)
    assert taken_out(first) == [2]
    assert holds(sim)["DisruptionBudget"] == [0, 1]


def test_a_pinned_version_change_patched_in_place_respects_the_budget() -> None:
    sim = settled(capacity=6, mode="Automatic", version="1.0.0")
    sim.publish(version_entry("1.1.0"))
    sim.add_budget("web", 2, EVERY_POD)
    sim.set_spec(capacity=6, mode="Automatic", automatic=False, version="1.1.0")
    first = sim.step(kubelet=False)
    assert taken_out(first) == [0, 1]
    assert [a for a in first.actions if isinstance(a, SetInstanceImage)]
    sim.world.kubelet(sim.now)
    assert rollout_watching(sim, set(range(6)), 2) == 2
    assert sim.world.on("1.1.0") == list(range(6))


def test_manual_update_instances_is_the_users_call_and_not_held() -> None:
    sim = settled(capacity=4, mode="Manual")
    sim.add_budget("frozen", 0, EVERY_POD)
    sim.set_spec(capacity=4, mode="Manual", automatic=False, env="two")
    sim.request("update-instances", ["0", "1"])
    assert taken_out(sim.step()) == [0, 1]


def _status(*holds: tuple[HoldReason, list[int]], run: UpgradeRun | None = None) -> ScaleSetStatus:
    found = OutOfDate(
        count=sum(len(ids) for _, ids in holds),
        holds=[OutOfDateHold(reason=r, instance_ids=ids) for r, ids in holds],
    )
    return ScaleSetStatus(out_of_date=found if holds else None, upgrade_run=run)


def test_the_controller_lists_budgets_only_for_a_rollout_with_work_to_do() -> None:
    assert not rollout_pending(ScaleSetStatus())
    assert rollout_pending(_status((HoldReason.WAITING_FOR_BATCH, [1, 2])))
    assert rollout_pending(_status((HoldReason.UPGRADING, [0])))
    assert rollout_pending(_status((HoldReason.DISRUPTION_BUDGET, [0])))
    for idle in (
        HoldReason.MANUAL_UPGRADE_MODE,
        HoldReason.PROTECTED,
        HoldReason.AUTOMATIC_UPGRADE_DISABLED,
        HoldReason.QUARANTINED,
    ):
        assert not rollout_pending(_status((idle, [0])))
    # A running OS upgrade's holds are its own (the controller lists budgets for it anyway).
    sim = settled(capacity=2, rolling={"maxBatchInstancePercent": 50})
    sim.publish(version_entry("1.1.0"))
    sim.request("start")
    sim.step(kubelet=False)
    run = sim.run
    assert run is not None
    assert run.code is RunningStatusCode.ROLLING_FORWARD
    assert not rollout_pending(_status((HoldReason.WAITING_FOR_BATCH, [1]), run=run))
