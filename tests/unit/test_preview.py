"""The dry-run batch plan agrees with what the planner then does."""

from __future__ import annotations

from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.planner.preview import preview
from scaleset_operator.planner.refusal import is_refusal
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


def test_preview_counts_instances_in_their_grace_period_as_the_planner_does() -> None:
    """Initializing instances do not count against the pre-start gate; a plan that counted
    them would refuse a start that the operator then carries out."""
    sim = settled(10, automatic=False)
    raw = sim.spec.wire()
    raw["healthProbe"] = {"gracePeriod": "PT1H"}
    sim.spec = ScaleSetSpec.model_validate(raw)
    sim.world.disrupted |= {3, 4, 5}  # 30 % not ready, all created moments ago
    sim.tick(0)
    target = version_entry("1.1.0")
    sim.publish(target)
    obs = sim.observed()

    planned = preview(obs.spec, list(obs.instances), target.spec.image, obs.now)

    assert planned.refused is None
    assert planned.unhealthy == ()
    sim.request("start")
    sim.step()
    assert sim.run is not None
    assert not is_refusal(sim.run)
    assert sim.run.batch is not None
    assert tuple(sim.run.batch.instance_ids) == planned.batches[0].instance_ids
