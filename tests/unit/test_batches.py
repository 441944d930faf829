"""Batch sizing and selection: size, unhealthy budget, zones and priority."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import RollingUpgradePolicy
from scaleset_operator.planner.batches import batch_size, exceeds, next_batch, percent_of
from tests.unit.simworld import ZONES, image_of


def instances(count: int, *, zoned: bool = False) -> list[Instance]:
    return [
        Instance(
            instance_id=i,
            name=f"web-{i}",
            os_image=image_of("1.0.0"),
            zone=ZONES[i % 3] if zoned else None,
        )
        for i in range(count)
    ]


def policy(**knobs: object) -> RollingUpgradePolicy:
    return RollingUpgradePolicy.model_validate(knobs)


def pick(
    candidates: list[Instance],
    *,
    total: int | None = None,
    unhealthy: Iterable[int] = (),
    unhealthy_now: int | None = None,
    **knobs: object,
) -> tuple[list[int], str | None]:
    bad = set(unhealthy)
    chosen, zone = next_batch(
        candidates,
        total=len(candidates) if total is None else total,
        policy=policy(**knobs),
        is_unhealthy=lambda i: i.instance_id in bad,
        unhealthy_now=len(bad) if unhealthy_now is None else unhealthy_now,
    )
    return [i.instance_id for i in chosen], zone


@pytest.mark.parametrize(
    ("total", "percent", "size"),
    [(10, 20, 2), (4, 20, 1), (1, 5, 1), (0, 20, 1), (7, 100, 7), (19, 10, 1), (40, 33, 13)],
)
def test_batch_size_is_the_percent_rounded_down_but_at_least_one(
    total: int, percent: int, size: int
) -> None:
    assert batch_size(total, policy(maxBatchInstancePercent=percent)) == size


def test_exceeds_is_strictly_above() -> None:
    assert not exceeds(2, 10, 20)
    assert exceeds(3, 10, 20)
    assert exceeds(1, 0, 20)  # an empty set counts as one instance
    assert not exceeds(0, 0, 0)
    assert percent_of(9, 20) == 1


def test_default_batches_take_the_lowest_ids_in_order() -> None:
    assert pick(instances(10)) == ([0, 1], None)


def test_the_batch_shrinks_to_the_unhealthy_budget() -> None:
    """20 % of 10 may be unhealthy; one already is, so only one healthy instance may go down."""
    assert pick(instances(10)[2:], total=10, unhealthy_now=1, maxBatchInstancePercent=20) == (
        [2],
        None,
    )


def test_a_batch_always_holds_one_instance_even_without_budget() -> None:
    assert pick(instances(10), unhealthy_now=5) == ([0], None)


def test_unhealthy_instances_cost_no_budget() -> None:
    chosen, _ = pick(
        instances(10),
        unhealthy=[1],
        maxBatchInstancePercent=30,
        maxUnhealthyInstancePercent=30,
    )
    # budget 3 - 1 unhealthy = 2 healthy instances may go down, plus the unhealthy one.
    assert chosen == [0, 1, 2]


def test_prioritize_unhealthy_instances_puts_them_first() -> None:
    assert pick(instances(10), unhealthy=[7, 4], prioritizeUnhealthyInstances=True)[0] == [4, 7]
    plenty = {"maxUnhealthyInstancePercent": 50}
    assert pick(instances(10), unhealthy=[7], prioritizeUnhealthyInstances=False, **plenty)[0] == [
        0,
        1,
    ]


def test_unhealthy_instances_fill_slots_the_budget_denies_to_healthy_ones() -> None:
    """Budget 2 - 1 = 1: instance 0 takes it, 1..6 would cost more, 7 costs nothing."""
    assert pick(instances(10), unhealthy=[7])[0] == [0, 7]


def test_batches_stay_in_one_zone() -> None:
    chosen, zone = pick(
        instances(12, zoned=True), maxBatchInstancePercent=50, maxUnhealthyInstancePercent=50
    )
    assert zone == "zone-1"
    assert chosen == [0, 3, 6, 9]


def test_cross_zone_upgrade_fills_the_batch_across_zones() -> None:
    chosen, zone = pick(
        instances(12, zoned=True),
        maxBatchInstancePercent=50,
        maxUnhealthyInstancePercent=50,
        enableCrossZoneUpgrade=True,
    )
    assert zone is None
    assert len(chosen) == 6
    assert len({ZONES[i % 3] for i in chosen}) > 1


def test_the_zone_of_the_first_unhealthy_instance_goes_first() -> None:
    chosen, zone = pick(
        instances(12, zoned=True),
        unhealthy=[5],
        prioritizeUnhealthyInstances=True,
        maxBatchInstancePercent=50,
        maxUnhealthyInstancePercent=50,
    )
    assert zone == "zone-3"
    assert chosen[0] == 5
    assert all(i % 3 == 2 for i in chosen)


def test_no_candidates_no_batch() -> None:
    assert pick([], total=10) == ([], None)


@settings(max_examples=150, deadline=None)
@given(
    total=st.integers(1, 60),
    batch_percent=st.integers(5, 100),
    unhealthy_percent=st.integers(5, 100),
    zoned=st.booleans(),
    cross_zone=st.booleans(),
    prioritize=st.booleans(),
    data=st.data(),
)
def test_batch_invariants(
    total: int,
    batch_percent: int,
    unhealthy_percent: int,
    zoned: bool,
    cross_zone: bool,
    prioritize: bool,
    data: st.DataObject,
) -> None:
    everyone = instances(total, zoned=zoned)
    ids = st.integers(0, total - 1)
    candidates = [everyone[i] for i in data.draw(st.lists(ids, unique=True, min_size=1))]
    bad = data.draw(st.sets(ids))
    knobs = {
        "maxBatchInstancePercent": batch_percent,
        "maxUnhealthyInstancePercent": max(batch_percent, unhealthy_percent),
        "enableCrossZoneUpgrade": cross_zone,
        "prioritizeUnhealthyInstances": prioritize,
    }
    chosen, zone = pick(candidates, total=total, unhealthy=bad, **knobs)
    rules = policy(**knobs)
    candidate_ids = {i.instance_id for i in candidates}
    assert 1 <= len(chosen) <= batch_size(total, rules)
    assert len(set(chosen)) == len(chosen)
    assert set(chosen) <= candidate_ids
    healthy_taken = [i for i in chosen if i not in bad]
    budget = percent_of(total, rules.max_unhealthy_instance_percent) - len(bad)
    assert len(healthy_taken) <= max(budget, 1)
    if zoned and not cross_zone:
        assert {ZONES[i % 3] for i in chosen} == {zone}
    if prioritize and candidate_ids & bad:
        assert chosen[0] in bad
    # Deterministic whatever the order the candidates were observed in.
    assert pick(candidates[::-1], total=total, unhealthy=bad, **knobs) == (chosen, zone)
