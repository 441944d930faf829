"""A user's rollback of the last OS upgrade run (`rolling-upgrade rollback`), pass by pass in the
simulated world: a run back to the previous image under the same policy, recorded in history,
holding the version it undid in quarantine."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from scaleset_operator.models.status import (
    ErrorCode,
    QuarantineReason,
    RunningStatusCode,
    StartedBy,
)
from scaleset_operator.planner.actions import SetInstanceImage
from scaleset_operator.planner.observed import Plan
from scaleset_operator.planner.timefmt import parse_stamp
from tests.unit.simworld import FINISHED, Sim, spec_of, tag_of, version_entry

ROLLING = {"maxBatchInstancePercent": 20, "pauseTimeBetweenBatches": "PT10S"}


def upgraded(capacity: int = 10, **spec: Any) -> Sim:
    """A scale set that went from 1.0.0 to 1.1.0 by a completed platform upgrade."""
    sim = Sim(
        spec=spec_of(capacity=capacity, automatic=True, rolling=ROLLING, **spec),
        catalog=[version_entry("1.0.0")],
    )
    sim.settle()
    sim.publish(version_entry("1.1.0"))
    sim.run_until(lambda s: s.code is RunningStatusCode.COMPLETED, limit=400)
    assert sim.world.on("1.1.0") == list(range(capacity))
    return sim


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]


def messages(plan: Plan, reason: str) -> list[str]:
    return [e.message for e in plan.events if e.reason == reason]


def patched(plan: Plan) -> list[tuple[int, str]]:
    return [
        (int(a.name.rsplit("-", 1)[1]), tag_of(a.container_image))
        for a in plan.actions
        if isinstance(a, SetInstanceImage)
    ]


def finish(sim: Sim, *, limit: int = 400) -> list[Plan]:
    """The next pass (which handles a request just made), then on until the run has ended."""
    return [sim.step(), *sim.run_until(lambda s: s.code in FINISHED, limit=limit)]


def test_rollback_restores_every_instance_batch_by_batch_with_pauses() -> None:
    sim = upgraded()
    sim.request("rollback")
    start = sim.step()
    run = start.status.upgrade_run
    assert run is not None
    assert (run.started_by, run.target.version, run.code) == (
        StartedBy.USER,
        "1.0.0",
        RunningStatusCode.ROLLING_FORWARD,
    )
    assert run.rollback_of is not None
    assert run.rollback_of.version == "1.1.0"
    assert not run.automatic_rollback
    assert messages(start, "RollingUpgradeStarted") == [
        "rollback of 1.1.0: OS upgrade to Canonical:ubuntu-24_04-lts:server:1.0.0 started by User"
    ]
    # The first batch starts in the same pass, like a user's start.
    assert patched(start) == [(0, "1.0.0"), (1, "1.0.0")]
    assert start.status.model_image is not None
    assert start.status.model_image.version == "1.0.0"
    batches = []
    for plan in [start, *finish(sim)]:
        if patched(plan):
            batch = plan.status.upgrade_run.batch if plan.status.upgrade_run else None
            assert batch is not None
            batches.append((parse_stamp(batch.started_at), patched(plan)))
    assert sim.code is RunningStatusCode.COMPLETED
    assert [ids for _, ids in batches] == [
        [(i, "1.0.0"), (i + 1, "1.0.0")] for i in range(0, 10, 2)
    ]
    # Each batch waits for the one before to be healthy, then the 10 s pause.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(batches)]
    assert all(gap >= timedelta(seconds=10) for gap in gaps), gaps
    assert sim.world.on("1.0.0") == list(range(10))
    history = sim.status.os_upgrade_history
    assert [
        (h.started_by, h.target_image_reference and h.target_image_reference.version)
        for h in history[:2]
    ] == [(StartedBy.USER, "1.0.0"), (StartedBy.PLATFORM, "1.1.0")]
    assert history[0].running_status is not None
    assert history[0].running_status.code is RunningStatusCode.COMPLETED
    assert history[0].progress is not None
    assert history[0].progress.successful_instance_count == 10
    assert history[0].rollback_info is None


def test_the_undone_version_is_quarantined_and_not_applied_again() -> None:
    sim = upgraded()
    sim.request("rollback")
    finish(sim)
    assert sim.status.faulted_versions == ["1.1.0"]
    [why] = sim.status.quarantine_reasons
    assert (why.version, why.reason, why.message) == (
        "1.1.0",
        QuarantineReason.ROLLED_BACK_BY_USER,
        "rolled back by user",
    )
    # Well past the upgrade delay: no new run, nothing patched, the model stays on 1.0.0.
    for _ in range(30):
        plan = sim.step(2.0)
        assert "RollingUpgradeStarted" not in reasons(plan)
        assert not plan.actions
    assert sim.status.current_image_version == "1.0.0"
    assert sim.status.pending_upgrade is None


def test_clearing_the_quarantine_lets_the_platform_upgrade_again() -> None:
    sim = upgraded()
    sim.request("rollback")
    finish(sim)
    sim.request("clear-quarantine")
    cleared = sim.step()
    assert cleared.status.faulted_versions == []
    assert cleared.status.quarantine_reasons == []
    assert messages(cleared, "QuarantineCleared") == [
        "versions 1.1.0 may be picked as latest again"
    ]
    sim.run_until(
        lambda s: s.run is not None and s.run.target.version == "1.1.0" and s.code in FINISHED,
        limit=400,
    )
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.1.0") == list(range(10))


def test_a_newer_version_is_picked_up_after_a_rollback() -> None:
    sim = upgraded()
    sim.request("rollback")
    finish(sim)
    sim.publish(version_entry("1.2.0"))
    sim.run_until(
        lambda s: s.run is not None and s.run.target.version == "1.2.0" and s.code in FINISHED,
        limit=400,
    )
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.run is not None
    assert sim.run.started_by is StartedBy.PLATFORM
    assert sim.world.on("1.2.0") == list(range(10))
    assert sim.status.faulted_versions == ["1.1.0"]


def test_an_instance_failing_during_rollback_counts_as_failed_like_a_forward_failure() -> None:
    sim = upgraded()
    # Instance 0 never becomes ready again, whatever it runs (node trouble, say).
    sim.world.disrupted.add(0)
    sim.tick()
    sim.request("rollback")
    finish(sim)
    run = sim.run
    assert run is not None
    assert run.code is RunningStatusCode.FAULTED
    assert run.error is not None
    assert run.error.code == ErrorCode.UPGRADED_UNHEALTHY.value
    assert run.failed == [0]
    assert run.failure_reasons["0"].startswith("HealthTimeout")
    # Started by a user: the failed instance is not sent back to the version being undone.
    assert run.rolling_back == run.rolled_back == []
    assert sim.world.tags()[0] == "1.0.0"
    # The fault is no verdict on 1.0.0: it is neither quarantined nor left as the model.
    assert sim.status.faulted_versions == ["1.1.0"]
    assert sim.status.current_image_version == "1.0.0"
    # Rolling back again carries the rollback on instead of undoing it.
    sim.world.disrupted.clear()
    sim.request("rollback")
    again = sim.step()
    assert again.status.upgrade_run is not None
    assert again.status.upgrade_run.rollback_of is not None
    assert again.status.upgrade_run.rollback_of.version == "1.1.0"
    assert again.status.upgrade_run.target.version == "1.0.0"
    finish(sim)
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.0.0") == list(range(10))


def test_rolling_back_a_run_in_progress_stops_it_after_its_batch_in_flight() -> None:
    sim = Sim(
        spec=spec_of(capacity=10, automatic=True, rolling=ROLLING),
        catalog=[version_entry("1.0.0")],
    )
    sim.settle()
    sim.publish(version_entry("1.1.0"))
    sim.run_until(lambda s: s.run is not None and s.run.batches_done == 1 and s.run.batch)
    in_flight = sim.run.batch.instance_ids if sim.run and sim.run.batch else []
    assert in_flight == [2, 3]
    # The batch in flight is not healthy yet when the rollback is asked for.
    sim.world.disrupted.update(in_flight)
    sim.world.kubelet(sim.now)
    sim.request("rollback")
    asked = sim.step()
    run = asked.status.upgrade_run
    assert run is not None
    assert run.code is RunningStatusCode.ROLLING_FORWARD
    assert run.rollback_requested_at is not None
    assert run.batch is not None
    assert "RollingUpgradeCancelling" in reasons(asked)
    # It settles on 1.1.0, then the run ends Cancelled; no new batch starts.
    sim.world.disrupted.clear()
    plans = sim.run_until(lambda s: s.code is RunningStatusCode.CANCELLED)
    assert [i for p in [asked, *plans] for i, _ in patched(p)] == []
    ended = plans[-1]
    assert ended.requeue_after is not None
    assert ended.requeue_after < 0.1
    assert sim.world.on("1.1.0") == [0, 1, 2, 3]
    assert sim.status.faulted_versions == []
    # The next pass starts the rollback, after history has recorded the cancelled run.
    start = sim.step()
    rollback = start.status.upgrade_run
    assert rollback is not None
    assert rollback.rollback_of is not None
    assert rollback.target.version == "1.0.0"
    assert rollback.rollback_requested_at is None
    assert [
        h.running_status.code for h in start.status.os_upgrade_history[:2] if h.running_status
    ] == [RunningStatusCode.ROLLING_FORWARD, RunningStatusCode.CANCELLED]
    assert start.status.faulted_versions == ["1.1.0"]
    finish(sim)
    assert sim.code is RunningStatusCode.COMPLETED
    assert sim.world.on("1.0.0") == list(range(10))
    assert sim.run is not None
    assert sorted(sim.run.succeeded) == [0, 1, 2, 3]


def test_rollback_without_any_run_is_refused() -> None:
    sim = Sim(spec=spec_of(capacity=3), catalog=[version_entry("1.0.0")])
    sim.settle()
    sim.request("rollback")
    plan = sim.step()
    assert plan.status.upgrade_run is None
    assert not plan.actions
    assert messages(plan, "RollbackRefused") == [
        "rollback refused: no OS upgrade has run on this scale set"
    ]
    assert plan.status.handled_requests == ["req-1"]


def test_rollback_when_every_instance_is_on_the_previous_image_is_refused() -> None:
    sim = upgraded()
    sim.request("rollback")
    finish(sim)
    before = sim.run
    sim.request("rollback")
    plan = sim.step()
    assert plan.status.upgrade_run == before
    assert not plan.actions
    assert messages(plan, "RollbackRefused") == [
        "rollback refused: every instance already runs 1.0.0, the image before the upgrade to 1.1.0"
    ]


def test_rollback_with_a_pinned_version_is_refused() -> None:
    sim = upgraded()
    sim.update_spec(spec_of(capacity=10, automatic=False, version="1.1.0", rolling=ROLLING))
    sim.request("rollback")
    plan = sim.step()
    assert messages(plan, "RollbackRefused") == [
        "rollback refused: imageReference.version pins 1.1.0: set it to the version wanted instead"
    ]
    assert plan.status.faulted_versions == []


def test_rollback_of_a_rollback_in_progress_is_refused() -> None:
    sim = upgraded()
    sim.request("rollback")
    sim.step()
    sim.request("rollback")
    plan = sim.step()
    assert messages(plan, "RollbackRefused") == [
        "rollback refused: a rollback of 1.1.0 is already running"
    ]
    assert plan.status.upgrade_run is not None
    assert plan.status.upgrade_run.last_action.value == "Start"
