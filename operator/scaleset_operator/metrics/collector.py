"""State gauges of scale sets, built at scrape time from the latest snapshot of each
(argo-rollouts' rolloutCollector, kube-state-metrics' condition gauges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scaleset_operator.metrics.labels import (
    CONDITION_STATUSES,
    PROGRESS_STATES,
    ROLLBACK_STATES,
    SCALESET_LABELS,
    VERSION_LABELS,
)
from scaleset_operator.metrics.snapshot import RunView, ScaleSetSnapshot
from scaleset_operator.models.status import RunningStatusCode

# Name, help text and the labels after namespace and scaleset, in exposition order.
_GAUGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("scaleset_capacity", "Instances the scale set should have (spec.capacity).", ()),
    ("scaleset_instances", "Instances that exist and are not being deleted.", ()),
    ("scaleset_instances_ready", "Instances healthy by the scale set's health source.", ()),
    (
        "scaleset_instances_latest_model",
        "Instances on the latest model (latestModelApplied).",
        (),
    ),
    ("scaleset_instances_protected", "Instances protected from scale set actions.", ()),
    (
        "scaleset_instances_by_image_version",
        "Instances by the image version they run.",
        VERSION_LABELS,
    ),
    (
        "scaleset_model_image_info",
        "The image version new instances get (the scale set model).",
        VERSION_LABELS,
    ),
    (
        "scaleset_pending_upgrade_info",
        "A newer image version seen by the platform, its automatic upgrade not started.",
        ("version",),
    ),
    (
        "scaleset_status_condition",
        "Status conditions, 1 for the current status of each (kube-state-metrics style).",
        ("condition", "status"),
    ),
    (
        "scaleset_upgrade_instances",
        "Instances of the current or last OS upgrade, by progress state.",
        ("state",),
    ),
    (
        "scaleset_upgrade_rollback_instances",
        "Instances of the current or last OS upgrade sent back to their previous image, "
        "by rollback state (Azure's rollbackInfo).",
        ("state",),
    ),
    (
        "scaleset_upgrade_running_status",
        "Running status code of the current or last OS upgrade, 1 for the current code.",
        ("code",),
    ),
    (
        "scaleset_upgrade_target_info",
        "Target image version of the current or last OS upgrade.",
        (*VERSION_LABELS, "started_by"),
    ),
    (
        "scaleset_upgrade_start_timestamp_seconds",
        "Unix time the current or last OS upgrade started.",
        (),
    ),
    (
        "scaleset_upgrade_last_progress_timestamp_seconds",
        "Unix time of the last step of the current or last OS upgrade: its start, "
        "a batch starting or finishing, a cancel or its end.",
        (),
    ),
    (
        "scaleset_upgrade_pause_between_batches_seconds",
        "pauseTimeBetweenBatches of the current or last OS upgrade.",
        (),
    ),
)


class ScaleSetCollector(Collector):
    """State gauges built at scrape time from the stored snapshots (argo-rollouts style)."""

    def __init__(self, snapshots: Callable[[], list[tuple[str, str, ScaleSetSnapshot]]]) -> None:
        self._snapshots = snapshots

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        families = _families()
        for namespace, name, snap in self._snapshots():
            _add(families, namespace, name, snap)
        return list(families.values())


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        name: GaugeMetricFamily(name, doc, labels=[*SCALESET_LABELS, *labels])
        for name, doc, labels in _GAUGES
    }


Put = Callable[..., None]


def _add(
    families: dict[str, GaugeMetricFamily], namespace: str, name: str, snap: ScaleSetSnapshot
) -> None:
    def put(metric: str, value: float, *labels: str) -> None:
        families[metric].add_metric([namespace, name, *labels], value)

    _add_instances(put, snap)
    if snap.run is not None:
        _add_run(put, snap.run)


def _add_instances(put: Put, snap: ScaleSetSnapshot) -> None:
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


def _add_run(put: Put, run: RunView) -> None:
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
