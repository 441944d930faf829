"""Prometheus metrics of scale sets and of the operator itself.

State (instance counts, running status, versions in use) is produced at scrape time from the
latest snapshot of each scale set; counters and histograms come from comparing a snapshot with
the one before it, and from the planner's events. Nothing here talks to the Kubernetes API.

The controller calls `record_events()` and then `observe()` after a pass's status has been
persisted, so a pass that is retried after a conflict is counted once.
"""

from __future__ import annotations

import platform
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from scaleset_operator.models.durations import DurationError, parse_duration
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import (
    PendingUpgrade,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.actions import EmitEvent
from scaleset_operator.planner.health import FAIL_FAST_REASONS
from scaleset_operator.planner.refusal import is_refusal
from scaleset_operator.planner.timefmt import parse_stamp

__all__ = [
    "CAUSES",
    "OUTCOMES",
    "OperatorMetrics",
    "operator_registry",
    "serve",
]

# Outcomes of an OS upgrade run. Azure reports a run whose failed instances stayed within the
# budget as Completed with RollingUpgradeInProgressWithFailedUpgradedVMs; for change failure
# rate that run is a failed change, so it gets an outcome of its own. A start refused at the
# pre-start gate is Faulted in Azure's terms but changed nothing: it is no failed change
# either, and gets an outcome of its own too.
COMPLETED = "completed"
COMPLETED_WITH_FAILURES = "completed_with_failures"
FAULTED = "faulted"
CANCELLED = "cancelled"
REFUSED = "refused"
OUTCOMES = (COMPLETED, COMPLETED_WITH_FAILURES, FAULTED, CANCELLED, REFUSED)

# Why an upgraded instance failed: the planner fails an instance either at the end of the
# health window or at once on a fail-fast reason. Anything else is grouped, which keeps the
# label's values a closed set.
HEALTH_TIMEOUT = "HealthTimeout"
OTHER_CAUSE = "Other"
CAUSES = (HEALTH_TIMEOUT, "PodFailed", *sorted(FAIL_FAST_REASONS), OTHER_CAUSE)

PROGRESS_STATES = ("successful", "failed", "in_progress", "pending")
ROLLBACK_STATES = ("rolled_back", "failed", "in_progress")
CONDITION_STATUSES = ("true", "false", "unknown")

_SCALESET = ("namespace", "scaleset")
_VERSION = ("image", "version")

# Stamps in status have a precision of one second; the buckets start there. Azure waits up to
# three hours before the first automatic upgrade, hence the long tail of the publish latency.
UPGRADE_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
BATCH_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)
PUBLISH_BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600)
REVERT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def operator_registry() -> CollectorRegistry:
    """A fresh registry with the process, platform and garbage-collector metrics added."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def serve(registry: CollectorRegistry, *, port: int, address: str = "0.0.0.0") -> None:
    """Serve `/metrics` of the registry from a daemon thread."""
    start_http_server(port, addr=address, registry=registry)


_NEW_VERSION = re.compile(r"^version (\S+) published")


def cause_of(reason: str | None) -> str:
    """The cause label of a failure reason such as `HealthTimeout (NotReady)`."""
    token = (reason or "").split(" ", 1)[0].strip()
    return token if token in CAUSES else OTHER_CAUSE


def outcome_of(run: UpgradeRun) -> str | None:
    """None while the run is still rolling forward."""
    if is_refusal(run):
        return REFUSED
    if run.code is RunningStatusCode.FAULTED:
        return FAULTED
    if run.code is RunningStatusCode.CANCELLED:
        return CANCELLED
    if run.code is RunningStatusCode.COMPLETED:
        return COMPLETED_WITH_FAILURES if run.failed else COMPLETED
    return None


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    seconds = (parse_stamp(end) - parse_stamp(start)).total_seconds()
    return seconds if seconds >= 0 else None


def _unix(stamp: str | None) -> float | None:
    return parse_stamp(stamp).timestamp() if stamp else None


def _split_urn(urn: str | None) -> tuple[str, str]:
    """`publisher:offer:sku:version` (or `gallery/image:version`) -> (image, version)."""
    if not urn or ":" not in urn:
        return ("", "unknown")
    image, version = urn.rsplit(":", 1)
    return (image, version)


# --- what a scrape reports ----------------------------------------------------------------------


@dataclass(frozen=True)
class _RunView:
    code: str
    image: str
    version: str
    started_by: str
    progress: tuple[int, int, int, int]
    rollback: tuple[int, int, int]
    started: float | None
    last_progress: float | None
    pause_seconds: float


@dataclass(frozen=True)
class _Snapshot:
    """The state gauges of one scale set, computed once per observation."""

    capacity: int
    instances: int
    ready: int
    latest_model: int
    protected: int
    by_version: tuple[tuple[str, str, int], ...]
    model: tuple[str, str] | None
    pending_version: str | None
    conditions: tuple[tuple[str, str], ...]
    run: _RunView | None


def _snapshot(status: ScaleSetStatus, instances: Sequence[Instance], capacity: int) -> _Snapshot:
    present = [i for i in instances if not i.deleting]
    versions: dict[tuple[str, str], int] = {}
    for inst in present:
        key = _split_urn(inst.image_urn)
        versions[key] = versions.get(key, 0) + 1
    model = status.model_image
    pending = status.pending_upgrade
    return _Snapshot(
        capacity=capacity,
        instances=len(present),
        ready=status.ready_instances,
        latest_model=status.latest_model_instances,
        protected=status.protected_instances,
        by_version=tuple((image, version, n) for (image, version), n in sorted(versions.items())),
        model=(model.family, model.version) if model is not None else None,
        pending_version=pending.version if pending is not None else None,
        conditions=tuple((c.type, c.status.lower()) for c in status.conditions),
        run=_run_view(status),
    )


def _run_view(status: ScaleSetStatus) -> _RunView | None:
    run = status.upgrade_run
    if run is None:
        return None
    rolling = status.rolling_upgrade
    progress = rolling.progress if rolling is not None else None
    counts = (
        (
            progress.successful_instance_count,
            progress.failed_instance_count,
            progress.in_progress_instance_count,
            progress.pending_instance_count,
        )
        if progress is not None
        else (len(run.succeeded), len(run.failed), 0, 0)
    )
    # Every step of a run leaves a stamp: its start, each batch's start and end, a cancel.
    steps = [
        run.start_time,
        run.batch.started_at if run.batch else None,
        run.last_batch_end,
        run.last_action_time,
        run.end_time,
    ]
    stamps = [s for s in (_unix(x) for x in steps) if s is not None]
    try:
        pause = parse_duration(run.policy.pause_time_between_batches).total_seconds()
    except DurationError:
        pause = 0.0
    return _RunView(
        code=run.code.value,
        image=run.target.family,
        version=run.target.version,
        started_by=run.started_by.value,
        progress=counts,
        rollback=(len(run.rolled_back), len(run.rollback_failed), len(run.rolling_back)),
        started=_unix(run.start_time),
        last_progress=max(stamps) if stamps else None,
        pause_seconds=pause,
    )


class _ScaleSetCollector(Collector):
    """State gauges built at scrape time from the stored snapshots (argo-rollouts style)."""

    def __init__(self, snapshots: Callable[[], list[tuple[str, str, _Snapshot]]]) -> None:
        self._snapshots = snapshots

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        for namespace, name, snap in self._snapshots():
            self._add(families, namespace, name, snap)
        return list(families.values())

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        def gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*_SCALESET, *labels])

        families = [
            gauge("scaleset_capacity", "Instances the scale set should have (spec.capacity)."),
            gauge("scaleset_instances", "Instances that exist and are not being deleted."),
            gauge(
                "scaleset_instances_ready", "Instances healthy by the scale set's health source."
            ),
            gauge(
                "scaleset_instances_latest_model",
                "Instances on the latest model (latestModelApplied).",
            ),
            gauge("scaleset_instances_protected", "Instances protected from scale set actions."),
            gauge(
                "scaleset_instances_by_image_version",
                "Instances by the image version they run.",
                *_VERSION,
            ),
            gauge(
                "scaleset_model_image_info",
                "The image version new instances get (the scale set model).",
                *_VERSION,
            ),
            gauge(
                "scaleset_pending_upgrade_info",
                "A newer image version seen by the platform, its automatic upgrade not started.",
                "version",
            ),
            gauge(
                "scaleset_status_condition",
                "Status conditions, 1 for the current status of each (kube-state-metrics style).",
                "condition",
                "status",
            ),
            gauge(
                "scaleset_upgrade_instances",
                "Instances of the current or last OS upgrade, by progress state.",
                "state",
            ),
            gauge(
                "scaleset_upgrade_rollback_instances",
                "Instances of the current or last OS upgrade sent back to their previous image, "
                "by rollback state (Azure's rollbackInfo).",
                "state",
            ),
            gauge(
                "scaleset_upgrade_running_status",
                "Running status code of the current or last OS upgrade, 1 for the current code.",
                "code",
            ),
            gauge(
                "scaleset_upgrade_target_info",
                "Target image version of the current or last OS upgrade.",
                *_VERSION,
                "started_by",
            ),
            gauge(
                "scaleset_upgrade_start_timestamp_seconds",
                "Unix time the current or last OS upgrade started.",
            ),
            gauge(
                "scaleset_upgrade_last_progress_timestamp_seconds",
                "Unix time of the last step of the current or last OS upgrade: its start, "
                "a batch starting or finishing, a cancel or its end.",
            ),
            gauge(
                "scaleset_upgrade_pause_between_batches_seconds",
                "pauseTimeBetweenBatches of the current or last OS upgrade.",
            ),
        ]
        return {f.name: f for f in families}

    @staticmethod
    def _add(
        families: dict[str, GaugeMetricFamily], namespace: str, name: str, snap: _Snapshot
    ) -> None:
        def put(metric: str, value: float, *labels: str) -> None:
            families[metric].add_metric([namespace, name, *labels], value)

        put("scaleset_capacity", snap.capacity)
        put("scaleset_instances", snap.instances)
        put("scaleset_instances_ready", snap.ready)
        put("scaleset_instances_latest_model", snap.latest_model)
        put("scaleset_instances_protected", snap.protected)
        for image, version, count in snap.by_version:
            put("scaleset_instances_by_image_version", count, image, version)
        if snap.model is not None:
            put("scaleset_model_image_info", 1, *snap.model)
        if snap.pending_version is not None:
            put("scaleset_pending_upgrade_info", 1, snap.pending_version)
        for condition, status in snap.conditions:
            for candidate in CONDITION_STATUSES:
                put("scaleset_status_condition", float(candidate == status), condition, candidate)
        run = snap.run
        if run is None:
            return
        for state, count in zip(PROGRESS_STATES, run.progress, strict=True):
            put("scaleset_upgrade_instances", count, state)
        for state, count in zip(ROLLBACK_STATES, run.rollback, strict=True):
            put("scaleset_upgrade_rollback_instances", count, state)
        for code in RunningStatusCode:
            put("scaleset_upgrade_running_status", float(code.value == run.code), code.value)
        put("scaleset_upgrade_target_info", 1, run.image, run.version, run.started_by)
        if run.started is not None:
            put("scaleset_upgrade_start_timestamp_seconds", run.started)
        if run.last_progress is not None:
            put("scaleset_upgrade_last_progress_timestamp_seconds", run.last_progress)
        put("scaleset_upgrade_pause_between_batches_seconds", run.pause_seconds)


# --- what changed since the last snapshot -------------------------------------------------------


@dataclass
class _Memory:
    """What the previous observation of one scale set showed, for spotting transitions."""

    run_key: str | None = None
    code: RunningStatusCode | None = None
    batches_done: int = 0
    batch_started: str | None = None
    rollback_ids: frozenset[int] = frozenset()
    rolled_back: frozenset[int] = frozenset()
    pending: PendingUpgrade | None = None
    # Detection time of the version the current run targets, until its first patch is seen.
    awaiting_first_patch: datetime | None = None
    # Monotonic clock reading when each instance of the current run started rolling back.
    revert_started: dict[int, float] = field(default_factory=dict)


def _detected_at(
    run: UpgradeRun, pending: PendingUpgrade | None, detected: set[str]
) -> datetime | None:
    """When the platform noticed the version a new run goes to, if this process saw it."""
    if run.started_by is not StartedBy.PLATFORM:
        return None
    if pending is not None and pending.version == run.target.version:
        return parse_stamp(pending.detected_at)
    if run.target.version in detected:
        # Noticed and started in one pass (a delay shorter than the stamps' second).
        return parse_stamp(run.start_time)
    return None


def _rollback_ids(run: UpgradeRun) -> frozenset[int]:
    return frozenset(run.rolling_back) | frozenset(run.rolled_back) | frozenset(run.rollback_failed)


def _baseline(status: ScaleSetStatus) -> _Memory:
    """The first observation in this process: its past is unknown, so nothing is counted."""
    run = status.upgrade_run
    memory = _Memory(pending=status.pending_upgrade)
    if run is not None:
        memory.run_key = run.start_time
        memory.code = run.code
        memory.batches_done = run.batches_done
        memory.batch_started = run.batch.started_at if run.batch else None
        memory.rollback_ids = _rollback_ids(run)
        memory.rolled_back = frozenset(run.rolled_back)
    return memory


class OperatorMetrics:
    """The operator's metrics, registered in the given registry.

    Thread-safe: kopf runs synchronous handlers in a thread pool.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
        version: str | None = None,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshots: dict[tuple[str, str], _Snapshot] = {}
        self._memory: dict[tuple[str, str], _Memory] = {}
        # Versions whose NewImageVersion event came with the pass about to be observed.
        self._detected: dict[tuple[str, str], set[str]] = {}

        build = Info(
            "scaleset_operator_build",
            "Version of the operator and of the Python running it.",
            registry=registry,
        )
        build.info({"version": version or _own_version(), "python": platform.python_version()})

        self.upgrades = Counter(
            "scaleset_upgrades_total",
            "OS upgrades that ended, by outcome.",
            [*_SCALESET, "outcome"],
            registry=registry,
        )
        self.upgrade_duration = Histogram(
            "scaleset_upgrade_duration_seconds",
            "Duration of OS upgrades that ended (endTime - startTime), by outcome.",
            [*_SCALESET, "outcome"],
            buckets=UPGRADE_BUCKETS,
            registry=registry,
        )
        self.batches = Counter(
            "scaleset_upgrade_batches_total",
            "Upgrade batches that finished.",
            list(_SCALESET),
            registry=registry,
        )
        self.batch_duration = Histogram(
            "scaleset_upgrade_batch_duration_seconds",
            "Time from a batch's first patch to the end of its health checks and rollbacks.",
            list(_SCALESET),
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.rollbacks = Counter(
            "scaleset_rollbacks_total",
            "Instances sent back to their previous image, by why they failed.",
            [*_SCALESET, "reason"],
            registry=registry,
        )
        self.instance_failures = Counter(
            "scaleset_instance_upgrade_failures_total",
            "Upgraded instances that did not become healthy on the new image, by cause.",
            [*_SCALESET, "cause"],
            registry=registry,
        )
        self.events = Counter(
            "scaleset_events_total",
            "Events the planner emitted, by type and reason.",
            [*_SCALESET, "type", "reason"],
            registry=registry,
        )
        self.publish_to_first_patch = Histogram(
            "scaleset_publish_to_first_patch_seconds",
            "Time from the operator noticing a newly published image version "
            "(status.pendingUpgrade.detectedAt) to the first instance patched onto it; "
            "includes the automatic upgrade delay.",
            list(_SCALESET),
            buckets=PUBLISH_BUCKETS,
            registry=registry,
        )
        self.reconciles = Counter(
            "scaleset_reconcile_total",
            "Reconcile passes, successful or not.",
            list(_SCALESET),
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "scaleset_reconcile_errors_total",
            "Reconcile passes that raised, by exception class.",
            [*_SCALESET, "error"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "scaleset_reconcile_duration_seconds",
            "Duration of reconcile passes.",
            list(_SCALESET),
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        # Delivery metrics per image version (change failure rate, time to revert, duration).
        self.version_upgrades = Counter(
            "scaleset_image_version_upgrades_total",
            "OS upgrades to an image version that ended, by outcome, over all scale sets.",
            [*_VERSION, "outcome"],
            registry=registry,
        )
        self.version_upgrade_duration = Histogram(
            "scaleset_image_version_upgrade_duration_seconds",
            "Duration of OS upgrades to an image version that ended, by outcome.",
            [*_VERSION, "outcome"],
            buckets=UPGRADE_BUCKETS,
            registry=registry,
        )
        self.time_to_revert = Histogram(
            "scaleset_time_to_revert_seconds",
            "Time from an instance failing on an image version to it being healthy again "
            "on its previous image.",
            list(_VERSION),
            buckets=REVERT_BUCKETS,
            registry=registry,
        )
        self._per_scaleset = (
            self.upgrades,
            self.upgrade_duration,
            self.batches,
            self.batch_duration,
            self.rollbacks,
            self.instance_failures,
            self.events,
            self.publish_to_first_patch,
            self.reconciles,
            self.reconcile_errors,
            self.reconcile_duration,
        )
        registry.register(_ScaleSetCollector(self._all_snapshots))

    # --- the controller's calls -----------------------------------------------------------

    def observe(
        self,
        namespace: str,
        name: str,
        status: ScaleSetStatus,
        instances: Sequence[Instance],
        capacity: int,
    ) -> None:
        """Store the scale set's latest state and count what changed since the last call.

        `status` is the status the pass wrote, `instances` the pods it observed, `capacity`
        the spec's. The first call for a scale set in this process only sets the baseline.
        """
        key = (namespace, name)
        snapshot = _snapshot(status, instances, capacity)
        with self._lock:
            detected = self._detected.pop(key, set())
            previous = self._memory.get(key)
            if previous is None:
                self._initialise(namespace, name)
            if status.upgrade_run is not None:
                # Also after a retarget, which changes the version in the middle of a run.
                self._initialise_version(status.upgrade_run)
            if previous is None:
                memory = _baseline(status)
            else:
                memory = self._transitions(namespace, name, previous, status, detected)
            self._memory[key] = memory
            self._snapshots[key] = snapshot

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted scale set (image version totals stay)."""
        key = (namespace, name)
        with self._lock:
            self._snapshots.pop(key, None)
            self._memory.pop(key, None)
            self._detected.pop(key, None)
            for metric in self._per_scaleset:
                metric.remove_by_labels({"namespace": namespace, "scaleset": name})

    def record_events(self, namespace: str, name: str, events: Sequence[EmitEvent]) -> None:
        """Count the planner's events of one persisted pass (call it before `observe()`)."""
        for event in events:
            self.events.labels(namespace, name, event.type, event.reason).inc()
            if event.reason == "NewImageVersion":
                match = _NEW_VERSION.match(event.message)
                if match:
                    with self._lock:
                        self._detected.setdefault((namespace, name), set()).add(match.group(1))
            if event.reason == "InstanceUpgradeFailed":
                # "instance 3 unhealthy on <urn>: <reason>"; the urn itself holds colons.
                reason = event.message.rsplit(": ", 1)[-1] if ": " in event.message else ""
                self.instance_failures.labels(namespace, name, cause_of(reason)).inc()

    @contextmanager
    def reconcile_timer(self, namespace: str, name: str) -> Iterator[None]:
        """Time one reconcile pass; an exception is counted by class and raised again."""
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.reconcile_errors.labels(namespace, name, type(exc).__name__).inc()
            raise
        finally:
            self.reconciles.labels(namespace, name).inc()
            self.reconcile_duration.labels(namespace, name).observe(time.perf_counter() - start)

    # --- internals ------------------------------------------------------------------------

    def _all_snapshots(self) -> list[tuple[str, str, _Snapshot]]:
        with self._lock:
            return [(ns, name, snap) for (ns, name), snap in sorted(self._snapshots.items())]

    def _initialise(self, namespace: str, name: str) -> None:
        """Create series at zero: a counter born at 1 shows no `increase()`, so the first
        fault or rollback of a scale set would never reach a rate or an alert."""
        for outcome in OUTCOMES:
            self.upgrades.labels(namespace, name, outcome)
            self.upgrade_duration.labels(namespace, name, outcome)
        self.batches.labels(namespace, name)
        self.batch_duration.labels(namespace, name)
        for cause in CAUSES:
            self.rollbacks.labels(namespace, name, cause)
            self.instance_failures.labels(namespace, name, cause)
        self.publish_to_first_patch.labels(namespace, name)
        self.reconciles.labels(namespace, name)
        self.reconcile_duration.labels(namespace, name)

    def _initialise_version(self, run: UpgradeRun) -> None:
        """Per-version series at zero from the moment a run to the version is seen."""
        image, version = run.target.family, run.target.version
        for outcome in OUTCOMES:
            self.version_upgrades.labels(image, version, outcome)
            self.version_upgrade_duration.labels(image, version, outcome)
        self.time_to_revert.labels(image, version)

    def _transitions(
        self,
        namespace: str,
        name: str,
        previous: _Memory,
        status: ScaleSetStatus,
        detected: set[str],
    ) -> _Memory:
        run = status.upgrade_run
        memory = _Memory(pending=status.pending_upgrade)
        if run is None:
            return memory
        same = previous.run_key == run.start_time
        if same:
            before_code: RunningStatusCode | None = previous.code
            before_batches = previous.batches_done
            before_batch_started = previous.batch_started
            before_rollbacks = previous.rollback_ids
            before_rolled_back = previous.rolled_back
            memory.awaiting_first_patch = previous.awaiting_first_patch
            memory.revert_started = dict(previous.revert_started)
        else:
            # A run that started since the last observation (it may have ended already).
            before_code = None
            before_batches = 0
            before_batch_started = None
            before_rollbacks = frozenset()
            before_rolled_back = frozenset()
            memory.awaiting_first_patch = _detected_at(run, previous.pending, detected)

        self._first_patch(namespace, name, run, memory)
        self._batches(namespace, name, run, before_batches, before_batch_started)
        self._rollbacks(namespace, name, run, memory, before_rollbacks, before_rolled_back)
        outcome = outcome_of(run)
        if outcome is not None and before_code in (None, RunningStatusCode.ROLLING_FORWARD):
            self._finished(namespace, name, run, outcome)
            memory.awaiting_first_patch = None

        memory.run_key = run.start_time
        memory.code = run.code
        memory.batches_done = run.batches_done
        memory.batch_started = run.batch.started_at if run.batch else None
        memory.rollback_ids = _rollback_ids(run)
        memory.rolled_back = frozenset(run.rolled_back)
        return memory

    def _first_patch(self, namespace: str, name: str, run: UpgradeRun, memory: _Memory) -> None:
        detected = memory.awaiting_first_patch
        if detected is None:
            return
        batch = run.batch
        if run.batches_done == 0 and batch is not None and batch.number == 1:
            seconds = (parse_stamp(batch.started_at) - detected).total_seconds()
            self.publish_to_first_patch.labels(namespace, name).observe(max(0.0, seconds))
            memory.awaiting_first_patch = None
        elif run.batches_done > 0:
            memory.awaiting_first_patch = None  # the first batch was never seen: no guess

    def _batches(
        self,
        namespace: str,
        name: str,
        run: UpgradeRun,
        before: int,
        before_started: str | None,
    ) -> None:
        done = run.batches_done - before
        if done <= 0:
            return
        self.batches.labels(namespace, name).inc(done)
        if done == 1:
            seconds = _seconds_between(before_started, run.last_batch_end)
            if seconds is not None:
                self.batch_duration.labels(namespace, name).observe(seconds)

    def _rollbacks(
        self,
        namespace: str,
        name: str,
        run: UpgradeRun,
        memory: _Memory,
        before: frozenset[int],
        before_rolled_back: frozenset[int],
    ) -> None:
        now = self._clock()
        for iid in sorted(_rollback_ids(run) - before):
            reason = cause_of(run.failure_reasons.get(str(iid)))
            self.rollbacks.labels(namespace, name, reason).inc()
            if iid in run.rolling_back:
                memory.revert_started[iid] = now
        for iid in sorted(frozenset(run.rolled_back) - before_rolled_back):
            started = memory.revert_started.pop(iid, None)
            if started is not None:
                self.time_to_revert.labels(run.target.family, run.target.version).observe(
                    max(0.0, now - started)
                )
        for iid in run.rollback_failed:
            memory.revert_started.pop(iid, None)

    def _finished(self, namespace: str, name: str, run: UpgradeRun, outcome: str) -> None:
        image, version = run.target.family, run.target.version
        self.upgrades.labels(namespace, name, outcome).inc()
        self.version_upgrades.labels(image, version, outcome).inc()
        seconds = _seconds_between(run.start_time, run.end_time)
        if seconds is not None:
            self.upgrade_duration.labels(namespace, name, outcome).observe(seconds)
            self.version_upgrade_duration.labels(image, version, outcome).observe(seconds)


def _own_version() -> str:
    try:
        return metadata.version("scaleset-operator")
    except metadata.PackageNotFoundError:
        return "unknown"
