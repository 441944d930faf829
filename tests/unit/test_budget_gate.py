"""PodDisruptionBudgets during OS upgrades, pass by pass in the simulated world.

The simulated disruption controller (`Sim.disruption_budgets`) allows `maxUnavailable` minus the
selected pods that are not ready; the planner must also count the members it has patched but
not judged yet, which a real budget's status may not show for a while.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleset_operator.cli.views.tables import waiting_text
from scaleset_operator.k8s.budgets import to_budget
from scaleset_operator.k8s.pods import image_patch
from scaleset_operator.models.instance import (
    LABEL_INSTANCE_ID,
    LABEL_SCALESET,
    LABEL_UPGRADE_SKIPPED,
    Instance,
    UpgradePhase,
)
from scaleset_operator.models.status import ErrorCode, RunningStatusCode
from scaleset_operator.planner.actions import LabelInstance, SetInstanceImage
from scaleset_operator.planner.conditions import UPGRADING
from scaleset_operator.planner.disruption import DisruptionBudget, SelectorRequirement
from scaleset_operator.planner.observed import Plan
from tests.unit.simworld import FINISHED, Sim, spec_of, tag_of, version_entry

EVERY_POD = {LABEL_SCALESET: "web"}
FIRST_THREE = SelectorRequirement(LABEL_INSTANCE_ID, "In", ("0", "1", "2"))


def settled(capacity: int = 10, **rolling: Any) -> Sim:
    """A scale set on 1.0.0, every instance ready; upgrades start only when a user asks."""
    sim = Sim(
        spec=spec_of(capacity=capacity, automatic=False, rolling=rolling),
        catalog=[version_entry("1.0.0")],
    )
    sim.settle()
    sim.publish(version_entry("1.1.0"))
    return sim


def patched(plan: Plan) -> list[int]:
    """Instances a pass sends to the new image."""
    return [
        int(a.name.rsplit("-", 1)[1])
        for a in plan.actions
        if isinstance(a, SetInstanceImage) and tag_of(a.container_image) == "1.1.0"
    ]


def waits(sim: Sim) -> dict[int, str]:
    run = sim.run
    assert run is not None
    assert run.batch is not None
    return {
        w.instance_id: w.disruption_budget for w in run.batch.blocked_by_disruption_budget or []
    }


def out_of_service(sim: Sim, plan: Plan) -> set[int]:
    """Instances down by the run's doing after `plan` acted: patched and not judged yet."""
    run = plan.status.upgrade_run
    assert run is not None
    done = set(run.succeeded) | set(run.failed)
    started = {
        i.instance_id
        for i in sim.world.live()
        if i.upgrade is not None and i.upgrade.run == run.start_time
    }
    return (
        (started - done)
        | set(patched(plan))
        | {i.instance_id for i in sim.world.live() if not i.ready}
    )


def upgrade_watching(sim: Sim, selected: set[int], limit: int) -> int:
    """Runs the upgrade to its end; returns the most selected instances ever out at once."""
    worst = 0
    for _ in range(300):
        plan = sim.plan()
        sim.plans.append(plan)
        sim.world.apply(plan.actions, now=sim.now, mhash=plan.status.model_hash or "")
        sim.status = plan.status
        worst = max(worst, len(out_of_service(sim, plan) & selected))
        assert worst <= limit
        sim.tick()
        if sim.code in FINISHED:
            return worst
    raise AssertionError("upgrade did not end")


@pytest.mark.parametrize(("max_unavailable", "batch_percent"), [(1, 20), (2, 40)])
def test_a_batch_takes_out_no_more_than_the_budget_allows(
    max_unavailable: int, batch_percent: int
) -> None:
    sim = settled(maxBatchInstancePercent=batch_percent, maxUnhealthyInstancePercent=batch_percent)
    sim.add_budget("web", max_unavailable, EVERY_POD)
    sim.request("start")
    first = sim.step()
    batch = first.status.upgrade_run.batch  # type: ignore[union-attr]
    assert batch is not None
    assert len(batch.instance_ids) == 2 * max_unavailable
    # The batch is chosen as Azure chooses it; only its start is held back.
    assert patched(first) == list(range(max_unavailable))
    assert waits(sim) == {i: "web" for i in range(max_unavailable, 2 * max_unavailable)}
    assert "WaitingForDisruptionBudget" in [e.reason for e in first.events]

    worst = upgrade_watching(sim, set(range(10)), max_unavailable)
    assert worst == max_unavailable
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.1.0") == list(range(10))


def test_a_budget_of_zero_blocks_and_the_run_faults_naming_it() -> None:
    sim = settled(disruptionBudgetTimeout="PT30S")
    sim.add_budget("frozen", 0, EVERY_POD)
    sim.request("start")
    first = sim.step()
    assert patched(first) == []
    assert waits(sim) == {0: "frozen", 1: "frozen"}
    upgrading = next(c for c in sim.status.conditions if c.type == UPGRADING)
    assert upgrading.reason == "WaitingForDisruptionBudget"
    assert upgrading.message.startswith("instance(s) 0, 1 wait for PodDisruptionBudget frozen")
    assert waiting_text(sim.status) == upgrading.message
    assert first.requeue_after is not None
    assert first.requeue_after <= 2
    plans = sim.run_until(lambda s: s.code in FINISHED, limit=60)
    assert not any(patched(p) for p in plans)
    assert sim.code is RunningStatusCode.FAULTED
    error = sim.status.upgrade_run.error  # type: ignore[union-attr]
    assert error is not None
    assert error.code == ErrorCode.DISRUPTION_BUDGET_TIMEOUT.value
    assert "PodDisruptionBudget frozen" in (error.message or "")
    assert "PT30S" in (error.message or "")
    assert sim.world.on("1.0.0") == list(range(10))


def test_two_budgets_over_the_same_pods_each_hold() -> None:
    sim = settled(maxBatchInstancePercent=50, maxUnhealthyInstancePercent=50)
    sim.add_budget("all", 2, EVERY_POD)
    # "few" selects 0, 1 and 2 only, through a matchExpressions selector.
    sim.add_budget("few", 1, match_expressions=(FIRST_THREE,))
    sim.request("start")
    first = sim.step()
    run = first.status.upgrade_run
    assert run is not None
    assert run.batch is not None
    assert run.batch.instance_ids == [0, 1, 2, 3, 4]
    # 0 takes the last disruption "few" allows; 3 the last of "all".
    assert patched(first) == [0, 3]
    assert waits(sim) == {1: "few", 2: "few", 4: "all"}
    worst_few = upgrade_watching(sim, {0, 1, 2}, 1)
    assert worst_few == 1
    assert sim.code is RunningStatusCode.COMPLETED


def test_two_budgets_hold_through_a_whole_upgrade() -> None:
    sim = settled(maxBatchInstancePercent=50, maxUnhealthyInstancePercent=50)
    sim.add_budget("all", 3, EVERY_POD)
    sim.add_budget("zone-a", 1, {"app": "web"})
    sim.request("start")
    worst = upgrade_watching(sim, set(range(10)), 1)
    assert worst == 1
    assert sim.code is RunningStatusCode.COMPLETED


def test_rollback_is_never_blocked_by_a_budget() -> None:
    # A platform run: only those roll back.
    sim = Sim(spec=spec_of(capacity=10), catalog=[version_entry("1.0.0")])
    sim.settle()
    sim.add_budget("web", 1, EVERY_POD)
    sim.publish(version_entry("1.1.0", "crash-1.1.0"))
    first = sim.run_until(lambda s: s.run is not None, limit=30)[-1]
    started = [
        int(a.name.rsplit("-", 1)[1]) for a in first.actions if isinstance(a, SetInstanceImage)
    ]
    assert started == [0]
    # Someone else takes instance 7 down: the budget allows nothing more now.
    sim.world.disrupted.add(7)
    sim.world.kubelet(sim.now)
    assert sim.disruption_budgets()[0].disruptions_allowed == 0
    failing = sim.step()
    back = [a for a in failing.actions if isinstance(a, SetInstanceImage)]
    assert [(a.name, a.image_urn.rsplit(":", 1)[-1]) for a in back] == [("web-0", "1.0.0")]
    assert back[0].upgrade is not None
    assert back[0].upgrade.phase is UpgradePhase.ROLLING_BACK
    assert waits(sim) == {1: "web"}


def test_an_unready_instance_is_out_already_and_starts_whatever_the_budget() -> None:
    sim = settled()
    sim.world.disrupted.add(1)
    sim.world.kubelet(sim.now)
    sim.add_budget("web", 1, EVERY_POD)  # allows 0: instance 1 is down
    sim.request("start")
    first = sim.step()
    assert patched(first) == [1]
    assert waits(sim) == {0: "web"}


def test_skip_leaves_a_blocked_instance_on_its_image_and_labels_it() -> None:
    sim = settled(disruptionBudgetTimeout="PT10S", onDisruptionBudgetTimeout="Skip")
    sim.add_budget("pinned", 0, {LABEL_INSTANCE_ID: "3"})
    sim.request("start")
    plans = sim.run_until(lambda s: s.code in FINISHED, limit=200)
    assert sim.code is RunningStatusCode.COMPLETED
    run = sim.run
    assert run is not None
    assert run.skipped == [3]
    assert sim.world.on("1.0.0") == [3]
    assert sim.world.instances[3].labels[LABEL_UPGRADE_SKIPPED] == "disruption-budget"
    labels = [a for p in plans for a in p.actions if isinstance(a, LabelInstance)]
    assert [a.name for a in labels] == ["web-3"]
    skipped_at = next(
        i for i, p in enumerate(plans) if any(isinstance(a, LabelInstance) for a in p.actions)
    )
    # 10 s of one-second passes after the batch began (pass 1).
    assert 9 <= skipped_at <= 12
    assert "UpgradeSkipped" in [e.reason for p in plans for e in p.events]


def test_fault_waits_for_the_rest_of_the_batch_to_settle() -> None:
    sim = settled(disruptionBudgetTimeout="PT0S")
    sim.add_budget("pinned", 0, {LABEL_INSTANCE_ID: "1"})
    sim.request("start")
    first = sim.step()
    assert patched(first) == [0]
    sim.run_until(lambda s: s.code in FINISHED, limit=20)
    assert sim.code is RunningStatusCode.FAULTED
    run = sim.run
    assert run is not None
    assert run.succeeded == [0]
    assert sim.world.on("1.1.0") == [0]


def test_a_later_run_upgrades_a_skipped_instance() -> None:
    sim = settled(disruptionBudgetTimeout="PT0S", onDisruptionBudgetTimeout="Skip")
    sim.add_budget("pinned", 0, {LABEL_INSTANCE_ID: "3"})
    sim.request("start")
    sim.run_until(lambda s: s.code in FINISHED, limit=100)
    assert sim.world.on("1.0.0") == [3]
    sim.budgets.clear()
    sim.publish(version_entry("1.2.0"))
    sim.request("start")
    sim.step()
    sim.run_until(lambda s: s.code in FINISHED, limit=100)
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.2.0") == list(range(10))


def _inst(**labels: str) -> Instance:
    return Instance(instance_id=0, name="web-0", os_image="x", labels=labels)


def test_selectors_match_like_the_api() -> None:
    pod = _inst(app="web", tier="front")
    assert DisruptionBudget("a", 1, match_labels={"app": "web"}).selects(pod)
    assert not DisruptionBudget("b", 1, match_labels={"app": "db"}).selects(pod)
    assert DisruptionBudget("empty", 1, match_labels={}).selects(pod)
    assert not DisruptionBudget("none", 1, match_labels=None).selects(pod)
    exprs = {
        ("tier", "In", ("front",)): True,
        ("tier", "NotIn", ("front",)): False,
        ("zone", "NotIn", ("a",)): True,
        ("app", "Exists", ()): True,
        ("app", "DoesNotExist", ()): False,
        ("app", "Sideways", ()): False,
    }
    for (key, op, values), expected in exprs.items():
        req = SelectorRequirement(key, op, values)
        assert DisruptionBudget("e", 1, match_expressions=(req,)).selects(pod) is expected


def test_budgets_read_from_the_api() -> None:
    pdb = {
        "metadata": {"name": "web"},
        "spec": {
            "maxUnavailable": 1,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
            },
        },
        "status": {"disruptionsAllowed": 1, "currentHealthy": 10},
    }
    budget = to_budget(pdb)
    assert budget.name == "web"
    assert budget.disruptions_allowed == 1
    assert budget.selects(_inst(app="web", tier="front"))
    assert not budget.selects(_inst(app="web"))
    # Not looked at by the disruption controller yet: allows nothing.
    assert (
        to_budget({"metadata": {"name": "new"}, "spec": {"selector": {}}}).disruptions_allowed == 0
    )
    assert not to_budget({"metadata": {"name": "nosel"}, "spec": {}}).selects(_inst(app="web"))


def test_a_cancel_starts_no_waiting_member() -> None:
    sim = settled()
    sim.add_budget("web", 1, EVERY_POD)
    sim.request("start")
    assert patched(sim.step()) == [0]
    sim.request("cancel")
    plans = sim.run_until(lambda s: s.code in FINISHED, limit=20)
    assert not any(patched(p) for p in plans)
    assert sim.code is RunningStatusCode.CANCELLED
    assert sim.world.on("1.1.0") == [0]


def test_the_image_patch_drops_the_skipped_label() -> None:
    spec = spec_of(capacity=1)
    pod: dict[str, Any] = {
        "metadata": {
            "uid": "u",
            "labels": {LABEL_UPGRADE_SKIPPED: "disruption-budget", "app": "web"},
            "annotations": {"a": "b"},
        },
        "spec": {"containers": [{"name": "os", "image": "old"}]},
    }
    ops = image_patch(pod, spec, "new", "urn", None)
    assert {"op": "remove", "path": "/metadata/labels/scaleset.dev~1upgrade-skipped"} in ops
    pod["metadata"]["labels"].pop(LABEL_UPGRADE_SKIPPED)
    assert not [op for op in image_patch(pod, spec, "new", "urn", None) if op["op"] == "remove"]


def _in_flight(sim: Sim, run_start: str, done: set[int]) -> set[int]:
    return {
        i.instance_id
        for i in sim.world.live()
        if i.upgrade is not None and i.upgrade.run == run_start and i.instance_id not in done
    }


@st.composite
def budget_cases(draw: st.DrawFn) -> tuple[int, int, int, frozenset[int], frozenset[int], str]:
    capacity = draw(st.integers(2, 16))
    ids = st.integers(0, capacity - 1)
    return (
        capacity,
        draw(st.sampled_from([10, 20, 50, 100])),
        draw(st.integers(0, 3)),
        frozenset(draw(st.sets(ids, min_size=1))),
        frozenset(draw(st.sets(ids, max_size=1))),
        draw(st.sampled_from(["1.1.0", "bad-1.1.0"])),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budget_cases())
def test_no_pass_takes_more_out_than_a_budget_allows(
    case: tuple[int, int, int, frozenset[int], frozenset[int], str],
) -> None:
    """Whatever the batch size and whoever else is down, a pass never brings the selected
    instances out of service above maxUnavailable (it may only leave them where they were)."""
    capacity, batch, max_unavailable, selected, disrupted, tag = case
    rolling = {
        "maxBatchInstancePercent": batch,
        "maxUnhealthyInstancePercent": 100,
        "disruptionBudgetTimeout": "PT5S",
        "onDisruptionBudgetTimeout": "Skip",
    }
    sim = Sim(
        spec=spec_of(capacity=capacity, automatic=True, rolling=rolling, health_timeout="PT4S"),
        catalog=[version_entry("1.0.0")],
    )
    sim.settle()
    sim.world.disrupted |= disrupted
    sim.tick(0)
    expressions = (SelectorRequirement(LABEL_INSTANCE_ID, "In", tuple(map(str, selected))),)
    sim.add_budget("some", max_unavailable, match_expressions=expressions)
    sim.publish(version_entry("1.1.0", tag))
    for _ in range(400):
        run = sim.run
        done = set(run.succeeded) | set(run.rolled_back) if run else set()
        unready = {i.instance_id for i in sim.world.live() if not i.ready}
        before = (unready | (_in_flight(sim, run.start_time, done) if run else set())) & selected
        plan = sim.step(kubelet=False)
        run = sim.run
        if run is not None:
            done = set(run.succeeded) | set(run.rolled_back)
            after = (unready | _in_flight(sim, run.start_time, done)) & selected
            assert len(after) <= max(len(before), max_unavailable), (before, after)
        sim.tick(0.5)
        if sim.code in FINISHED and not plan.actions:
            return
    raise AssertionError("upgrade did not end")
