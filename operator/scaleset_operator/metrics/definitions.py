"""The operator's counters and histograms as data: name, help text, labels, buckets.

Pure, so that the transition logic names the metrics it feeds without importing
prometheus_client; `operator_metrics` registers every entry of `OPERATOR_METRICS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaleset_operator.metrics.labels import SCALESET_LABELS, VERSION_LABELS

UPGRADES = "scaleset_upgrades_total"
UPGRADE_DURATION = "scaleset_upgrade_duration_seconds"
BATCHES = "scaleset_upgrade_batches_total"
BATCH_DURATION = "scaleset_upgrade_batch_duration_seconds"
ROLLBACKS = "scaleset_rollbacks_total"
INSTANCE_FAILURES = "scaleset_instance_upgrade_failures_total"
EVENTS = "scaleset_events_total"
PUBLISH_TO_FIRST_PATCH = "scaleset_publish_to_first_patch_seconds"
RECONCILES = "scaleset_reconcile_total"
RECONCILE_ERRORS = "scaleset_reconcile_errors_total"
RECONCILE_DURATION = "scaleset_reconcile_duration_seconds"
VERSION_UPGRADES = "scaleset_image_version_upgrades_total"
VERSION_UPGRADE_DURATION = "scaleset_image_version_upgrade_duration_seconds"
TIME_TO_REVERT = "scaleset_time_to_revert_seconds"
NOTIFICATIONS_SENT = "scaleset_notifications_sent_total"
NOTIFICATIONS_FAILED = "scaleset_notification_failures_total"
NOTIFICATIONS_DROPPED = "scaleset_notifications_dropped_total"
# A gauge, set by the sink's delivery thread, so it stays out of OPERATOR_METRICS.
NOTIFICATION_QUEUE = "scaleset_notification_queue_length"
NOTIFICATION_QUEUE_HELP = "Events waiting for delivery to a notification sink (retries included)."
NOTIFICATION_LABELS = ("sink",)

# Stamps in status have a precision of one second; the buckets start there. Azure waits up to
# three hours before the first automatic upgrade, hence the long tail of the publish latency.
UPGRADE_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
BATCH_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)
PUBLISH_BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600)
REVERT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class CounterDefinition:
    name: str
    documentation: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class HistogramDefinition:
    name: str
    documentation: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]


MetricDefinition = CounterDefinition | HistogramDefinition

# In registration order, which is the order of the exposition.
OPERATOR_METRICS: tuple[MetricDefinition, ...] = (
    CounterDefinition(
        UPGRADES, "OS upgrades that ended, by outcome.", (*SCALESET_LABELS, "outcome")
    ),
    HistogramDefinition(
        UPGRADE_DURATION,
        "Duration of OS upgrades that ended (endTime - startTime), by outcome.",
        (*SCALESET_LABELS, "outcome"),
        UPGRADE_BUCKETS,
    ),
    CounterDefinition(BATCHES, "Upgrade batches that finished.", SCALESET_LABELS),
    HistogramDefinition(
        BATCH_DURATION,
        "Time from a batch's first patch to the end of its health checks and rollbacks.",
        SCALESET_LABELS,
        BATCH_BUCKETS,
    ),
    CounterDefinition(
        ROLLBACKS,
        "Instances sent back to their previous image, by why they failed.",
        (*SCALESET_LABELS, "reason"),
    ),
    CounterDefinition(
        INSTANCE_FAILURES,
        "Upgraded instances that did not become healthy on the new image, by cause.",
        (*SCALESET_LABELS, "cause"),
    ),
    CounterDefinition(
        EVENTS,
        "Events the planner emitted, by type and reason.",
        (*SCALESET_LABELS, "type", "reason"),
    ),
    HistogramDefinition(
        PUBLISH_TO_FIRST_PATCH,
        "Time from the operator noticing a newly published image version "
        "(status.pendingUpgrade.detectedAt) to the first instance patched onto it; "
        "includes the automatic upgrade delay.",
        SCALESET_LABELS,
        PUBLISH_BUCKETS,
    ),
    CounterDefinition(RECONCILES, "Reconcile passes, successful or not.", SCALESET_LABELS),
    CounterDefinition(
        RECONCILE_ERRORS,
        "Reconcile passes that raised, by exception class.",
        (*SCALESET_LABELS, "error"),
    ),
    HistogramDefinition(
        RECONCILE_DURATION, "Duration of reconcile passes.", SCALESET_LABELS, RECONCILE_BUCKETS
    ),
    # Delivery metrics per image version (change failure rate, time to revert, duration); they
    # outlive the scale sets that fed them.
    CounterDefinition(
        VERSION_UPGRADES,
        "OS upgrades to an image version that ended, by outcome, over all scale sets.",
        (*VERSION_LABELS, "outcome"),
    ),
    HistogramDefinition(
        VERSION_UPGRADE_DURATION,
        "Duration of OS upgrades to an image version that ended, by outcome.",
        (*VERSION_LABELS, "outcome"),
        UPGRADE_BUCKETS,
    ),
    HistogramDefinition(
        TIME_TO_REVERT,
        "Time from an instance failing on an image version to it being healthy again "
        "on its previous image.",
        VERSION_LABELS,
        REVERT_BUCKETS,
    ),
    # Webhook delivery, per sink (host and a hash of its URL, never the URL itself).
    CounterDefinition(
        NOTIFICATIONS_SENT, "Notifications a sink acknowledged (2xx).", NOTIFICATION_LABELS
    ),
    CounterDefinition(
        NOTIFICATIONS_FAILED,
        "Notification attempts that failed (no answer or not 2xx); each is retried.",
        NOTIFICATION_LABELS,
    ),
    CounterDefinition(
        NOTIFICATIONS_DROPPED,
        "Non-critical notifications dropped because the sink's queue was full.",
        NOTIFICATION_LABELS,
    ),
)


def per_scaleset(definition: MetricDefinition) -> bool:
    """Whether the metric's series belong to one scale set, and go when it is deleted."""
    return definition.labels[: len(SCALESET_LABELS)] == SCALESET_LABELS
