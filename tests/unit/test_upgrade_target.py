"""One target for every OS upgrade: a user's start, the platform's start and the dry-run plan
(`preview_start`, what `rolling-upgrade plan` shows) pick the same version the same way, and
the plan's health gate refuses exactly when the planner's does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import StartedBy
from scaleset_operator.planner.observed import PlannerSettings
from scaleset_operator.planner.preview import preview_start
from scaleset_operator.planner.refusal import is_refusal
from scaleset_operator.planner.schedule import HeldBack, HoldReason, upgrade_target
from scaleset_operator.planner.timefmt import stamp
from tests.unit.simworld import Sim, World, version_entry
from tests.unit.test_planner_scenarios import seen, settled


def published(entry: CatalogEntry, at: datetime) -> CatalogEntry:
    return entry.model_copy(
        update={"spec": entry.spec.model_copy(update={"published_date": stamp(at)})}
    )


def configure(sim: Sim, *, schedule: dict[str, Any], grace: str = "PT0S") -> None:
    raw = sim.spec.wire()
    raw["upgradePolicy"]["automaticUpgradeSchedule"] = schedule
    raw["healthProbe"] = {"gracePeriod": grace}
    sim.spec = ScaleSetSpec.model_validate(raw)


def quarantine(sim: Sim, *versions: str) -> None:
    sim.status = sim.status.model_copy(update={"faulted_versions": list(versions)})


def user_target(sim: Sim) -> str | None:
    sim.request("start")
    result = sim.step()
    assert "RollingUpgradeStarted" in seen(result).events
    assert sim.run is not None
    return sim.run.target.version


def test_the_plan_names_the_newer_versions_it_holds_back_and_why() -> None:
    sim = settled(4, automatic=False)
    configure(sim, schedule={"minimumImageAge": "PT1H"})
    sim.publish(
        version_entry("1.1.0"),
        version_entry("1.2.0"),
        published(version_entry("1.3.0"), sim.now),
        version_entry("2.0.0", excluded=True),
    )
    quarantine(sim, "1.2.0")
    obs = sim.observed()

    planned = preview_start(obs.spec, obs.status, obs.catalog, obs.instances, obs.now)

    assert planned.target.image is not None
    assert planned.target.image.version == "1.1.0"
    assert planned.target.held_back == (
        HeldBack("1.2.0", HoldReason.QUARANTINED),
        HeldBack("1.3.0", HoldReason.TOO_YOUNG, sim.now + timedelta(hours=1)),
    )
    assert planned.preview is not None
    assert [b.instance_ids for b in planned.preview.batches] == [(0,), (1,), (2,), (3,)]


# --- the three agree, whatever the catalog, quarantine, ages, windows and health --------------

POOL = ["0.9.0", "1.0.5", "1.1.0", "1.2.0", "2.0.0"]
AGES = [None, timedelta(0), timedelta(minutes=10), timedelta(hours=2), timedelta(days=3)]


@dataclass(frozen=True)
class Situation:
    capacity: int
    zoned: bool
    automatic: bool
    rolling: dict[str, object]
    versions: tuple[tuple[str, bool, bool, timedelta | None], ...]  # excluded, elsewhere, age
    quarantined: tuple[str, ...]
    minimum_age: str
    window: str  # none, open, closed
    grace: str
    disrupted: frozenset[int]
    protected: frozenset[int]


@st.composite
def situations(draw: st.DrawFn) -> Situation:
    capacity = draw(st.integers(1, 8))
    ids = st.integers(0, capacity - 1)
    batch = draw(st.sampled_from([20, 50, 100]))
    chosen = draw(st.lists(st.sampled_from(POOL), unique=True, max_size=len(POOL)))
    versions = tuple(
        (
            v,
            draw(st.sampled_from([False, False, True])),
            draw(st.sampled_from([False, False, True])),
            draw(st.sampled_from(AGES)),
        )
        for v in chosen
    )
    return Situation(
        capacity=capacity,
        zoned=draw(st.booleans()),
        automatic=draw(st.booleans()),
        rolling={
            "maxBatchInstancePercent": batch,
            "maxUnhealthyInstancePercent": draw(st.integers(batch, 100)),
            "enableCrossZoneUpgrade": draw(st.booleans()),
            "prioritizeUnhealthyInstances": draw(st.booleans()),
        },
        versions=versions,
        quarantined=tuple(draw(st.lists(st.sampled_from([*POOL, "1.0.0"]), unique=True))),
        minimum_age=draw(st.sampled_from(["PT0S", "PT1H", "P1D"])),
        window=draw(st.sampled_from(["none", "open", "closed"])),
        grace=draw(st.sampled_from(["PT0S", "PT1H"])),
        disrupted=frozenset(draw(st.sets(ids, max_size=capacity))),
        protected=frozenset(draw(st.sets(ids, max_size=max(1, capacity // 3)))),
    )


def situated(case: Situation) -> Sim:
    sim = settled(
        case.capacity,
        world=World(zoned=case.zoned),
        automatic=case.automatic,
        rolling=case.rolling,
    )
    # No upgrade delay: a platform upgrade the target allows starts in this very pass.
    sim.settings = PlannerSettings(automatic_upgrade_delay=timedelta(0))
    windows: list[dict[str, str]] = []
    if case.window == "open":
        windows = [
            {"start": (sim.now - timedelta(minutes=10)).strftime("%H:%M"), "duration": "PT1H"}
        ]
    elif case.window == "closed":
        windows = [{"start": (sim.now + timedelta(hours=2)).strftime("%H:%M"), "duration": "PT1H"}]
    schedule: dict[str, Any] = {"minimumImageAge": case.minimum_age}
    if windows:
        schedule["maintenanceWindows"] = windows
    configure(sim, schedule=schedule, grace=case.grace)
    for version, excluded, elsewhere, age in case.versions:
        entry = version_entry(version, excluded=excluded, regions=["eastus"] if elsewhere else ())
        sim.publish(entry if age is None else published(entry, sim.now - age))
    quarantine(sim, *case.quarantined)
    sim.world.protected |= case.protected
    sim.world.disrupted |= case.disrupted
    sim.tick(0)
    return sim


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(situations())
def test_a_user_start_does_what_the_plan_says(case: Situation) -> None:
    sim = situated(case)
    obs = sim.observed()
    planned = preview_start(obs.spec, obs.status, obs.catalog, obs.instances, obs.now)
    sim.request("start")
    result = sim.plan()
    run = result.status.upgrade_run

    assert planned.target.image is not None  # the model at least
    assert planned.preview is not None
    assert run is not None
    assert run.started_by is StartedBy.USER
    assert run.target == planned.target.image
    assert is_refusal(run) == (planned.preview.refused is not None)
    first = list(planned.preview.batches[0].instance_ids) if planned.preview.batches else None
    if planned.preview.refused is None:
        assert (run.batch.instance_ids if run.batch else None) == first


@PROPERTY
@given(situations())
def test_the_platform_starts_what_the_target_says(case: Situation) -> None:
    sim = situated(case)
    obs = sim.observed()
    target = upgrade_target(
        obs.spec, obs.status, obs.catalog, obs.now, started_by=StartedBy.PLATFORM
    )
    user = upgrade_target(obs.spec, obs.status, obs.catalog, obs.now, started_by=StartedBy.USER)
    result = sim.plan()
    run = result.status.upgrade_run
    started = "RollingUpgradeStarted" in seen(result).events

    assert started == target.may_start
    if target.image is not None:
        # The same version a user would get: only *when* differs.
        assert target.image == user.image
        assert target.held_back == user.held_back
    if started:
        assert run is not None
        assert run.started_by is StartedBy.PLATFORM
        assert run.target == target.image
    waits = [*target.ripens_at]
    if target.image is not None and target.window_opens_at is not None:
        waits.append(target.window_opens_at)
    if waits and not started:
        # Woken when a version ripens or the window opens, not left until something else moves.
        assert result.requeue_after is not None
        assert result.requeue_after <= (min(waits) - obs.now).total_seconds() + 0.001
