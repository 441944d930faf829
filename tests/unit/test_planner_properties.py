"""Invariants of the planner over random scale sets, policies, images and disturbances.

Each example drives a whole upgrade through the simulated world (tests/unit/simworld.py) and
checks every pass: batch budget, unhealthy budget, upgrade marks, determinism, counts,
and that the run finishes within a bound derived from its size and timeouts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scaleset_operator.controller.pacing import only_progress_changed
from scaleset_operator.models.instance import UpgradePhase
from scaleset_operator.models.scaleset import RollingUpgradePolicy
from scaleset_operator.models.status import ErrorCode, RunningStatusCode, StartedBy
from scaleset_operator.planner.actions import CreateInstance, DeleteInstance, SetInstanceImage
from scaleset_operator.planner.batches import batch_size, exceeds, percent_of
from scaleset_operator.planner.health import counts_as_unhealthy, verdict
from scaleset_operator.planner.observed import Observed, Plan, PlannerSettings
from scaleset_operator.planner.plan import plan
from scaleset_operator.planner.refusal import is_refusal, is_refusal_entry
from tests.unit.simworld import FINISHED, Sim, World, spec_of, version_entry

HEALTH_TIMEOUT = 4  # seconds; small so that examples stay fast
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TAGS = ["1.1.0", "bad-1.1.0", "crash-1.1.0", "unready-1.1.0"]


@dataclass(frozen=True)
class Case:
    capacity: int
    rolling: dict[str, object]
    tag: str
    user_start: bool
    disable_rollback: bool
    zoned: bool
    protected: frozenset[int]
    disrupted: frozenset[int]
    advance: int
    pause: int = field(default=0)
    # Init containers in the template: instances change image by being recreated.
    extensions: bool = field(default=False)

    def policy(self) -> RollingUpgradePolicy:
        return RollingUpgradePolicy.model_validate(self.rolling)


@st.composite
def cases(draw: st.DrawFn, max_capacity: int = 40) -> Case:
    capacity = draw(st.integers(1, max_capacity))
    batch = draw(st.sampled_from([5, 10, 20, 25, 33, 50, 100]))
    pause = draw(st.sampled_from([0, 0, 2]))
    rolling: dict[str, object] = {
        "maxBatchInstancePercent": batch,
        "maxUnhealthyInstancePercent": draw(st.integers(batch, 100)),
        "maxUnhealthyUpgradedInstancePercent": draw(st.sampled_from([0, 10, 20, 50, 100])),
        "pauseTimeBetweenBatches": f"PT{pause}S",
        "prioritizeUnhealthyInstances": draw(st.booleans()),
        "enableCrossZoneUpgrade": draw(st.booleans()),
        "rollbackFailedInstancesOnPolicyBreach": draw(st.booleans()),
        "maxSurge": draw(st.booleans()),
    }
    ids = st.integers(0, capacity - 1)
    return Case(
        capacity=capacity,
        rolling=rolling,
        tag=draw(st.sampled_from(TAGS)),
        user_start=draw(st.booleans()),
        disable_rollback=draw(st.booleans()),
        zoned=draw(st.booleans()),
        protected=frozenset(draw(st.sets(ids, max_size=max(1, capacity // 3)))),
        disrupted=frozenset(draw(st.sets(ids, max_size=max(1, capacity // 8)))),
        advance=draw(st.integers(1, 3)),
        pause=pause,
        extensions=draw(st.booleans()),
    )


def start(case: Case) -> Sim:
    spec = spec_of(
        capacity=case.capacity,
        automatic=not case.user_start,
        disable_rollback=case.disable_rollback,
        health_timeout=f"PT{HEALTH_TIMEOUT}S",
        rolling=case.rolling,
    )
    if case.extensions:
        init = [{"name": "configure", "image": "registry.test/configure:1"}]
        template = {**spec.template, "spec": {**spec.template["spec"], "initContainers": init}}
        spec = spec.model_copy(update={"template": template})
    sim = Sim(
        spec=spec,
        catalog=[version_entry("1.0.0")],
        world=World(zoned=case.zoned),
        settings=PlannerSettings(automatic_upgrade_delay=timedelta(seconds=1)),
    )
    sim.world.protected |= case.protected
    sim.settle()
    sim.world.disrupted |= case.disrupted
    sim.tick(0)
    sim.publish(version_entry("1.1.0", case.tag))
    if case.user_start:
        sim.request("start")
    return sim


def pass_limit(case: Case) -> int:
    """Every batch holds at least one instance and ends within two health timeouts (the
    upgrade, then the rollback) plus the pause; a few passes of slack each."""
    per_batch = math.ceil((2 * HEALTH_TIMEOUT + case.pause) / case.advance) + 4
    return 10 + case.capacity * per_batch


def check_determinism(obs: Observed, result: Plan) -> None:
    """The same observation gives the same plan, whatever order pods and catalog entries
    were listed in."""
    assert plan(obs) == result
    reordered = dataclasses.replace(obs, instances=obs.instances[::-1], catalog=obs.catalog[::-1])
    assert plan(reordered) == result


def check_pass(case: Case, obs: Observed, result: Plan) -> None:
    """The safety invariants of one pass."""
    run = result.status.upgrade_run
    policy = case.policy()
    total = case.capacity
    size = batch_size(total, policy)
    history = result.status.os_upgrade_history
    assert len(history) <= 5
    starts = [h.running_status.start_time or "" for h in history if h.running_status]
    assert starts == sorted(starts, reverse=True)
    # Retried refusals replace each other: at most one entry per refused version.
    refused = [h.target_image_reference for h in history if is_refusal_entry(h)]
    assert len({r.version for r in refused if r}) == len(refused)
    if run is None:
        assert not any(isinstance(a, SetInstanceImage) for a in result.actions)
        return

    # Every image change toward the target carries what to roll back to.
    for action in result.actions:
        if isinstance(action, SetInstanceImage):
            mark = action.upgrade
            assert mark is not None, action
            assert mark.run == run.start_time
            assert mark.previous_image
            if action.container_image == run.target.container_image:
                assert mark.phase is UpgradePhase.UPGRADING
                assert mark.previous_image != run.target.container_image
                assert mark.target_version == run.target.version
            else:
                assert mark.phase is UpgradePhase.ROLLING_BACK
                assert action.container_image == mark.previous_image
        if isinstance(action, CreateInstance):
            model = result.status.model_image
            assert model is not None
            back = action.upgrade
            if back is not None and back.phase is UpgradePhase.ROLLING_BACK:
                # Recreated while rolling back: on the image it came from.
                assert action.container_image == back.previous_image
            else:
                assert action.container_image == model.container_image
            if back is not None:
                assert back.run == run.start_time

    # Never more instances in flight than one batch.
    rolling = result.status.rolling_upgrade
    assert rolling is not None
    assert rolling.progress is not None
    in_flight = 0
    if run.batch is not None:
        in_flight = len(set(run.batch.instance_ids) - set(run.succeeded) - set(run.failed))
    assert in_flight <= size
    assert in_flight <= rolling.progress.in_progress_instance_count
    started = [e for e in result.events if e.reason == "BatchStarted"]
    if run.batch is not None and run.stop_reason is None:
        assert len(run.batch.instance_ids) <= size
    if started:
        assert run.batch is not None
        batch = run.batch.instance_ids
        if policy.max_surge:
            # New instances first, one for each old instance of the batch.
            surged = [a for a in result.actions if isinstance(a, CreateInstance)]
            assert {a.surge_for for a in surged if a.surge_for is not None} == set(batch)
        else:
            changed: list[SetInstanceImage | DeleteInstance] = [
                a for a in result.actions if isinstance(a, SetInstanceImage | DeleteInstance)
            ]
            if not case.extensions:
                assert all(isinstance(a, SetInstanceImage) for a in changed)
            else:
                assert not any(isinstance(a, SetInstanceImage) for a in changed)
            assert {int(a.name.rsplit("-", 1)[1]) for a in changed} == set(batch)
        assert not set(batch) & case.protected
        # The unhealthy budget: healthy instances we take down plus those already unhealthy
        # stay within maxUnhealthyInstancePercent, except for the minimum batch of one.
        # Surge instances add capacity rather than take it away: they are not in the budget.
        live = {i.instance_id: i for i in obs.instances if i.surge_for is None}
        unhealthy = {
            iid
            for iid, inst in live.items()
            if counts_as_unhealthy(verdict(inst, obs.spec.health_probe, obs.now))
        }
        allowed = percent_of(total, policy.max_unhealthy_instance_percent)
        assert len(unhealthy) <= allowed
        healthy_taken = [i for i in batch if i not in unhealthy]
        assert len(healthy_taken) <= max(1, allowed - len(unhealthy))
        if case.zoned and not policy.enable_cross_zone_upgrade:
            assert len({live[i].zone for i in batch}) == 1

    # Counts: every instance that was not protected is in exactly one bucket, during the run
    # and after it ended (pending: not reached). Instances rolling back are also counted as
    # failed, so the sum is exact whenever none are.
    p = rolling.progress
    counted = (
        p.successful_instance_count
        + p.failed_instance_count
        + p.in_progress_instance_count
        + p.pending_instance_count
    )
    eligible = total - len(case.protected)
    if not run.rolling_back:
        assert counted == eligible
    if run.code is RunningStatusCode.COMPLETED:
        assert p.successful_instance_count + p.failed_instance_count == eligible
        assert p.in_progress_instance_count == p.pending_instance_count == 0
    assert history[0].progress == p


def check_end(case: Case, sim: Sim) -> None:
    run = sim.run
    assert run is not None
    assert run.batch is None
    assert not run.rolling_back
    policy = case.policy()
    if policy.max_surge:
        check_surge_end(case, sim)
        return
    eligible = set(range(case.capacity)) - case.protected
    tags = sim.world.tags()
    assert set(run.succeeded) | set(run.failed) <= eligible
    assert not set(run.succeeded) & set(run.failed)
    for iid in case.protected:
        assert tags[iid] == "1.0.0"
    rolled = set(run.rolled_back) | set(run.rollback_failed)
    assert rolled <= set(run.failed)
    for iid in run.rolled_back:
        assert tags[iid] == "1.0.0"
    automatic = run.started_by is StartedBy.PLATFORM and not case.disable_rollback
    assert run.automatic_rollback is automatic
    breach_rollback = (
        run.code is RunningStatusCode.FAULTED
        and policy.rollback_failed_instances_on_policy_breach
        and run.error is not None
        and run.error.code != ErrorCode.UNHEALTHY_BEFORE.value
    )
    if automatic or breach_rollback:
        assert rolled == set(run.failed)
    else:
        assert not rolled
        for iid in run.failed:
            assert tags[iid] == case.tag
    if run.code is RunningStatusCode.COMPLETED:
        assert set(run.succeeded) | set(run.failed) == eligible
        for iid in run.succeeded:
            assert tags[iid] == case.tag
        if run.failed:
            assert run.error is not None
            assert run.error.code == ErrorCode.FAILED_UPGRADED_VMS.value
    if run.error is not None and run.error.code == ErrorCode.UPGRADED_UNHEALTHY.value:
        upgraded = len(run.succeeded) + len(run.failed)
        assert exceeds(len(run.failed), upgraded, policy.max_unhealthy_upgraded_instance_percent)
    if is_refusal(run):
        # Refused at the pre-start gate: nothing touched, no verdict on the version, which
        # stays pending for the platform to try again.
        assert set(sim.world.tags().values()) == {"1.0.0"}
        assert sim.status.faulted_versions == []
        if run.started_by is StartedBy.PLATFORM:
            assert sim.status.pending_upgrade is not None
            assert sim.status.pending_upgrade.version == "1.1.0"
    elif run.code is RunningStatusCode.FAULTED and run.started_by is StartedBy.PLATFORM:
        assert sim.status.faulted_versions == ["1.1.0"]
    if case.tag == "1.1.0" and not case.disrupted:
        assert run.code is RunningStatusCode.COMPLETED
        assert not run.failed
        assert sorted(run.succeeded) == sorted(eligible)


def check_surge_end(case: Case, sim: Sim) -> None:
    """maxSurge replaces instances by new ones: the lists hold the replaced instances' ids."""
    run = sim.run
    assert run is not None
    sim.settle()
    live = sim.world.live()
    tags = sim.world.tags()
    assert all(i.surge_for is None for i in live)
    assert not set(run.succeeded) & set(run.failed)
    assert set(run.rolled_back) <= set(run.failed)
    for iid in run.succeeded:
        assert iid not in tags  # replaced by a new instance
    for iid in run.rolled_back:
        assert tags[iid] == "1.0.0"  # the old instance never stopped
    for iid in case.protected:
        assert tags[iid] == "1.0.0"
    if not case.disrupted:
        assert len(live) == case.capacity
    if case.tag == "1.1.0" and not case.disrupted:
        assert run.code is RunningStatusCode.COMPLETED
        assert len(run.succeeded) == case.capacity - len(case.protected)
        assert list(tags.values()).count("1.1.0") == len(run.succeeded)


@PROPERTY
@given(cases())
def test_every_upgrade_finishes_within_bounds_and_keeps_the_invariants(case: Case) -> None:
    sim = start(case)
    limit = pass_limit(case)
    for n in range(limit):
        obs = sim.observed()
        result = sim.step(case.advance)
        check_pass(case, obs, result)
        if n % 3 == 0 or result.actions:
            check_determinism(obs, result)
        if sim.code in FINISHED:
            break
    assert sim.code in FINISHED, f"still {sim.code} after {limit} passes"
    check_end(case, sim)
    run = sim.run
    assert run is not None
    event(f"ended {run.code.value} ({run.error.code if run.error else 'no error'})")
    event(f"capacity {'1-9' if case.capacity < 10 else '10-40'}")
    event("extensions recreated" if case.extensions else "image patched in place")
    # Finished means finished: later passes change no image and start nothing.
    for _ in range(5):
        obs = sim.observed()
        result = sim.step(case.advance)
        check_pass(case, obs, result)
        assert not any(isinstance(a, SetInstanceImage) for a in result.actions)
        assert len(sim.status.os_upgrade_history) == 1


@st.composite
def disturbances(draw: st.DrawFn) -> list[tuple[str, int]]:
    kinds = st.sampled_from(["nothing", "nothing", "protect", "disrupt", "scale", "cancel"])
    return draw(st.lists(st.tuples(kinds, st.integers(0, 40)), min_size=5, max_size=40))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_capacity=20), disturbances())
def test_disturbed_upgrades_stay_safe_and_still_finish(
    case: Case, events: list[tuple[str, int]]
) -> None:
    """Protection toggles, disruptions, scaling and cancels while the upgrade runs."""
    sim = start(case)
    size_now = case.capacity
    for kind, n in events:
        if kind == "protect":
            sim.world.protected ^= {n % max(size_now, 1)}
        elif kind == "disrupt":
            sim.world.disrupted ^= {n % max(size_now, 1)}
        elif kind == "scale":
            size_now = max(1, n % 21)
            sim.update_spec(sim.spec.model_copy(update={"capacity": size_now}))
        elif kind == "cancel":
            sim.request("cancel")
        obs = sim.observed()
        result = sim.step(case.advance)
        if result.actions:
            check_determinism(obs, result)
        run = result.status.upgrade_run
        if run is None:
            continue
        policy = case.policy()
        if any(e.reason == "BatchStarted" for e in result.events):
            assert run.batch is not None
            assert len(run.batch.instance_ids) <= batch_size(max(obs.spec.capacity, 1), policy)
        for action in result.actions:
            if isinstance(action, SetInstanceImage):
                assert action.upgrade is not None
                assert action.upgrade.previous_image
                if action.container_image == run.target.container_image:
                    name = action.name
                    inst = next(i for i in obs.instances if i.name == name)
                    assert not inst.protected, name
        assert len(result.status.os_upgrade_history) <= 5
    # Calm again: the run must come to an end.
    sim.world.disrupted.clear()
    for _ in range(pass_limit(dataclasses.replace(case, capacity=max(size_now, 20)))):
        if sim.code in FINISHED or sim.code is None:
            break
        sim.step(case.advance)
    assert sim.code in FINISHED or sim.code is None


@settings(max_examples=25, deadline=None)
@given(
    capacity=st.integers(1, 6),
    tags=st.lists(st.sampled_from(["good", "good", "bad"]), min_size=1, max_size=8),
)
def test_history_holds_the_last_five_runs_newest_first(capacity: int, tags: list[str]) -> None:
    sim = Sim(
        spec=spec_of(capacity=capacity, health_timeout="PT4S"),
        catalog=[version_entry("1.0")],
        settings=PlannerSettings(automatic_upgrade_delay=timedelta(0)),
    )
    sim.settle()
    started = []
    for minor, tag in enumerate(tags, start=1):
        version = f"1.{minor}"
        sim.publish(version_entry(version, f"{tag}-{version}"))
        sim.settle(advance=2)
        run = sim.run
        if run is not None and run.target.version == version:
            started.append(version)
        history = sim.status.os_upgrade_history
        assert len(history) == min(len(started), 5)
        assert [h.target_image_reference.version for h in history if h.target_image_reference] == (
            started[::-1][:5]
        )
        assert all(
            h.running_status is not None and h.running_status.code in FINISHED for h in history
        )
    # A faulted version does not block the next one: every version was tried once.
    assert started == [f"1.{m}" for m in range(1, len(tags) + 1)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_capacity=20), st.lists(st.booleans(), min_size=1, max_size=64))
def test_holding_back_progress_writes_loses_nothing(case: Case, holds: list[bool]) -> None:
    """The operator may hold back a status write that only records progress (counts, more
    instances upgraded): such a pass persists nothing. Upgrades still finish and keep every
    invariant, as if those passes had never run."""
    sim = start(case)
    limit = pass_limit(case)
    held = 0
    for n in range(limit):
        obs = sim.observed()
        before = sim.status
        hold = holds[n % len(holds)]
        result = plan(obs)
        if hold and not result.actions and not result.events:
            hold = only_progress_changed(before, result.status)
        else:
            hold = False
        held += hold
        sim.step(case.advance, persist=not hold)
        check_pass(case, obs, result)
        if sim.code in FINISHED:
            break
    assert sim.code in FINISHED, f"still {sim.code} after {limit} passes"
    check_end(case, sim)
    event("held some progress writes" if held else "held none")
