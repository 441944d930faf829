"""The operator's metrics in a prometheus_client registry, and the calls the controller makes.

`OperatorMetrics` keeps per scale set the latest snapshot (for the collector) and a digest of
the last status (for `transitions`), and records what `transitions` returns. The controller
calls `record_events()` and then `observe()` after a pass's status has been persisted, so a
pass that is retried after a conflict is counted once.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from scaleset_operator.metrics import definitions as metric
from scaleset_operator.metrics.collector import ScaleSetCollector
from scaleset_operator.metrics.definitions import (
    OPERATOR_METRICS,
    CounterDefinition,
    HistogramDefinition,
    per_scaleset,
)
from scaleset_operator.metrics.observations import (
    CounterIncrement,
    HistogramObservation,
    Observation,
)
from scaleset_operator.metrics.snapshot import ScaleSetSnapshot, snapshot_of
from scaleset_operator.metrics.transitions import (
    Seen,
    event_observations,
    published_versions,
    transitions,
)
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.planner.actions import EmitEvent


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


class Recorder:
    """Registers every metric of `OPERATOR_METRICS` and applies observations to them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counters: dict[str, Counter] = {}
        self.histograms: dict[str, Histogram] = {}
        for definition in OPERATOR_METRICS:
            if isinstance(definition, CounterDefinition):
                self.counters[definition.name] = _counter(definition, registry)
            else:
                self.histograms[definition.name] = _histogram(definition, registry)

    def apply(self, observations: Iterable[Observation]) -> None:
        for observation in observations:
            labels = dict(observation.labels)
            if isinstance(observation, CounterIncrement):
                self.counters[observation.metric].labels(**labels).inc(observation.amount)
            elif isinstance(observation, HistogramObservation):
                self.histograms[observation.metric].labels(**labels).observe(observation.value)
            else:
                # Asking for the child creates it, at zero.
                self._metric(observation.metric).labels(**labels)

    def forget(self, namespace: str, name: str) -> None:
        """Drop the series of one scale set; per-version series outlive it."""
        for definition in OPERATOR_METRICS:
            if per_scaleset(definition):
                found = self._metric(definition.name)
                found.remove_by_labels({"namespace": namespace, "scaleset": name})

    def _metric(self, name: str) -> Counter | Histogram:
        return self.counters[name] if name in self.counters else self.histograms[name]


def _counter(definition: CounterDefinition, registry: CollectorRegistry) -> Counter:
    return Counter(definition.name, definition.documentation, definition.labels, registry=registry)


def _histogram(definition: HistogramDefinition, registry: CollectorRegistry) -> Histogram:
    return Histogram(
        definition.name,
        definition.documentation,
        definition.labels,
        buckets=definition.buckets,
        registry=registry,
    )


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
        self._snapshots: dict[tuple[str, str], ScaleSetSnapshot] = {}
        self._seen: dict[tuple[str, str], Seen] = {}
        # Versions whose NewImageVersion event came with the pass about to be observed.
        self._published: dict[tuple[str, str], set[str]] = {}

        build = Info(
            "scaleset_operator_build",
            "Version of the operator and of the Python running it.",
            registry=registry,
        )
        build.info({"version": version or _own_version(), "python": platform.python_version()})
        self._recorder = Recorder(registry)
        # Callers and tests reach single metrics by these names.
        counters, histograms = self._recorder.counters, self._recorder.histograms
        self.upgrades = counters[metric.UPGRADES]
        self.upgrade_duration = histograms[metric.UPGRADE_DURATION]
        self.batches = counters[metric.BATCHES]
        self.batch_duration = histograms[metric.BATCH_DURATION]
        self.rollbacks = counters[metric.ROLLBACKS]
        self.instance_failures = counters[metric.INSTANCE_FAILURES]
        self.events = counters[metric.EVENTS]
        self.publish_to_first_patch = histograms[metric.PUBLISH_TO_FIRST_PATCH]
        self.reconciles = counters[metric.RECONCILES]
        self.reconcile_errors = counters[metric.RECONCILE_ERRORS]
        self.reconcile_duration = histograms[metric.RECONCILE_DURATION]
        self.version_upgrades = counters[metric.VERSION_UPGRADES]
        self.version_upgrade_duration = histograms[metric.VERSION_UPGRADE_DURATION]
        self.time_to_revert = histograms[metric.TIME_TO_REVERT]
        self.notifications = NotificationMetrics(counters, registry)
        registry.register(ScaleSetCollector(self._all_snapshots))

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
        snapshot = snapshot_of(status, instances, capacity)
        with self._lock:
            now = self._clock()
            published = frozenset(self._published.pop(key, set()))
            found = transitions(
                namespace, name, self._seen.get(key), status, published=published, now=now
            )
            self._recorder.apply(found.observations)
            self._seen[key] = found.seen
            self._snapshots[key] = snapshot

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted scale set (image version totals stay)."""
        key = (namespace, name)
        with self._lock:
            self._snapshots.pop(key, None)
            self._seen.pop(key, None)
            self._published.pop(key, None)
            self._recorder.forget(namespace, name)

    def record_events(self, namespace: str, name: str, events: Sequence[EmitEvent]) -> None:
        """Count the planner's events of one persisted pass (call it before `observe()`)."""
        self._recorder.apply(event_observations(namespace, name, events))
        versions = published_versions(events)
        if versions:
            with self._lock:
                self._published.setdefault((namespace, name), set()).update(versions)

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

    def _all_snapshots(self) -> list[tuple[str, str, ScaleSetSnapshot]]:
        with self._lock:
            return [(ns, name, snap) for (ns, name), snap in sorted(self._snapshots.items())]


class NotificationMetrics:
    """Webhook delivery per sink, in the shape the notifications package asks for."""

    def __init__(self, counters: dict[str, Counter], registry: CollectorRegistry) -> None:
        self._sent = counters[metric.NOTIFICATIONS_SENT]
        self._failed = counters[metric.NOTIFICATIONS_FAILED]
        self._dropped = counters[metric.NOTIFICATIONS_DROPPED]
        self._queue = Gauge(
            metric.NOTIFICATION_QUEUE,
            metric.NOTIFICATION_QUEUE_HELP,
            metric.NOTIFICATION_LABELS,
            registry=registry,
        )

    def sent(self, sink: str) -> None:
        self._sent.labels(sink).inc()

    def failed(self, sink: str) -> None:
        self._failed.labels(sink).inc()

    def dropped(self, sink: str, count: int) -> None:
        self._dropped.labels(sink).inc(count)

    def queued(self, sink: str, length: int) -> None:
        self._queue.labels(sink).set(length)


def _own_version() -> str:
    try:
        return metadata.version("scaleset-operator")
    except metadata.PackageNotFoundError:
        return "unknown"
