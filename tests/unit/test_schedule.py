"""Minimum image age and maintenance windows gate platform upgrades (user starts ignore them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scaleset_operator.models.scaleset import AutomaticUpgradeSchedule, ScaleSetSpec
from scaleset_operator.planner.refusal import RETRY_FLOOR, retry_at
from scaleset_operator.planner.schedule import window_state
from scaleset_operator.planner.timefmt import stamp
from tests.unit.simworld import Sim, version_entry
from tests.unit.test_planner_scenarios import settled

MONDAY_3AM = datetime(2024, 4, 29, 3, 0, tzinfo=UTC)  # a Monday


def _schedule(**fields: object) -> AutomaticUpgradeSchedule:
    return AutomaticUpgradeSchedule.model_validate(fields)


def test_no_windows_means_any_time() -> None:
    assert window_state(_schedule(), MONDAY_3AM) == (True, None)


def test_inside_and_outside_a_weekly_window() -> None:
    windows = [{"days": ["Monday"], "start": "02:00", "duration": "PT2H"}]
    schedule = _schedule(maintenanceWindows=windows)
    assert window_state(schedule, MONDAY_3AM) == (True, None)
    inside, opens = window_state(schedule, MONDAY_3AM + timedelta(hours=2))
    assert not inside
    assert opens == datetime(2024, 5, 6, 2, 0, tzinfo=UTC)


def test_a_window_that_spans_midnight_and_every_day() -> None:
    schedule = _schedule(maintenanceWindows=[{"start": "23:00", "duration": "PT3H"}])
    assert window_state(schedule, MONDAY_3AM - timedelta(hours=2))[0]  # Monday 01:00
    inside, opens = window_state(schedule, MONDAY_3AM)
    assert not inside
    assert opens == datetime(2024, 4, 29, 23, 0, tzinfo=UTC)


def _with_schedule(sim: Sim, **schedule: object) -> None:
    raw = sim.spec.wire()
    raw["upgradePolicy"]["automaticUpgradeSchedule"] = schedule
    sim.spec = ScaleSetSpec.model_validate(raw)


def _started(sim: Sim, passes: int, advance: float) -> bool:
    for _ in range(passes):
        result = sim.step(advance)
        if result.status.upgrade_run is not None:
            return True
    return False


def test_a_young_version_waits_for_the_minimum_age() -> None:
    sim = settled(4)
    _with_schedule(sim, minimumImageAge="PT1H")
    entry = version_entry("1.1.0")
    young = entry.model_copy(
        update={"spec": entry.spec.model_copy(update={"published_date": stamp(sim.now)})}
    )
    sim.publish(young)
    assert not _started(sim, 10, 60)  # ten minutes later: still too young
    result = sim.step(0)
    assert result.requeue_after is not None
    assert result.requeue_after <= 3600
    assert _started(sim, 10, 600)  # past the hour


def test_platform_upgrades_start_only_inside_a_window() -> None:
    sim = settled(4)
    opens = (sim.now + timedelta(hours=2)).strftime("%H:%M")
    _with_schedule(sim, maintenanceWindows=[{"start": opens, "duration": "PT1H"}])
    sim.publish(version_entry("1.1.0"))
    assert not _started(sim, 10, 60)
    result = sim.step(0)
    assert result.requeue_after is not None
    assert result.requeue_after <= 2 * 3600
    assert _started(sim, 20, 600)


def test_a_user_start_ignores_the_schedule() -> None:
    sim = settled(4, automatic=False)
    opens = (sim.now + timedelta(hours=5)).strftime("%H:%M")
    _with_schedule(sim, maintenanceWindows=[{"start": opens, "duration": "PT1H"}])
    sim.publish(version_entry("1.1.0"))
    sim.request("start")
    assert _started(sim, 2, 1)


def test_retries_of_a_refused_start_back_off_from_the_delay_to_ten_minutes() -> None:
    detected = MONDAY_3AM
    delay = timedelta(seconds=30)
    refused = detected + delay
    waits = []
    for _ in range(8):
        again = retry_at(refused, detected, delay)
        waits.append((again - refused).total_seconds())
        refused = again
    assert waits == [30, 60, 120, 240, 480, 600, 600, 600]
    # A zero delay is not a retry on every pass; a delay above the cap is kept.
    assert retry_at(detected, detected, timedelta(0)) - detected == RETRY_FLOOR
    hour = timedelta(hours=1)
    assert retry_at(detected + hour, detected, hour) - detected == 2 * hour
