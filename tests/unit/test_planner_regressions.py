"""Regressions found by the scenario and property tests, each pinned by a small case."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from scaleset_operator.models.durations import format_duration, parse_duration
from scaleset_operator.models.status import ErrorCode, RunningStatusCode
from scaleset_operator.planner.actions import CreateInstance, DeleteInstance, SetInstanceImage
from scaleset_operator.planner.health import same_image
from scaleset_operator.planner.plan import plan
from tests.unit.simworld import FINISHED, Sim, version_entry
from tests.unit.test_planner_scenarios import end_state, finish, seen, settled, until_started


def test_instances_upgraded_before_a_retarget_are_verified_on_the_new_target() -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0"))
    until_started(sim, kubelet=False)
    sim.publish(version_entry("1.2.0", "bad-1.2.0"))
    sim.tick(0)
    finish(sim)
    assert sim.world.on("bad-1.2.0") == []
    assert sim.run.error is not None
    assert sim.run.error.code == ErrorCode.UPGRADED_UNHEALTHY.value


def test_rolling_back_instances_are_counted_once() -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    until_started(sim)
    p = seen(sim.step())
    assert p.sets == [(0, "1.0.0"), (1, "1.0.0")]
    assert sum(p.progress) == 10


def _upgrade_losing_a_status_write(tag: str, lost_at: int | None) -> Sim:
    sim = settled(10, health_timeout="PT10S")
    sim.publish(version_entry("1.1.0", tag))
    n = 0
    while sim.code not in FINISHED:
        sim.step(2, persist=n != lost_at)
        n += 1
        assert n < 100
    sim.settle()
    return sim


def test_a_pass_that_acted_but_lost_its_status_write_is_resumed_from_the_pods() -> None:
    for tag in ("1.1.0", "bad-1.1.0"):
        expected = end_state(_upgrade_losing_a_status_write(tag, None))
        for lost_at in range(8):
            got = end_state(_upgrade_losing_a_status_write(tag, lost_at))
            assert got == expected, (tag, lost_at)


def test_requests_of_the_same_second_give_the_same_plan_in_any_order() -> None:
    sim = settled(4, automatic=False)
    sim.publish(version_entry("1.1.0"))
    sim.request("start")
    sim.request("cancel")
    obs = sim.observed()
    assert plan(obs) == plan(dataclasses.replace(obs, requests=obs.requests[::-1]))


def test_an_instance_removed_by_scale_in_is_not_also_rolled_back() -> None:
    knobs = {"maxBatchInstancePercent": 100, "maxUnhealthyInstancePercent": 100}
    sim = settled(3, rolling=knobs)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    until_started(sim)
    sim.set_spec(capacity=1, rolling=knobs)
    r = sim.step()
    deleted = {a.name for a in r.actions if isinstance(a, DeleteInstance)}
    patched = {a.name for a in r.actions if isinstance(a, SetInstanceImage)}
    assert deleted == {"web-1", "web-2"}
    assert not deleted & patched


def test_kubelet_spellings_of_library_and_untagged_images_match() -> None:
    assert same_image("library/nginx:1.25", "docker.io/library/nginx:1.25")
    assert same_image("nginx", "docker.io/library/nginx:latest")
    assert same_image("registry.example:5000/os", "registry.example:5000/os:latest")
    assert not same_image("registry.example:5000/os", "registry.example:5000/os:1.0")


def test_format_duration_round_trips_fractional_seconds() -> None:
    for s in (12.345678, 1234567.5, 0.000001):
        assert parse_duration(format_duration(timedelta(seconds=s))) == timedelta(seconds=s)


def test_the_history_of_a_finished_run_stays_as_it_ended() -> None:
    sim = settled(10)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    finish(sim)
    assert sim.code is RunningStatusCode.FAULTED
    ended = sim.status.os_upgrade_history[0]
    sim.set_spec(capacity=15)
    sim.settle()
    assert sim.status.os_upgrade_history[0] == ended


def _surge_world_ids(sim: Sim) -> list[int]:
    return sorted(i.instance_id for i in sim.world.instances.values() if not i.deleting)


def test_max_surge_creates_new_instances_before_removing_old_ones() -> None:
    sim = settled(10, rolling={"maxSurge": True, "enableCrossZoneUpgrade": True})
    sim.publish(version_entry("1.1.0"))
    started = until_started(sim)
    creates = [a for a in started.actions if isinstance(a, CreateInstance)]
    assert [(a.instance_id, a.surge_for) for a in creates] == [(10, 0), (11, 1)]
    # Old instances are untouched while their replacements start.
    assert not [a for a in started.actions if isinstance(a, SetInstanceImage)]
    finish(sim)
    sim.settle()
    assert sim.code is RunningStatusCode.COMPLETED
    assert len(sim.run.succeeded) == 10
    live = [i for i in sim.world.instances.values() if not i.deleting]
    assert len(live) == 10
    assert all(i.surge_for is None for i in live)
    assert {i.os_image for i in live} == {sim.run.target.container_image}


def test_max_surge_with_a_bad_image_removes_the_new_instances_and_keeps_the_old() -> None:
    sim = settled(10, rolling={"maxSurge": True, "enableCrossZoneUpgrade": True})
    before = _surge_world_ids(sim)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    finish(sim)
    sim.settle()
    assert sim.code is RunningStatusCode.FAULTED
    assert sim.run.error is not None
    assert sim.run.error.code == ErrorCode.UPGRADED_UNHEALTHY.value
    assert len(sim.run.rolled_back) == len(sim.run.failed) == 2
    assert _surge_world_ids(sim) == before
    assert sim.world.on("bad-1.1.0") == []


def test_image_resolved_names_the_new_model_in_the_pass_that_starts_the_upgrade() -> None:
    """It used to name the old image until the next pass: one status write per upgrade more."""
    sim = settled(5)
    sim.tick()
    sim.publish(version_entry("1.1.0"))
    started = until_started(sim)
    resolved = next(c for c in started.status.conditions if c.type == "ImageResolved")
    assert started.status.model_image is not None
    assert started.status.model_image.version == "1.1.0"
    assert "1.1.0" in resolved.message
    after = next(c for c in sim.plan().status.conditions if c.type == "ImageResolved")
    assert after == resolved
