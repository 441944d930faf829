"""An OS upgrade re-runs the extensions (init containers) in order and keeps the data disks.

Init containers only run when a pod starts, so an instance whose template has them is
upgraded, and rolled back, by deleting its pod and bringing it back under its own id on the
other image with its upgrade mark; an instance without them keeps the in-place image patch.
"""

from __future__ import annotations

from typing import Any

from scaleset_operator.models.instance import UpgradePhase
from scaleset_operator.models.status import RunningStatusCode
from scaleset_operator.planner.actions import CreateInstance, DeleteInstance, SetInstanceImage
from scaleset_operator.planner.observed import Plan
from tests.unit.simworld import Sim, spec_of, tag_of, version_entry

EXTENSIONS = [
    {"name": "configure", "image": "registry.test/configure:1"},
    {"name": "monitoring-agent", "image": "registry.test/agent:1"},
]


def settled(capacity: int, *, extensions: bool, **spec: Any) -> Sim:
    base = spec_of(capacity=capacity, **spec)
    if extensions:
        pod_spec = {**base.template["spec"], "initContainers": EXTENSIONS}
        template = {**base.template, "spec": pod_spec}
        base = base.model_copy(update={"template": template})
    sim = Sim(spec=base, catalog=[version_entry("1.0.0")])
    sim.settle()
    assert sim.world.on("1.0.0") == list(range(capacity))
    return sim


def deletes(plans: list[Plan]) -> list[tuple[int, str]]:
    return [
        (int(a.name.rsplit("-", 1)[1]), a.reason)
        for p in plans
        for a in p.actions
        if isinstance(a, DeleteInstance)
    ]


def creates(plans: list[Plan]) -> list[CreateInstance]:
    return [a for p in plans for a in p.actions if isinstance(a, CreateInstance)]


def sets(plans: list[Plan]) -> list[SetInstanceImage]:
    return [a for p in plans for a in p.actions if isinstance(a, SetInstanceImage)]


def finished(sim: Sim) -> bool:
    return sim.code in (RunningStatusCode.COMPLETED, RunningStatusCode.FAULTED)


def test_an_instance_with_extensions_is_recreated_on_the_new_image_under_its_id() -> None:
    sim = settled(2, extensions=True)
    names = {i.instance_id: i.name for i in sim.world.live()}
    sim.publish(version_entry("1.1.0"))
    plans = sim.run_until(finished)
    assert sim.code is RunningStatusCode.COMPLETED
    assert sets(plans) == []
    assert deletes(plans) == [(0, "recreate on the new image"), (1, "recreate on the new image")]
    back = creates(plans)
    assert [(c.instance_id, tag_of(c.container_image)) for c in back] == [
        (0, "1.1.0"),
        (1, "1.1.0"),
    ]
    for created in back:
        # The mark lets the health judgement, rollback and a restarted operator find the run.
        assert created.upgrade is not None
        assert created.upgrade.phase is UpgradePhase.UPGRADING
        assert created.upgrade.previous_image == sim.catalog[0].spec.image
        assert created.upgrade.run == sim.status.upgrade_run.start_time  # type: ignore[union-attr]
    assert {i.instance_id: i.name for i in sim.world.live()} == names
    assert sim.world.on("1.1.0") == [0, 1]
    assert sim.status.upgrade_run is not None
    assert sorted(sim.status.upgrade_run.succeeded) == [0, 1]


def test_an_instance_without_extensions_keeps_the_in_place_image_patch() -> None:
    sim = settled(2, extensions=False)
    uids = [i.uid for i in sim.world.live()]
    sim.publish(version_entry("1.1.0"))
    plans = sim.run_until(finished)
    assert sim.code is RunningStatusCode.COMPLETED
    assert deletes(plans) == []
    assert creates(plans) == []
    assert [(s.name, tag_of(s.container_image)) for s in sets(plans)] == [
        ("web-0", "1.1.0"),
        ("web-1", "1.1.0"),
    ]
    assert [i.uid for i in sim.world.live()] == uids


def test_a_rollback_with_extensions_recreates_the_instance_on_the_previous_image() -> None:
    sim = settled(2, extensions=True)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    plans = sim.run_until(finished)
    assert sim.code is RunningStatusCode.FAULTED
    assert sets(plans) == []
    assert deletes(plans) == [
        (0, "recreate on the new image"),
        (0, "recreate on the previous image"),
    ]
    forward, back = creates(plans)
    assert (forward.instance_id, tag_of(forward.container_image)) == (0, "bad-1.1.0")
    assert (back.instance_id, tag_of(back.container_image)) == (0, "1.0.0")
    assert back.image_urn.endswith(":1.0.0")
    assert back.upgrade is not None
    assert back.upgrade.phase is UpgradePhase.ROLLING_BACK
    run = sim.status.upgrade_run
    assert run is not None
    assert (run.failed, run.rolled_back, run.rollback_failed) == ([0], [0], [])
    assert sim.world.tags() == {0: "1.0.0", 1: "1.0.0"}


def test_a_rollback_without_extensions_patches_the_image_back_in_place() -> None:
    sim = settled(2, extensions=False)
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))
    plans = sim.run_until(finished)
    assert sim.code is RunningStatusCode.FAULTED
    assert deletes(plans) == []
    assert [(s.name, tag_of(s.container_image)) for s in sets(plans)] == [
        ("web-0", "bad-1.1.0"),
        ("web-0", "1.0.0"),
    ]
    run = sim.status.upgrade_run
    assert run is not None
    assert (run.failed, run.rolled_back) == ([0], [0])


def test_lost_status_writes_around_the_recreation_still_finish_the_upgrade() -> None:
    sim = settled(5, extensions=True)
    sim.publish(version_entry("1.1.0"))
    lost = 0
    for _ in range(200):
        if finished(sim):
            break
        # The operator dies after the first delete and after every recreation inside a run,
        # before its status write: what it knows afterwards comes from the pods, the
        # recreated one's mark included. (A pass that also starts the run would lose the run.)
        coming = sim.plan()
        starts = any(e.reason == "RollingUpgradeStarted" for e in coming.events)
        crash = bool(creates([coming]) and not starts) or bool(deletes([coming]) and not lost)
        lost += crash
        sim.step(persist=not crash)
    assert lost >= 6
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.1.0") == [0, 1, 2, 3, 4]
    assert sim.status.upgrade_run is not None
    assert sorted(sim.status.upgrade_run.succeeded) == [0, 1, 2, 3, 4]


def left_behind_on_1_0_0() -> Sim:
    """Instance 1 was protected during the upgrade to 1.1.0, so it still runs 1.0.0 when the
    next run (previous model 1.1.0) starts; both fit in one batch."""
    whole = {"maxBatchInstancePercent": 100, "maxUnhealthyInstancePercent": 100}
    sim = settled(2, extensions=True, rolling=whole)
    sim.world.protected.add(1)
    sim.publish(version_entry("1.1.0"))
    sim.run_until(finished)
    assert sim.world.tags() == {0: "1.1.0", 1: "1.0.0"}
    sim.world.protected.discard(1)
    return sim


def test_an_instance_from_another_image_is_recreated_both_ways_and_goes_back_to_its_own() -> None:
    sim = left_behind_on_1_0_0()
    old_image = sim.catalog[0].spec.image
    sim.publish(version_entry("1.2.0", "bad-1.2.0"))
    plans = sim.run_until(lambda s: s.run is not None and s.run.target.version == "1.2.0")
    plans += sim.run_until(finished)
    # Instance 1 came from 1.0.0, not from the run's previous model 1.1.0: it is recreated
    # (its extensions run again) both ways, and goes back to 1.0.0.
    assert sets(plans) == []
    assert sorted(deletes(plans)) == [
        (0, "recreate on the new image"),
        (0, "recreate on the previous image"),
        (1, "recreate on the new image"),
        (1, "recreate on the previous image"),
    ]
    forward, back = [c for c in creates(plans) if c.instance_id == 1]
    assert tag_of(forward.container_image) == "bad-1.2.0"
    assert forward.upgrade is not None
    assert (forward.upgrade.previous_image, forward.upgrade.previous_version) == (
        old_image,
        "1.0.0",
    )
    assert (tag_of(back.container_image), back.image_urn.rsplit(":", 1)[1]) == ("1.0.0", "1.0.0")
    assert back.upgrade is not None
    assert back.upgrade.phase is UpgradePhase.ROLLING_BACK
    assert back.upgrade.previous_image == old_image
    assert sim.world.tags() == {0: "1.1.0", 1: "1.0.0"}
    assert sim.run is not None
    assert (sorted(sim.run.rolled_back), sim.run.rollback_failed) == ([0, 1], [])
    # Once the run has ended, the status no longer keeps where instances came from.
    sim.step()
    assert sim.status.recreated_from == []


def test_what_a_recreated_instance_ran_before_is_kept_in_the_status_across_restarts() -> None:
    sim = left_behind_on_1_0_0()
    sim.publish(version_entry("1.2.0", "bad-1.2.0"))
    seen = []
    rollbacks = 0
    for _ in range(300):
        if finished(sim) and sim.run is not None and sim.run.target.version == "1.2.0":
            break
        # Every pass is a freshly started operator: it knows only the status and the pods.
        # The status write of a pass that recreates nothing is sometimes lost as well.
        coming = sim.plan()
        lost = not deletes([coming]) and not creates([coming]) and len(sim.plans) % 3 == 0
        sim.step(persist=not lost)
        seen += [(c.instance_id, c.run) for c in sim.status.recreated_from]
        if (1, "recreate on the previous image") in deletes([coming]):
            rollbacks += 1
            came = [c for c in sim.status.recreated_from if c.instance_id == 1]
            assert [(c.previous_image, c.previous_version) for c in came] == [
                (sim.catalog[0].spec.image, "1.0.0")
            ]
    assert rollbacks == 1
    assert sim.run is not None
    assert sim.run.code is RunningStatusCode.FAULTED
    assert {iid for iid, _ in seen} == {1}
    assert sim.world.tags() == {0: "1.1.0", 1: "1.0.0"}
    assert sorted(sim.run.rolled_back) == [0, 1]


def test_a_pinned_version_change_recreates_instances_with_extensions() -> None:
    sim = settled(2, extensions=True, mode="Rolling", version="1.0.0", automatic=False)
    sim.publish(version_entry("1.1.0"))
    spec = spec_of(capacity=2, mode="Rolling", version="1.1.0", automatic=False)
    sim.update_spec(spec.model_copy(update={"template": sim.spec.template}))
    plans = sim.settle()
    assert sets(plans) == []
    assert sorted(deletes(plans)) == [
        (0, "recreate on the latest model"),
        (1, "recreate on the latest model"),
    ]
    assert sim.world.tags() == {0: "1.1.0", 1: "1.1.0"}
