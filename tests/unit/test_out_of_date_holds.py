"""`status.outOfDate`: every instance behind the newest version or the model is held by exactly
one reason, with the time the hold ends where the planner knows it; pass by pass in the
simulated world."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scaleset_operator.cli.views.tables import (
    instance_row,
    instances_table,
    scaleset_document,
    scaleset_summary,
)
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import OutOfDate, RunningStatusCode, ScaleSetStatus
from scaleset_operator.planner.disruption import SelectorRequirement
from scaleset_operator.planner.model_hash import model_hash
from scaleset_operator.planner.timefmt import stamp
from tests.unit.simworld import FINISHED, Sim, spec_of, version_entry
from tests.unit.test_planner_scenarios import finish, until_started


def _settled(capacity: int = 4, **spec: Any) -> Sim:
    sim = Sim(spec=spec_of(capacity=capacity, **spec), catalog=[version_entry("1.0.0")])
    sim.settle()
    assert sim.status.out_of_date is None
    return sim


def _with_schedule(sim: Sim, **schedule: object) -> None:
    raw = sim.spec.wire()
    raw["upgradePolicy"]["automaticUpgradeSchedule"] = schedule
    sim.spec = ScaleSetSpec.model_validate(raw)


def _published(entry: CatalogEntry, at: datetime) -> CatalogEntry:
    return entry.model_copy(
        update={"spec": entry.spec.model_copy(update={"published_date": stamp(at)})}
    )


def _holds(sim: Sim) -> dict[str, tuple[list[int], str | None]]:
    found = sim.status.out_of_date
    assert found is not None
    return {h.reason.value: (h.instance_ids, h.until) for h in found.holds}


def test_nothing_out_of_date_leaves_the_field_out() -> None:
    sim = _settled()
    sim.step()
    assert "outOfDate" not in sim.status.wire()


def test_an_image_younger_than_the_minimum_age_holds_until_it_is_old_enough() -> None:
    sim = _settled()
    _with_schedule(sim, minimumImageAge="PT1H")
    published = sim.now
    sim.publish(_published(version_entry("1.1.0"), published))
    sim.step(60)
    ripe = stamp(published + timedelta(hours=1))
    assert _holds(sim) == {"YoungerThanMinimumImageAge": ([0, 1, 2, 3], ripe)}
    found = sim.status.out_of_date
    assert found is not None
    assert (found.count, found.next_eligible_time) == (4, ripe)
    sim.tick(3600)
    until_started(sim)
    finish(sim)
    sim.step()
    assert sim.status.out_of_date is None


def test_the_upgrade_delay_holds_until_the_planned_start() -> None:
    sim = _settled()
    sim.publish(version_entry("1.1.0"))
    detected = sim.now
    sim.step()
    due = stamp(detected + sim.settings.automatic_upgrade_delay)
    assert _holds(sim) == {"UpgradeDelay": ([0, 1, 2, 3], due)}


def test_a_closed_maintenance_window_holds_until_it_opens() -> None:
    sim = _settled()
    opens = (sim.now + timedelta(hours=2)).replace(second=0, microsecond=0)
    _with_schedule(sim, maintenanceWindows=[{"start": opens.strftime("%H:%M"), "duration": "PT1H"}])
    sim.publish(version_entry("1.1.0"))
    for _ in range(10):
        sim.step(60)
    assert _holds(sim) == {"OutsideMaintenanceWindow": ([0, 1, 2, 3], stamp(opens))}


def test_a_quarantined_version_holds_without_an_end() -> None:
    sim = _settled()
    sim.status = sim.status.model_copy(update={"faulted_versions": ["1.1.0"]})
    sim.publish(version_entry("1.1.0"))
    sim.step()
    assert _holds(sim) == {"Quarantined": ([0, 1, 2, 3], None)}
    assert sim.status.out_of_date is not None
    assert sim.status.out_of_date.next_eligible_time is None


def test_protection_and_disabled_automatic_upgrades() -> None:
    sim = _settled(automatic=False)
    sim.world.protected = {1}
    sim.publish(version_entry("1.1.0"))
    sim.step()
    assert _holds(sim) == {
        "AutomaticOSUpgradeDisabled": ([0, 2, 3], None),
        "Protected": ([1], None),
    }


def test_protected_instances_stay_held_after_the_upgrade() -> None:
    sim = _settled()
    sim.world.protected = {2}
    sim.publish(version_entry("1.1.0"))
    until_started(sim)
    finish(sim)
    sim.step()
    assert _holds(sim) == {"Protected": ([2], None)}


def test_manual_mode_holds_a_model_change() -> None:
    sim = _settled(mode="Manual")
    sim.set_spec(capacity=4, mode="Manual", env="two")
    sim.step()
    assert _holds(sim) == {"ManualUpgradeMode": ([0, 1, 2, 3], None)}


def test_rolling_mode_model_change_waits_for_its_batch() -> None:
    sim = _settled(capacity=5, mode="Rolling")
    sim.set_spec(capacity=5, mode="Rolling", env="two")
    sim.step(0, act=False)
    holds = _holds(sim)
    assert holds["Upgrading"][0] + holds["WaitingForBatch"][0] == [0, 1, 2, 3, 4]
    assert holds["Upgrading"][0] == [0]


def test_a_running_upgrade_holds_by_batch_and_pause() -> None:
    sim = _settled(
        capacity=10,
        rolling={"maxBatchInstancePercent": 20, "pauseTimeBetweenBatches": "PT5M"},
    )
    sim.publish(version_entry("1.1.0"))
    until_started(sim, kubelet=False)
    holds = _holds(sim)
    assert holds["Upgrading"] == ([0, 1], None)
    assert holds["WaitingForBatch"] == (list(range(2, 10)), None)
    run = None
    for _ in range(30):
        sim.step()
        run = sim.run
        assert run is not None
        if run.last_batch_end is not None and run.batch is None:
            break
    assert run is not None
    assert run.last_batch_end is not None
    pause_end = stamp(datetime.fromisoformat(run.last_batch_end) + timedelta(minutes=5))
    assert _holds(sim) == {"PauseBetweenBatches": (list(range(2, 10)), pause_end)}


def test_a_disruption_budget_holds_its_members() -> None:
    sim = _settled(
        capacity=6,
        automatic=False,
        rolling={"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50},
    )
    first_two = SelectorRequirement("scaleset.dev/instance-id", "In", ("0", "1"))
    sim.add_budget("none", 0, match_expressions=(first_two,))
    sim.publish(version_entry("1.1.0"))
    sim.request("start")
    sim.step(kubelet=False)
    holds = _holds(sim)
    assert holds == {
        "DisruptionBudget": ([0, 1], None),
        "Upgrading": ([2], None),
        "WaitingForBatch": ([3, 4, 5], None),
    }


def test_a_refused_start_holds_until_the_retry() -> None:
    sim = _settled(capacity=10)
    sim.world.disrupted |= {3, 4, 5}
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    until_started(sim)
    assert sim.code is RunningStatusCode.FAULTED
    sim.step()
    holds = _holds(sim)
    assert list(holds) == ["HealthGate"]
    ids, until = holds["HealthGate"]
    assert ids == list(range(10))
    assert until is not None
    assert until > stamp(sim.now)


# --- the invariant --------------------------------------------------------------------------


def _newest(sim: Sim) -> str:
    entry = max(sim.catalog, key=lambda e: tuple(int(x) for x in e.spec.version.split(".")))
    return entry.spec.image


def _check(sim: Sim, seen: tuple[Instance, ...], status: ScaleSetStatus) -> None:
    """Exactly the instances the pass saw behind the model or the newest version are held,
    each once."""
    found = status.out_of_date
    run = status.upgrade_run
    running = run is not None and run.code not in FINISHED
    newest = run.target.container_image if run is not None and running else _newest(sim)
    mhash = model_hash(sim.spec)
    behind = {
        i.instance_id
        for i in seen
        if i.surge_for is None
        and not i.deleting
        and (i.model_hash != mhash or i.os_image != newest)
    }
    held = [iid for h in (found.holds if found else []) for iid in h.instance_ids]
    assert len(held) == len(set(held))
    assert set(held) == behind
    if found is not None:
        assert found.count == len(held)
        ends = [h.until for h in found.holds if h.until is not None]
        assert found.next_eligible_time == (min(ends) if ends else None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    capacity=st.integers(1, 8),
    protected=st.sets(st.integers(0, 7), max_size=3),
    automatic=st.booleans(),
    age_minutes=st.sampled_from([0, 2, 30]),
    pause=st.sampled_from(["PT0S", "PT20S"]),
    budget=st.booleans(),
    tag=st.sampled_from(["1.1.0", "unready-1.1.0"]),
    disable_rollback=st.booleans(),
    upgraded_limit=st.sampled_from([20, 100]),
)
def test_every_out_of_date_instance_has_exactly_one_hold(
    capacity: int,
    protected: set[int],
    automatic: bool,
    age_minutes: int,
    pause: str,
    budget: bool,
    tag: str,
    disable_rollback: bool,
    upgraded_limit: int,
) -> None:
    sim = _settled(
        capacity=capacity,
        automatic=automatic,
        disable_rollback=disable_rollback,
        health_timeout="PT10S",
        rolling={
            "maxBatchInstancePercent": 34,
            "maxUnhealthyInstancePercent": 50,
            "maxUnhealthyUpgradedInstancePercent": upgraded_limit,
            "pauseTimeBetweenBatches": pause,
        },
    )
    sim.world.protected = protected
    _with_schedule(sim, minimumImageAge=f"PT{age_minutes}M")
    if budget:
        sim.add_budget("one", 1, match_labels={"app": "web"})
    sim.publish(_published(version_entry("1.1.0", tag), sim.now))
    if not automatic:
        sim.request("start")
    for _ in range(120):
        seen = sim.world.snapshot()
        result = sim.step(20)
        _check(sim, seen, result.status)
        for hold in (result.status.out_of_date or OutOfDate(count=0)).holds:
            event(hold.reason.value)


# --- what `kubectl scaleset get` shows ---------------------------------------------------------


def test_get_shows_each_instance_hold_and_the_next_eligible_time() -> None:
    sim = _settled(capacity=3)
    sim.world.protected = {2}
    _with_schedule(sim, minimumImageAge="PT1H")
    sim.publish(_published(version_entry("1.1.0"), sim.now))
    sim.step()
    ripe = stamp(sim.now - timedelta(seconds=1) + timedelta(hours=1))
    rows = [instance_row(i, sim.spec, sim.status, sim.now) for i in sim.world.live()]

    lines = instances_table(rows).splitlines()
    doc = scaleset_document("web", "shop", sim.spec, sim.status, rows)
    summary = scaleset_summary("web", "shop", sim.spec, sim.status)

    assert lines[0].split()[-2:] == ["HELD-BY", "ELIGIBLE"]
    assert lines[1].split()[-2:] == ["YoungerThanMinimumImageAge", ripe]
    assert lines[3].split()[-2:] == ["Protected", "<none>"]
    assert [(i.get("heldBy"), i.get("eligibleAt")) for i in doc["instances"]] == [
        ("YoungerThanMinimumImageAge", ripe),
        ("YoungerThanMinimumImageAge", ripe),
        ("Protected", None),
    ]
    assert doc["outOfDate"]["nextEligibleTime"] == ripe
    shown = "3 (YoungerThanMinimumImageAge 2, Protected 1); next eligible " + ripe
    assert f"Out of date:           {shown}\n" in summary


def test_get_without_anything_out_of_date_looks_as_before() -> None:
    sim = _settled(capacity=2)
    rows = [instance_row(i, sim.spec, sim.status, sim.now) for i in sim.world.live()]
    doc = scaleset_document("web", "shop", sim.spec, sim.status, rows)
    assert "HELD-BY" not in instances_table(rows)
    assert "outOfDate" not in doc
    assert all("heldBy" not in i and "eligibleAt" not in i for i in doc["instances"])
    assert "Out of date" not in scaleset_summary("web", "shop", sim.spec, sim.status)
