"""The pure transition logic of the metrics: status after status, what gets recorded.

Imports no prometheus_client (the module under test must not need it): each step feeds the
digest the previous step returned, as OperatorMetrics does, and asserts the observations.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from scaleset_operator.metrics.labels import CAUSES, OUTCOMES
from scaleset_operator.metrics.observations import (
    CounterIncrement,
    HistogramObservation,
    Observation,
    SeriesAtZero,
)
from scaleset_operator.metrics.transitions import (
    Seen,
    event_observations,
    published_versions,
    transitions,
)
from scaleset_operator.models.status import (
    ApiError,
    Batch,
    ErrorCode,
    PendingUpgrade,
    ResolvedImage,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.actions import EmitEvent, EventReason
from scaleset_operator.planner.timefmt import stamp

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NS, NAME = "shop", "web"
FAMILY = "Canonical:ubuntu-24_04-lts:server"
OLD = ResolvedImage(
    publisher="Canonical",
    offer="ubuntu-24_04-lts",
    sku="server",
    version="1.0.0",
    container_image="registry.example/os:1.0.0",
)
NEW = OLD.model_copy(update={"version": "1.1.0", "container_image": "registry.example/os:1.1.0"})
PENDING = PendingUpgrade(version="1.1.0", detected_at=stamp(T0))

Recorded = tuple[str, str, dict[str, str], float]


def at(seconds: float) -> str:
    return stamp(T0 + timedelta(seconds=seconds))


def run(**changes: object) -> UpgradeRun:
    base = UpgradeRun(
        started_by=StartedBy.PLATFORM,
        start_time=at(10),
        target=NEW,
        previous=OLD,
        last_action_time=at(10),
    )
    return base.model_copy(update=changes)


def status(upgrade: UpgradeRun | None = None, **changes: object) -> ScaleSetStatus:
    return ScaleSetStatus(upgrade_run=upgrade).model_copy(update=changes)


def ours(**labels: str) -> dict[str, str]:
    return {"namespace": NS, "scaleset": NAME, **labels}


def of_version(version: str = "1.1.0", **labels: str) -> dict[str, str]:
    return {"image": FAMILY, "version": version, **labels}


def recorded(observations: Sequence[Observation]) -> list[Recorded]:
    """Increments and histogram samples in order; series created at zero are left out."""
    found: list[Recorded] = []
    for o in observations:
        if isinstance(o, CounterIncrement):
            found.append(("inc", o.metric, dict(o.labels), o.amount))
        elif isinstance(o, HistogramObservation):
            found.append(("observe", o.metric, dict(o.labels), o.value))
    return found


def at_zero(observations: Sequence[Observation]) -> list[tuple[str, dict[str, str]]]:
    return [(o.metric, dict(o.labels)) for o in observations if isinstance(o, SeriesAtZero)]


@dataclass
class Passes:
    """One scale set observed pass after pass, its digest carried along."""

    seen: Seen | None = None

    def observe(
        self, step: ScaleSetStatus, *, published: frozenset[str] = frozenset(), now: float = 0.0
    ) -> tuple[Observation, ...]:
        result = transitions(NS, NAME, self.seen, step, published=published, now=now)
        self.seen = result.seen
        return result.observations


def ended(outcome: str, seconds: float, version: str = "1.1.0") -> list[Recorded]:
    """What every ended run records, in this order."""
    return [
        ("inc", "scaleset_upgrades_total", ours(outcome=outcome), 1),
        ("inc", "scaleset_image_version_upgrades_total", of_version(version, outcome=outcome), 1),
        ("observe", "scaleset_upgrade_duration_seconds", ours(outcome=outcome), seconds),
        (
            "observe",
            "scaleset_image_version_upgrade_duration_seconds",
            of_version(version, outcome=outcome),
            seconds,
        ),
    ]


# --- the first observation ----------------------------------------------------------------------


def test_first_observation_only_creates_series_at_zero() -> None:
    # After an operator restart the faulted run in status is old news, not a new fault.
    faulted = run(
        code=RunningStatusCode.FAULTED,
        end_time=at(30),
        batches_done=1,
        failed=[0],
        rolled_back=[0],
        failure_reasons={"0": "ImagePullBackOff"},
    )
    passes = Passes()
    first = passes.observe(status(faulted))

    assert recorded(first) == []
    zero = at_zero(first)
    for outcome in OUTCOMES:
        assert ("scaleset_upgrades_total", ours(outcome=outcome)) in zero
        assert ("scaleset_upgrade_duration_seconds", ours(outcome=outcome)) in zero
        assert ("scaleset_image_version_upgrades_total", of_version(outcome=outcome)) in zero
    for cause in CAUSES:
        assert ("scaleset_rollbacks_total", ours(reason=cause)) in zero
        assert ("scaleset_instance_upgrade_failures_total", ours(cause=cause)) in zero
    for metric in (
        "scaleset_upgrade_batches_total",
        "scaleset_upgrade_batch_duration_seconds",
        "scaleset_publish_to_first_patch_seconds",
        "scaleset_reconcile_total",
        "scaleset_reconcile_duration_seconds",
    ):
        assert (metric, ours()) in zero
    assert ("scaleset_time_to_revert_seconds", of_version()) in zero
    # The scale set's series are created once; the version's on every pass with a run.
    again = passes.observe(status(faulted))
    assert recorded(again) == []
    assert {metric for metric, _ in at_zero(again)} == {
        "scaleset_image_version_upgrades_total",
        "scaleset_image_version_upgrade_duration_seconds",
        "scaleset_time_to_revert_seconds",
    }


def test_without_a_run_there_are_no_version_series() -> None:
    observations = Passes().observe(status())

    assert all("image" not in labels for _, labels in at_zero(observations))


# --- a run, pass by pass ------------------------------------------------------------------------


def test_run_started_records_the_publish_latency_of_its_first_patch() -> None:
    passes = Passes()
    passes.observe(status(pending_upgrade=PENDING))
    started = passes.observe(
        status(run(batch=Batch(number=1, instance_ids=[0], started_at=at(10))))
    )

    assert recorded(started) == [("observe", "scaleset_publish_to_first_patch_seconds", ours(), 10)]
    assert ("scaleset_upgrades_total", ours(outcome="completed")) not in at_zero(started)
    assert ("scaleset_time_to_revert_seconds", of_version()) in at_zero(started)


def test_version_noticed_and_patched_in_one_pass_has_zero_latency() -> None:
    passes = Passes()
    passes.observe(status())
    batch = Batch(number=1, instance_ids=[0], started_at=at(10))
    started = passes.observe(status(run(batch=batch)), published=frozenset({"1.1.0"}))

    assert recorded(started) == [("observe", "scaleset_publish_to_first_patch_seconds", ours(), 0)]


@pytest.mark.parametrize(
    ("before", "upgrade"),
    [
        # A user's start says nothing about how fast the platform reacts to a publish.
        (
            status(pending_upgrade=PENDING),
            run(
                started_by=StartedBy.USER,
                batch=Batch(number=1, instance_ids=[0], started_at=at(10)),
            ),
        ),
        # Its first batch was never seen, so there is nothing to time it by.
        (status(pending_upgrade=PENDING), run(batches_done=1, last_batch_end=at(40))),
        # Noticed before this process saw it: no detection time.
        (status(), run(batch=Batch(number=1, instance_ids=[0], started_at=at(10)))),
    ],
)
def test_runs_without_a_publish_latency(before: ScaleSetStatus, upgrade: UpgradeRun) -> None:
    passes = Passes()
    passes.observe(before)

    observed = recorded(passes.observe(status(upgrade)))
    assert "scaleset_publish_to_first_patch_seconds" not in {metric for _, metric, _, _ in observed}


def test_run_completed_batch_by_batch() -> None:
    passes = Passes()
    passes.observe(status(run(batch=Batch(number=1, instance_ids=[0, 1], started_at=at(10)))))
    second = run(
        batch=Batch(number=2, instance_ids=[2, 3], started_at=at(40)),
        batches_done=1,
        last_batch_end=at(40),
        succeeded=[0, 1],
    )
    assert recorded(passes.observe(status(second))) == [
        ("inc", "scaleset_upgrade_batches_total", ours(), 1),
        ("observe", "scaleset_upgrade_batch_duration_seconds", ours(), 30),
    ]
    done = run(
        code=RunningStatusCode.COMPLETED,
        end_time=at(70),
        batches_done=2,
        last_batch_end=at(70),
        succeeded=[0, 1, 2, 3],
    )
    assert recorded(passes.observe(status(done))) == [
        ("inc", "scaleset_upgrade_batches_total", ours(), 1),
        ("observe", "scaleset_upgrade_batch_duration_seconds", ours(), 30),
        *ended("completed", 60),
    ]
    # A later pass that changes nothing records nothing again.
    assert recorded(passes.observe(status(done))) == []


def test_completed_with_failed_instances_is_a_failed_change() -> None:
    passes = Passes()
    upgrade = run(started_by=StartedBy.USER, automatic_rollback=False)
    passes.observe(status(upgrade))
    done = upgrade.model_copy(
        update={
            "code": RunningStatusCode.COMPLETED,
            "end_time": at(100),
            "succeeded": [0, 1, 2],
            "failed": [3],
            "failure_reasons": {"3": "HealthTimeout (NotReady)"},
            "batches_done": 4,
        }
    )

    # Batches that started and ended between two observations are counted, not timed.
    assert recorded(passes.observe(status(done))) == [
        ("inc", "scaleset_upgrade_batches_total", ours(), 4),
        *ended("completed_with_failures", 90),
    ]


def test_run_faulted_after_rolling_back_a_bad_instance() -> None:
    batch = Batch(number=1, instance_ids=[0], started_at=at(10))
    reasons = {"0": "ImagePullBackOff"}
    passes = Passes()
    passes.observe(status(run(batch=batch)), now=1000)

    failing = run(batch=batch, failed=[0], rolling_back=[0], failure_reasons=reasons)
    assert recorded(passes.observe(status(failing), now=1005)) == [
        ("inc", "scaleset_rollbacks_total", ours(reason="ImagePullBackOff"), 1)
    ]
    assert recorded(passes.observe(status(failing), now=1010)) == []
    faulted = run(
        code=RunningStatusCode.FAULTED,
        end_time=at(30),
        batches_done=1,
        last_batch_end=at(30),
        failed=[0],
        rolled_back=[0],
        failure_reasons=reasons,
    )
    # A faulted run quarantines its version (status.faultedVersions): a failed change of it.
    quarantined = status(faulted, faulted_versions=["1.1.0"])
    assert recorded(passes.observe(quarantined, now=1017)) == [
        ("inc", "scaleset_upgrade_batches_total", ours(), 1),
        ("observe", "scaleset_upgrade_batch_duration_seconds", ours(), 20),
        ("observe", "scaleset_time_to_revert_seconds", of_version(), 12),
        *ended("faulted", 20),
    ]


def test_failed_rollback_is_counted_but_not_timed() -> None:
    batch = Batch(number=1, instance_ids=[0], started_at=at(10))
    reasons = {"0": "HealthTimeout (NotReady)"}
    passes = Passes()
    passes.observe(status(run(batch=batch)))
    passes.observe(
        status(run(batch=batch, failed=[0], rolling_back=[0], failure_reasons=reasons)), now=5
    )
    stuck = run(batch=batch, failed=[0], rollback_failed=[0], failure_reasons=reasons)

    assert recorded(passes.observe(status(stuck), now=9)) == []
    assert passes.seen is not None
    assert passes.seen.revert_started == {}


def test_run_cancelled_between_observations_counts_once() -> None:
    passes = Passes()
    passes.observe(status())
    cancelled = run(code=RunningStatusCode.CANCELLED, end_time=at(50), last_action="Cancel")

    assert recorded(passes.observe(status(cancelled))) == ended("cancelled", 40)
    assert recorded(passes.observe(status(cancelled))) == []


def test_refused_start_is_no_failed_change_and_quarantines_nothing() -> None:
    gate = ApiError(code=ErrorCode.UNHEALTHY_BEFORE.value, message="2 of 4 instances unhealthy")
    passes = Passes()
    passes.observe(status(pending_upgrade=PENDING))
    refused = run(code=RunningStatusCode.FAULTED, end_time=at(10), error=gate)
    assert recorded(passes.observe(status(refused, pending_upgrade=PENDING))) == ended("refused", 0)
    # The platform tries again later: a second refusal is a second ended run.
    again = run(code=RunningStatusCode.FAULTED, start_time=at(20), end_time=at(20), error=gate)
    assert recorded(passes.observe(status(again))) == ended("refused", 0)


def test_run_that_faults_before_any_patch_is_a_failed_change_without_latency() -> None:
    passes = Passes()
    passes.observe(status(pending_upgrade=PENDING))
    faulted = run(code=RunningStatusCode.FAULTED, end_time=at(10))

    assert recorded(passes.observe(status(faulted, faulted_versions=["1.1.0"]))) == ended(
        "faulted", 0
    )


def test_retargeted_run_counts_under_its_final_version() -> None:
    newest = NEW.model_copy(update={"version": "1.2.0", "container_image": "os:1.2.0"})
    passes = Passes()
    passes.observe(status(run()))
    done = run(target=newest, code=RunningStatusCode.COMPLETED, end_time=at(90))
    observations = passes.observe(status(done))

    assert recorded(observations) == ended("completed", 80, version="1.2.0")
    assert ("scaleset_time_to_revert_seconds", of_version("1.2.0")) in at_zero(observations)


# --- events -------------------------------------------------------------------------------------


def test_events_are_counted_by_reason_and_failures_by_cause() -> None:
    urn = NEW.urn
    failed_on = f"instance 0 unhealthy on {urn}: ErrImagePull"
    events = [
        EmitEvent("Normal", EventReason.BATCH_STARTED, f"batch 1/2: instances 0, 1 -> {urn}"),
        EmitEvent("Warning", EventReason.INSTANCE_UPGRADE_FAILED, failed_on, cause="ErrImagePull"),
        EmitEvent("Warning", EventReason.INSTANCE_UPGRADE_FAILED, "instance 2 failed"),
        EmitEvent("Normal", EventReason.QUARANTINE_CLEARED, "version 1.1.0 may be picked again"),
    ]
    failed = ("Warning", "InstanceUpgradeFailed")

    assert recorded(event_observations(NS, NAME, events)) == [
        ("inc", "scaleset_events_total", ours(type="Normal", reason="BatchStarted"), 1),
        ("inc", "scaleset_events_total", ours(type=failed[0], reason=failed[1]), 1),
        ("inc", "scaleset_instance_upgrade_failures_total", ours(cause="ErrImagePull"), 1),
        ("inc", "scaleset_events_total", ours(type=failed[0], reason=failed[1]), 1),
        ("inc", "scaleset_instance_upgrade_failures_total", ours(cause="Other"), 1),
        ("inc", "scaleset_events_total", ours(type="Normal", reason="QuarantineCleared"), 1),
    ]


def test_published_versions_come_from_new_image_version_events_only() -> None:
    events = [
        EmitEvent(
            "Normal", EventReason.NEW_IMAGE_VERSION, "version 1.1.0 published", version="1.1.0"
        ),
        EmitEvent("Normal", EventReason.ROLLING_UPGRADE_STARTED, "to 9.9.9", version="9.9.9"),
        EmitEvent("Normal", EventReason.NEW_IMAGE_VERSION, "no version carried"),
    ]

    assert published_versions(events) == frozenset({"1.1.0"})


# --- purity -------------------------------------------------------------------------------------


def test_the_transition_logic_imports_without_prometheus_client() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "import scaleset_operator.metrics.transitions, scaleset_operator.metrics.snapshot"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
