"""OperatorMetrics: scrape-time state gauges, counters from status transitions and events.

Every test builds its own CollectorRegistry; statuses are written out step by step the way the
planner leaves them after each pass.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scaleset_operator.metrics import (
    CAUSES,
    OUTCOMES,
    OperatorMetrics,
    cause_of,
    operator_registry,
    outcome_of,
)
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import (
    ApiError,
    Batch,
    Condition,
    ErrorCode,
    PendingUpgrade,
    Progress,
    ResolvedImage,
    RollingRunningStatus,
    RollingUpgradeStatus,
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
ROLLING = RunningStatusCode.ROLLING_FORWARD

NORMAL, WARNING = "Normal", "Warning"
PUBLISHED = "version 1.1.0 published; upgrade scheduled"


def at(seconds: float) -> str:
    return stamp(T0 + timedelta(seconds=seconds))


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(registry: CollectorRegistry, clock: FakeClock) -> OperatorMetrics:
    return OperatorMetrics(registry, clock=clock, version="1.2.3")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def ours(**labels: str) -> dict[str, str]:
    return {"namespace": NS, "scaleset": NAME, **labels}


def instance(iid: int, image: ResolvedImage = OLD, *, deleting: bool = False) -> Instance:
    return Instance(
        instance_id=iid,
        name=f"{NAME}-{iid}",
        os_image=image.container_image,
        image_urn=image.urn,
        deleting=deleting,
    )


def run(**changes: object) -> UpgradeRun:
    base = UpgradeRun(
        started_by=StartedBy.PLATFORM,
        start_time=at(10),
        target=NEW,
        previous=OLD,
        last_action_time=at(10),
    )
    return base.model_copy(update=changes)


def status(
    upgrade: UpgradeRun | None = None,
    *,
    progress: tuple[int, int, int, int] = (0, 0, 0, 0),
    pending: PendingUpgrade | None = None,
    ready: int = 4,
    latest: int = 4,
    conditions: tuple[tuple[str, str], ...] = (),
) -> ScaleSetStatus:
    rolling = None
    if upgrade is not None:
        rolling = RollingUpgradeStatus(
            running_status=RollingRunningStatus(code=upgrade.code, start_time=upgrade.start_time),
            progress=Progress(
                successful_instance_count=progress[0],
                failed_instance_count=progress[1],
                in_progress_instance_count=progress[2],
                pending_instance_count=progress[3],
            ),
        )
    return ScaleSetStatus(
        capacity=4,
        ready_instances=ready,
        latest_model_instances=latest,
        model_image=upgrade.target if upgrade is not None else OLD,
        upgrade_run=upgrade,
        rolling_upgrade=rolling,
        pending_upgrade=pending,
        conditions=[
            Condition(type=t, status=s, reason="Test", last_transition_time=at(0))
            for t, s in conditions
        ],
    )


FOUR_OLD = [instance(i) for i in range(4)]


# --- state gauges -------------------------------------------------------------------------------


def test_state_gauges_without_an_upgrade(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    instances = [*FOUR_OLD[:3], instance(3, NEW), instance(4, deleting=True)]
    metrics.observe(
        NS,
        NAME,
        status(ready=3, latest=3, conditions=(("Ready", "False"), ("Upgrading", "False"))),
        instances,
        capacity=5,
    )

    assert value(registry, "scaleset_capacity", **ours()) == 5
    assert value(registry, "scaleset_instances", **ours()) == 4
    assert value(registry, "scaleset_instances_ready", **ours()) == 3
    assert value(registry, "scaleset_instances_latest_model", **ours()) == 3
    by_version = "scaleset_instances_by_image_version"
    assert value(registry, by_version, **ours(image=FAMILY, version="1.0.0")) == 3
    assert value(registry, by_version, **ours(image=FAMILY, version="1.1.0")) == 1
    assert value(registry, "scaleset_model_image_info", **ours(image=FAMILY, version="1.0.0")) == 1
    condition = "scaleset_status_condition"
    assert value(registry, condition, **ours(condition="Ready", status="false")) == 1
    assert value(registry, condition, **ours(condition="Ready", status="true")) == 0
    assert value(registry, condition, **ours(condition="Ready", status="unknown")) == 0
    # No upgrade ever ran: no upgrade series at all rather than zeros that look like one.
    assert value(registry, "scaleset_upgrade_instances", **ours(state="pending")) is None
    assert value(registry, "scaleset_upgrade_running_status", **ours(code="Completed")) is None


def test_instances_without_an_image_annotation_count_as_unknown(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    bare = Instance(instance_id=0, name=f"{NAME}-0", os_image="registry.example/os:1.0.0")
    metrics.observe(NS, NAME, status(), [bare], capacity=1)

    labels = ours(image="", version="unknown")
    assert value(registry, "scaleset_instances_by_image_version", **labels) == 1


def test_running_upgrade_gauges(metrics: OperatorMetrics, registry: CollectorRegistry) -> None:
    batch = Batch(number=2, instance_ids=[2], started_at=at(40))
    upgrade = run(batch=batch, batches_done=1, succeeded=[0, 1], last_batch_end=at(40))
    metrics.observe(NS, NAME, status(upgrade, progress=(2, 0, 1, 1)), FOUR_OLD, capacity=4)

    for state, expected in {
        "successful": 2,
        "failed": 0,
        "in_progress": 1,
        "pending": 1,
    }.items():
        assert value(registry, "scaleset_upgrade_instances", **ours(state=state)) == expected
    codes = {
        c.value: value(registry, "scaleset_upgrade_running_status", **ours(code=c.value))
        for c in RunningStatusCode
    }
    assert codes == {"RollingForward": 1, "Cancelled": 0, "Completed": 0, "Faulted": 0}
    target = ours(image=FAMILY, version="1.1.0", started_by="Platform")
    assert value(registry, "scaleset_upgrade_target_info", **target) == 1
    start = (T0 + timedelta(seconds=10)).timestamp()
    assert value(registry, "scaleset_upgrade_start_timestamp_seconds", **ours()) == start
    last = (T0 + timedelta(seconds=40)).timestamp()
    assert value(registry, "scaleset_upgrade_last_progress_timestamp_seconds", **ours()) == last
    assert value(registry, "scaleset_upgrade_pause_between_batches_seconds", **ours()) == 0


def test_pending_upgrade_is_shown_until_the_run_starts(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    pending = PendingUpgrade(version="1.1.0", detected_at=at(0))
    metrics.observe(NS, NAME, status(pending=pending), FOUR_OLD, capacity=4)
    assert value(registry, "scaleset_pending_upgrade_info", **ours(version="1.1.0")) == 1

    metrics.observe(
        NS,
        NAME,
        status(run(batch=Batch(number=1, instance_ids=[0], started_at=at(10)))),
        FOUR_OLD,
        capacity=4,
    )
    assert value(registry, "scaleset_pending_upgrade_info", **ours(version="1.1.0")) is None


# --- an automatic upgrade, pass by pass ---------------------------------------------------------


def test_automatic_upgrade_from_publish_to_completion(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    pending = PendingUpgrade(version="1.1.0", detected_at=at(0))
    steps = [
        # The operator notices 1.1.0 and waits out the automatic upgrade delay.
        status(pending=pending),
        # Delay over: the run starts and its first batch is patched in the same pass.
        status(run(batch=Batch(number=1, instance_ids=[0, 1], started_at=at(10)))),
        # Batch 1 healthy at 40 s; batch 2 starts in the same pass.
        status(
            run(
                batch=Batch(number=2, instance_ids=[2, 3], started_at=at(40)),
                batches_done=1,
                last_batch_end=at(40),
                succeeded=[0, 1],
            )
        ),
        # Batch 2 healthy at 70 s: nothing left, the run completes.
        status(
            run(
                code=RunningStatusCode.COMPLETED,
                end_time=at(70),
                batches_done=2,
                last_batch_end=at(70),
                succeeded=[0, 1, 2, 3],
            )
        ),
    ]
    for step in steps:
        metrics.observe(NS, NAME, step, FOUR_OLD, capacity=4)
    # A later pass that changes nothing counts nothing again.
    metrics.observe(NS, NAME, steps[-1], FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_publish_to_first_patch_seconds_count", **ours()) == 1
    assert value(registry, "scaleset_publish_to_first_patch_seconds_sum", **ours()) == 10
    assert value(registry, "scaleset_upgrade_batches_total", **ours()) == 2
    assert value(registry, "scaleset_upgrade_batch_duration_seconds_count", **ours()) == 2
    assert value(registry, "scaleset_upgrade_batch_duration_seconds_sum", **ours()) == 60
    assert value(registry, "scaleset_upgrades_total", **ours(outcome="completed")) == 1
    assert value(registry, "scaleset_upgrades_total", **ours(outcome="faulted")) == 0
    duration = ours(outcome="completed")
    assert value(registry, "scaleset_upgrade_duration_seconds_sum", **duration) == 60
    assert value(registry, "scaleset_upgrade_duration_seconds_bucket", **duration, le="60.0") == 1
    assert value(registry, "scaleset_upgrade_duration_seconds_bucket", **duration, le="30.0") == 0
    per_version = {"image": FAMILY, "version": "1.1.0", "outcome": "completed"}
    assert value(registry, "scaleset_image_version_upgrades_total", **per_version) == 1
    assert (
        value(registry, "scaleset_image_version_upgrade_duration_seconds_sum", **per_version) == 60
    )


def test_bad_image_rolls_back_and_faults(
    metrics: OperatorMetrics, registry: CollectorRegistry, clock: FakeClock
) -> None:
    batch = Batch(number=1, instance_ids=[0], started_at=at(10))
    reasons = {"0": "ImagePullBackOff"}
    metrics.observe(NS, NAME, status(run(batch=batch)), FOUR_OLD, capacity=4)

    clock.now += 5  # fail-fast: the pull error shows at once, the rollback starts
    failing = run(batch=batch, failed=[0], rolling_back=[0], failure_reasons=reasons)
    metrics.observe(NS, NAME, status(failing, progress=(0, 1, 1, 3)), FOUR_OLD, capacity=4)
    # Replaying the same state (a later pass with nothing new) counts the rollback once.
    metrics.observe(NS, NAME, status(failing, progress=(0, 1, 1, 3)), FOUR_OLD, capacity=4)

    clock.now += 12  # healthy on 1.0.0 again; 1 of 1 upgraded failed: above 20 %, faulted
    faulted = run(
        code=RunningStatusCode.FAULTED,
        end_time=at(30),
        batches_done=1,
        last_batch_end=at(30),
        failed=[0],
        rolled_back=[0],
        failure_reasons=reasons,
    )
    metrics.observe(NS, NAME, status(faulted, progress=(0, 1, 0, 0)), FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_rollbacks_total", **ours(reason="ImagePullBackOff")) == 1
    assert value(registry, "scaleset_rollbacks_total", **ours(reason="HealthTimeout")) == 0
    revert = {"image": FAMILY, "version": "1.1.0"}
    assert value(registry, "scaleset_time_to_revert_seconds_count", **revert) == 1
    assert value(registry, "scaleset_time_to_revert_seconds_sum", **revert) == 12
    assert value(registry, "scaleset_upgrades_total", **ours(outcome="faulted")) == 1
    assert value(registry, "scaleset_upgrade_duration_seconds_sum", **ours(outcome="faulted")) == 20
    assert value(registry, "scaleset_upgrade_batch_duration_seconds_sum", **ours()) == 20
    per_version = {"image": FAMILY, "version": "1.1.0", "outcome": "faulted"}
    assert value(registry, "scaleset_image_version_upgrades_total", **per_version) == 1
    # The other outcomes of the version exist at zero from the run's start, for increase().
    clean = {**per_version, "outcome": "completed"}
    assert value(registry, "scaleset_image_version_upgrades_total", **clean) == 0
    code = "scaleset_upgrade_running_status"
    assert value(registry, code, **ours(code="Faulted")) == 1
    assert value(registry, code, **ours(code="RollingForward")) == 0
    rollback = "scaleset_upgrade_rollback_instances"
    assert value(registry, rollback, **ours(state="rolled_back")) == 1
    assert value(registry, rollback, **ours(state="failed")) == 0


def test_failed_rollback_is_counted_but_not_timed(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    batch = Batch(number=1, instance_ids=[0], started_at=at(10))
    reasons = {"0": "HealthTimeout (NotReady)"}
    metrics.observe(NS, NAME, status(run(batch=batch)), FOUR_OLD, capacity=4)
    failing = run(batch=batch, failed=[0], rolling_back=[0], failure_reasons=reasons)
    metrics.observe(NS, NAME, status(failing), FOUR_OLD, capacity=4)
    stuck = run(batch=batch, failed=[0], rollback_failed=[0], failure_reasons=reasons)
    metrics.observe(NS, NAME, status(stuck), FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_rollbacks_total", **ours(reason="HealthTimeout")) == 1
    revert = {"image": FAMILY, "version": "1.1.0"}
    assert value(registry, "scaleset_time_to_revert_seconds_count", **revert) == 0


def test_completed_with_failed_instances_is_a_failed_change(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    # A user-started run never rolls back; one failure stays within the 20 % budget.
    upgrade = run(started_by=StartedBy.USER, automatic_rollback=False)
    metrics.observe(NS, NAME, status(upgrade), FOUR_OLD, capacity=4)
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
    metrics.observe(NS, NAME, status(done), FOUR_OLD, capacity=4)

    outcome = "completed_with_failures"
    assert value(registry, "scaleset_upgrades_total", **ours(outcome=outcome)) == 1
    assert value(registry, "scaleset_upgrades_total", **ours(outcome="completed")) == 0
    assert (
        sum(value(registry, "scaleset_rollbacks_total", **ours(reason=c)) or 0 for c in CAUSES) == 0
    )
    # Batches that started and ended between two observations are counted, not timed.
    assert value(registry, "scaleset_upgrade_batches_total", **ours()) == 4
    assert value(registry, "scaleset_upgrade_batch_duration_seconds_count", **ours()) == 0


def test_version_noticed_and_patched_in_one_pass(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    # With a delay under a second the pass that notices 1.1.0 also starts the run; the
    # NewImageVersion event of that pass tells when it was noticed.
    metrics.observe(NS, NAME, status(), FOUR_OLD, capacity=4)
    metrics.record_events(
        NS,
        NAME,
        [
            EmitEvent(NORMAL, EventReason.NEW_IMAGE_VERSION, PUBLISHED, version="1.1.0"),
            EmitEvent(NORMAL, EventReason.ROLLING_UPGRADE_STARTED, f"OS upgrade to {NEW.urn}"),
        ],
    )
    batch = Batch(number=1, instance_ids=[0], started_at=at(10))
    metrics.observe(NS, NAME, status(run(batch=batch)), FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_publish_to_first_patch_seconds_count", **ours()) == 1
    assert value(registry, "scaleset_publish_to_first_patch_seconds_sum", **ours()) == 0


def test_an_event_of_an_earlier_pass_is_no_detection_time(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    metrics.observe(NS, NAME, status(), FOUR_OLD, capacity=4)
    event = EmitEvent(NORMAL, EventReason.NEW_IMAGE_VERSION, PUBLISHED, version="1.1.0")
    metrics.record_events(NS, NAME, [event])
    metrics.observe(NS, NAME, status(), FOUR_OLD, capacity=4)
    batch = Batch(number=1, instance_ids=[0], started_at=at(10))
    metrics.observe(NS, NAME, status(run(batch=batch)), FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_publish_to_first_patch_seconds_count", **ours()) == 0


def test_user_started_run_has_no_publish_latency(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    pending = PendingUpgrade(version="1.1.0", detected_at=at(0))
    metrics.observe(NS, NAME, status(pending=pending), FOUR_OLD, capacity=4)
    batch = Batch(number=1, instance_ids=[0], started_at=at(10))
    manual = run(started_by=StartedBy.USER, automatic_rollback=False, batch=batch)
    metrics.observe(NS, NAME, status(manual), FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_publish_to_first_patch_seconds_count", **ours()) == 0


def test_run_that_faults_before_any_patch_has_no_publish_latency(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    pending = PendingUpgrade(version="1.1.0", detected_at=at(0))
    metrics.observe(NS, NAME, status(pending=pending), FOUR_OLD, capacity=4)
    refused = run(code=RunningStatusCode.FAULTED, end_time=at(10))
    metrics.observe(NS, NAME, status(refused), FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_publish_to_first_patch_seconds_count", **ours()) == 0
    assert value(registry, "scaleset_upgrades_total", **ours(outcome="faulted")) == 1
    assert value(registry, "scaleset_upgrade_duration_seconds_sum", **ours(outcome="faulted")) == 0


def test_a_start_refused_at_the_pre_start_gate_is_no_failed_change(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    metrics.observe(NS, NAME, status(), FOUR_OLD, capacity=4)
    gate = ApiError(code=ErrorCode.UNHEALTHY_BEFORE.value, message="2 of 4 instances unhealthy")
    refused = run(code=RunningStatusCode.FAULTED, end_time=at(10), error=gate)
    metrics.observe(NS, NAME, status(refused), FOUR_OLD, capacity=4)
    # The platform tries again later: a second refusal is a second ended run.
    again = run(code=RunningStatusCode.FAULTED, start_time=at(20), end_time=at(20), error=gate)
    metrics.observe(NS, NAME, status(again), FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_upgrades_total", **ours(outcome="refused")) == 2
    assert value(registry, "scaleset_upgrades_total", **ours(outcome="faulted")) == 0
    per_version = "scaleset_image_version_upgrades_total"
    assert value(registry, per_version, image=FAMILY, version="1.1.0", outcome="refused") == 2
    assert value(registry, per_version, image=FAMILY, version="1.1.0", outcome="faulted") == 0


def test_run_started_and_ended_between_observations_counts_once(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    metrics.observe(NS, NAME, status(), FOUR_OLD, capacity=4)
    cancelled = run(code=RunningStatusCode.CANCELLED, end_time=at(50), last_action="Cancel")
    metrics.observe(NS, NAME, status(cancelled), FOUR_OLD, capacity=4)
    metrics.observe(NS, NAME, status(cancelled), FOUR_OLD, capacity=4)

    assert value(registry, "scaleset_upgrades_total", **ours(outcome="cancelled")) == 1


def test_first_observation_is_only_a_baseline(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    # After an operator restart the faulted run in status is old news, not a new fault.
    faulted = run(
        code=RunningStatusCode.FAULTED,
        end_time=at(30),
        batches_done=1,
        failed=[0],
        rolled_back=[0],
        failure_reasons={"0": "ImagePullBackOff"},
    )
    metrics.observe(NS, NAME, status(faulted), FOUR_OLD, capacity=4)
    metrics.observe(NS, NAME, status(faulted), FOUR_OLD, capacity=4)

    # Counters exist at zero from the first observation, so a first increment shows in rate().
    for outcome in OUTCOMES:
        assert value(registry, "scaleset_upgrades_total", **ours(outcome=outcome)) == 0
    for cause in CAUSES:
        assert value(registry, "scaleset_rollbacks_total", **ours(reason=cause)) == 0
    assert value(registry, "scaleset_upgrade_batches_total", **ours()) == 0


def test_retargeted_run_counts_under_its_final_version(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    newest = NEW.model_copy(update={"version": "1.2.0", "container_image": "os:1.2.0"})
    metrics.observe(NS, NAME, status(run()), FOUR_OLD, capacity=4)
    done = run(target=newest, code=RunningStatusCode.COMPLETED, end_time=at(90))
    metrics.observe(NS, NAME, status(done), FOUR_OLD, capacity=4)

    labels = {"image": FAMILY, "version": "1.2.0", "outcome": "completed"}
    assert value(registry, "scaleset_image_version_upgrades_total", **labels) == 1


# --- events and reconciles ----------------------------------------------------------------------


def test_events_are_counted_by_reason_and_failures_by_cause(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    urn = NEW.urn
    events = [
        EmitEvent(NORMAL, EventReason.BATCH_STARTED, f"batch 1/2: instances 0, 1 -> {urn}"),
        EmitEvent(
            WARNING,
            EventReason.INSTANCE_UPGRADE_FAILED,
            f"instance 0 unhealthy on {urn}: ErrImagePull",
            cause="ErrImagePull",
        ),
        EmitEvent(
            WARNING,
            EventReason.INSTANCE_UPGRADE_FAILED,
            f"instance 1 unhealthy on {urn}: HealthTimeout (NotReady)",
            cause="HealthTimeout (NotReady)",
        ),
        EmitEvent(WARNING, EventReason.INSTANCE_UPGRADE_FAILED, "instance 2 failed"),
        EmitEvent(WARNING, EventReason.INSTANCE_ROLLING_BACK, "instance 0 goes back to os:1.0.0"),
    ]
    metrics.record_events(NS, NAME, events)

    counted = "scaleset_events_total"
    assert value(registry, counted, **ours(type="Normal", reason="BatchStarted")) == 1
    assert value(registry, counted, **ours(type="Warning", reason="InstanceUpgradeFailed")) == 3
    failures = "scaleset_instance_upgrade_failures_total"
    assert value(registry, failures, **ours(cause="ErrImagePull")) == 1
    assert value(registry, failures, **ours(cause="HealthTimeout")) == 1
    assert value(registry, failures, **ours(cause="Other")) == 1


def test_reconcile_timer_counts_passes_and_errors(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    with metrics.reconcile_timer(NS, NAME):
        pass

    class ConflictError(Exception):
        pass

    with pytest.raises(ConflictError), metrics.reconcile_timer(NS, NAME):
        raise ConflictError

    assert value(registry, "scaleset_reconcile_total", **ours()) == 2
    assert value(registry, "scaleset_reconcile_errors_total", **ours(error="ConflictError")) == 1
    assert value(registry, "scaleset_reconcile_duration_seconds_count", **ours()) == 2


def test_forget_drops_the_scale_set_but_keeps_version_totals(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    metrics.observe(NS, NAME, status(run()), FOUR_OLD, capacity=4)
    metrics.observe(
        NS,
        NAME,
        status(run(code=RunningStatusCode.COMPLETED, end_time=at(20))),
        FOUR_OLD,
        capacity=4,
    )
    metrics.observe(NS, "other", status(), FOUR_OLD, capacity=4)
    with metrics.reconcile_timer(NS, NAME):
        pass

    metrics.forget(NS, NAME)

    assert value(registry, "scaleset_instances", **ours()) is None
    assert value(registry, "scaleset_upgrade_running_status", **ours(code="Completed")) is None
    assert value(registry, "scaleset_upgrades_total", **ours(outcome="completed")) is None
    assert value(registry, "scaleset_reconcile_total", **ours()) is None
    assert value(registry, "scaleset_instances", namespace=NS, scaleset="other") == 4
    labels = {"image": FAMILY, "version": "1.1.0", "outcome": "completed"}
    assert value(registry, "scaleset_image_version_upgrades_total", **labels) == 1


def test_build_info(metrics: OperatorMetrics, registry: CollectorRegistry) -> None:
    labels = {"version": "1.2.3", "python": platform.python_version()}
    assert value(registry, "scaleset_operator_build_info", **labels) == 1


# --- the exposition as a whole ------------------------------------------------------------------


def families(registry: CollectorRegistry) -> Iterator[tuple[str, dict[str, str]]]:
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels


def test_exposition_follows_the_naming_conventions(
    metrics: OperatorMetrics, registry: CollectorRegistry
) -> None:
    metrics.observe(
        NS,
        NAME,
        status(run(batch=Batch(number=1, instance_ids=[0], started_at=at(10)))),
        FOUR_OLD,
        capacity=4,
    )
    with metrics.reconcile_timer(NS, NAME):
        pass

    text = generate_latest(registry).decode()
    parsed = list(text_string_to_metric_families(text))
    assert parsed
    for family in parsed:
        assert family.name.startswith("scaleset_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
    # No per-pod (per-instance) labels: cardinality follows scale sets and versions only.
    for _, labels in families(registry):
        assert not {"pod", "instance_id", "instance"} & set(labels)


def test_each_registry_is_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    OperatorMetrics(first).observe(NS, NAME, status(), FOUR_OLD, capacity=4)
    OperatorMetrics(second)

    assert first.get_sample_value("scaleset_instances", ours()) == 4
    assert second.get_sample_value("scaleset_instances", ours()) is None


def test_operator_registry_has_process_metrics() -> None:
    registry = operator_registry()
    OperatorMetrics(registry)
    names = {name for name, _ in families(registry)}
    assert "python_info" in names
    assert "scaleset_operator_build_info" in names


# --- small pure helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("ImagePullBackOff", "ImagePullBackOff"),
        ("CrashLoopBackOff", "CrashLoopBackOff"),
        ("HealthTimeout (ContainerStillOnPreviousImage)", "HealthTimeout"),
        ("PodFailed", "PodFailed"),
        ("SomethingNew", "Other"),
        ("", "Other"),
        (None, "Other"),
    ],
)
def test_cause_of(reason: str | None, cause: str) -> None:
    assert cause_of(reason) == cause


@pytest.mark.parametrize(
    ("code", "failed", "outcome"),
    [
        (RunningStatusCode.ROLLING_FORWARD, [], None),
        (RunningStatusCode.COMPLETED, [], "completed"),
        (RunningStatusCode.COMPLETED, [2], "completed_with_failures"),
        (RunningStatusCode.FAULTED, [2], "faulted"),
        (RunningStatusCode.CANCELLED, [], "cancelled"),
    ],
)
def test_outcome_of(code: RunningStatusCode, failed: list[int], outcome: str | None) -> None:
    assert outcome_of(run(code=code, failed=failed)) == outcome
