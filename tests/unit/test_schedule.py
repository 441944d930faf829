"""Minimum image age holds for every upgrade, from its start to its last batch; maintenance
windows gate the start and every batch of platform upgrades (user starts ignore them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import AutomaticUpgradeSchedule, ScaleSetSpec
from scaleset_operator.models.status import RunningStatusCode, StartedBy
from scaleset_operator.planner.refusal import RETRY_FLOOR, retry_at
from scaleset_operator.planner.schedule import window_state
from scaleset_operator.planner.timefmt import stamp
from tests.unit.simworld import T0, Sim, spec_of, version_entry
from tests.unit.test_planner_scenarios import finish, seen, settled, until_started

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


def _published(entry: CatalogEntry, at: datetime) -> CatalogEntry:
    return entry.model_copy(
        update={"spec": entry.spec.model_copy(update={"published_date": stamp(at)})}
    )


def test_a_young_version_waits_for_the_minimum_age() -> None:
    sim = settled(4)
    _with_schedule(sim, minimumImageAge="PT1H")
    sim.publish(_published(version_entry("1.1.0"), sim.now))
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


def _user_target(sim: Sim) -> str:
    sim.request("start")
    assert "RollingUpgradeStarted" in seen(sim.step()).events
    assert sim.run is not None
    return sim.run.target.version


def test_a_user_start_skips_a_version_younger_than_the_minimum_age() -> None:
    """Age is a fact about the version, not about when to start: a user's start picks the
    target as the platform would, only without waiting for a window."""
    sim = settled(4, automatic=False)
    _with_schedule(sim, minimumImageAge="PT1H")
    sim.publish(
        _published(version_entry("1.1.0"), sim.now - timedelta(hours=2)),
        _published(version_entry("1.2.0"), sim.now - timedelta(minutes=10)),
    )
    assert _user_target(sim) == "1.1.0"
    finish(sim)
    assert sim.world.on("1.1.0") == [0, 1, 2, 3]


def test_a_user_start_with_nothing_newer_old_enough_never_moves_instances_back() -> None:
    """Instances are created on the latest version whatever its age; a start that finds only
    older eligible versions keeps them where the model is."""
    sim = Sim(
        spec=spec_of(capacity=4, automatic=False),
        catalog=[version_entry("1.0.0"), version_entry("1.1.0")],
    )
    sim.settle()
    _with_schedule(sim, minimumImageAge="PT1H")
    sim.catalog = [version_entry("1.0.0"), _published(version_entry("1.1.0"), sim.now)]
    assert sim.world.on("1.1.0") == [0, 1, 2, 3]

    assert _user_target(sim) == "1.1.0"
    finish(sim)
    assert sim.world.on("1.1.0") == [0, 1, 2, 3]


def test_a_running_upgrade_never_switches_to_a_version_younger_than_the_minimum_age() -> None:
    """a run retargets only to an eligible version, "old enough" included."""
    sim = settled(10)
    _with_schedule(sim, minimumImageAge="PT1H")
    sim.publish(_published(version_entry("1.1.0"), sim.now - timedelta(hours=2)))
    until_started(sim, kubelet=False)
    sim.publish(_published(version_entry("1.2.0"), sim.now))
    passes = finish(sim)

    assert sim.code is RunningStatusCode.COMPLETED
    assert all("RollingUpgradeRetargeted" not in p.events for p in passes)
    assert sim.world.on("1.1.0") == list(range(10))
    (entry,) = sim.status.os_upgrade_history
    assert entry.target_image_reference is not None
    assert entry.target_image_reference.version == "1.1.0"
    # Once old enough, the newer version gets an upgrade of its own.
    sim.tick(3600)
    until_started(sim)
    finish(sim)
    assert sim.world.on("1.2.0") == list(range(10))


def _upgrading(sim: Sim) -> tuple[str, str]:
    found = next(c for c in sim.status.conditions if c.type == "Upgrading")
    return found.reason, found.message


def test_a_window_that_closes_mid_run_holds_the_next_batch_until_the_next_window() -> None:
    sim = settled(10)
    # Open from noon until 30 s from now, and again at 13:00.
    first = f"PT{int((sim.now - T0).total_seconds()) + 30}S"
    _with_schedule(
        sim,
        maintenanceWindows=[
            {"start": "12:00", "duration": first},
            {"start": "13:00", "duration": "PT1H"},
        ],
    )
    sim.publish(version_entry("1.1.0"))
    until_started(sim, kubelet=False)
    closes = T0 + parse_duration(first)
    # Batch 1 is in flight when the window closes: it settles all the same...
    while sim.now < closes:
        assert seen(sim.step(5, kubelet=False)).sets == []
    sim.tick(0)
    settled_batch = sim.step()
    got = seen(settled_batch)
    assert "BatchCompleted" in got.events
    # ...and batch 2 waits for the next window, saying so and until when.
    assert "BatchStarted" not in got.events
    assert "WaitingForMaintenanceWindow" in got.events
    assert got.code == "RollingForward"
    assert got.progress == (2, 0, 0, 8)
    reason, message = _upgrading(sim)
    assert reason == "WaitingForMaintenanceWindow"
    assert "until 2024-05-01T13:00:00Z" in message
    assert settled_batch.requeue_after is not None
    assert settled_batch.requeue_after <= (T0 + timedelta(hours=1) - sim.now).total_seconds() + 1
    while sim.now < T0 + timedelta(hours=1):
        waiting = seen(sim.step(min(600.0, (T0 + timedelta(hours=1) - sim.now).total_seconds())))
        assert waiting.sets == []
        assert "WaitingForMaintenanceWindow" not in waiting.events  # said once
    resumed = seen(sim.step())
    assert "BatchStarted" in resumed.events
    assert _upgrading(sim)[0] == "RollingForward"
    finish(sim)
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.1.0") == list(range(10))


def test_a_user_started_run_ignores_the_windows_from_start_to_end() -> None:
    sim = settled(4, automatic=False)
    opens = (sim.now + timedelta(hours=5)).strftime("%H:%M")
    _with_schedule(sim, maintenanceWindows=[{"start": opens, "duration": "PT1H"}])
    sim.publish(version_entry("1.1.0"))
    sim.request("start")
    finish(sim)
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.run is not None
    assert sim.run.started_by is StartedBy.USER
    assert "WaitingForMaintenanceWindow" not in {e.reason for e in sim.events}


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
