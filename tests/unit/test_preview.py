"""The dry-run batch plan agrees with what the planner then does."""

from __future__ import annotations

from scaleset_operator.planner.preview import preview
from tests.unit.simworld import FINISHED, Sim, version_entry
from tests.unit.test_planner_scenarios import settled


def _batches_run(sim: Sim) -> list[tuple[int, ...]]:
    started = []
    for _ in range(200):
        result = sim.step(1)
        run = result.status.upgrade_run
        begun = "BatchStarted" in {e.reason for e in result.events}
        if begun and run is not None and run.batch is not None:
            started.append(tuple(run.batch.instance_ids))
        if sim.code in FINISHED:
            return started
    raise AssertionError("the upgrade did not finish")


def test_preview_matches_the_batches_the_upgrade_takes() -> None:
    for rolling in ({}, {"enableCrossZoneUpgrade": True}, {"maxBatchInstancePercent": 10}):
        sim = settled(10, rolling=rolling)
        obs = sim.observed()
        target = version_entry("1.1.0")
        planned = preview(obs.spec, list(obs.instances), target.spec.image, obs.now)
        assert planned.refused is None
        sim.publish(target)
        ran = _batches_run(sim)
        assert [b.instance_ids for b in planned.batches] == ran, rolling


def test_preview_reports_the_pre_start_gate() -> None:
    sim = settled(10)
    obs = sim.observed()
    instances = [
        i.model_copy(update={"ready": False}) if i.instance_id < 3 else i for i in obs.instances
    ]
    planned = preview(obs.spec, instances, "example/os:2.0", obs.now)
    assert planned.refused is not None
    assert planned.refused.startswith("MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade")
    assert planned.batches == ()
    assert planned.unhealthy == (0, 1, 2)
