"""What a newly persisted status and the planner's events add to the counters and histograms.

Pure: it returns observations for `operator_metrics` to apply; no prometheus_client, no clock
reads (`now` is an argument).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from scaleset_operator.metrics import definitions as metric
from scaleset_operator.metrics.labels import cause_of, outcome_of
from scaleset_operator.metrics.observations import (
    CounterIncrement,
    HistogramObservation,
    Labels,
    Observation,
    new_scaleset_series,
    new_version_series,
    scaleset_labels,
    version_labels,
)
from scaleset_operator.models.status import (
    PendingUpgrade,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.actions import EmitEvent, EventReason
from scaleset_operator.planner.timefmt import parse_stamp


@dataclass(frozen=True)
class Seen:
    """What the last observation of one scale set showed, for spotting transitions."""

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
    revert_started: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Transitions:
    seen: Seen
    observations: tuple[Observation, ...]


def transitions(
    namespace: str,
    name: str,
    previous: Seen | None,
    status: ScaleSetStatus,
    *,
    published: frozenset[str],
    now: float,
) -> Transitions:
    """What changed since `previous` in `status`, the status a pass has just persisted.

    `published`: versions whose NewImageVersion event came with that pass; `now`: a monotonic
    clock reading. With no previous observation in this process (`None`) the status is only
    a baseline: its past is unknown, so nothing is counted.
    """
    run = status.upgrade_run
    found: list[Observation] = []
    if previous is None:
        found += new_scaleset_series(namespace, name)
    if run is not None:
        # Also after a retarget, which changes the version in the middle of a run.
        found += new_version_series(run)
    if previous is None or run is None:
        return Transitions(_digest(status, None, {}), tuple(found))

    if previous.run_key == run.start_time:
        before = previous
    else:
        # A run that started since the last observation (it may have ended already).
        before = Seen(awaiting_first_patch=_detected_at(run, previous.pending, published))
    scaleset = scaleset_labels(namespace, name)
    patch, awaiting = _first_patch(scaleset, run, before.awaiting_first_patch)
    found += patch
    found += _batches(scaleset, run, before)
    rollbacks, revert_started = _rollbacks(scaleset, run, before, now)
    found += rollbacks
    outcome = outcome_of(run)
    if outcome is not None and before.code in (None, RunningStatusCode.ROLLING_FORWARD):
        found += _finished(scaleset, run, outcome)
        awaiting = None
    return Transitions(_digest(status, awaiting, revert_started), tuple(found))


def event_observations(
    namespace: str, name: str, events: Iterable[EmitEvent]
) -> tuple[Observation, ...]:
    """Every event by type and reason, and each failed instance by cause."""
    scaleset = scaleset_labels(namespace, name)
    found: list[Observation] = []
    for event in events:
        kind = (("type", event.type), ("reason", event.reason))
        found.append(CounterIncrement(metric.EVENTS, (*scaleset, *kind)))
        if event.reason is EventReason.INSTANCE_UPGRADE_FAILED:
            cause = cause_of(event.cause)
            found.append(CounterIncrement(metric.INSTANCE_FAILURES, (*scaleset, ("cause", cause))))
    return tuple(found)


def published_versions(events: Iterable[EmitEvent]) -> frozenset[str]:
    """Versions the events announce as newly published."""
    return frozenset(
        event.version
        for event in events
        if event.reason is EventReason.NEW_IMAGE_VERSION and event.version is not None
    )


def _digest(
    status: ScaleSetStatus, awaiting: datetime | None, revert_started: Mapping[int, float]
) -> Seen:
    run = status.upgrade_run
    if run is None:
        return Seen(pending=status.pending_upgrade)
    return Seen(
        run_key=run.start_time,
        code=run.code,
        batches_done=run.batches_done,
        batch_started=run.batch.started_at if run.batch else None,
        rollback_ids=_rollback_ids(run),
        rolled_back=frozenset(run.rolled_back),
        pending=status.pending_upgrade,
        awaiting_first_patch=awaiting,
        revert_started=revert_started,
    )


def _detected_at(
    run: UpgradeRun, pending: PendingUpgrade | None, published: frozenset[str]
) -> datetime | None:
    """When the platform noticed the version a new run goes to, if this process saw it."""
    if run.started_by is not StartedBy.PLATFORM:
        return None
    if pending is not None and pending.version == run.target.version:
        return parse_stamp(pending.detected_at)
    if run.target.version in published:
        # Noticed and started in one pass (a delay shorter than the stamps' second).
        return parse_stamp(run.start_time)
    return None


def _first_patch(
    scaleset: Labels, run: UpgradeRun, awaiting: datetime | None
) -> tuple[list[Observation], datetime | None]:
    """The publish latency once the run's first batch shows, and what is still awaited."""
    if awaiting is None:
        return [], None
    batch = run.batch
    if run.batches_done == 0 and batch is not None and batch.number == 1:
        seconds = max(0.0, (parse_stamp(batch.started_at) - awaiting).total_seconds())
        return [HistogramObservation(metric.PUBLISH_TO_FIRST_PATCH, scaleset, seconds)], None
    if run.batches_done > 0:
        return [], None  # the first batch was never seen: no guess
    return [], awaiting


def _batches(scaleset: Labels, run: UpgradeRun, before: Seen) -> list[Observation]:
    done = run.batches_done - before.batches_done
    if done <= 0:
        return []
    found: list[Observation] = [CounterIncrement(metric.BATCHES, scaleset, done)]
    # Batches that started and ended between two observations are counted, not timed.
    if done == 1:
        seconds = _seconds_between(before.batch_started, run.last_batch_end)
        if seconds is not None:
            found.append(HistogramObservation(metric.BATCH_DURATION, scaleset, seconds))
    return found


def _rollbacks(
    scaleset: Labels, run: UpgradeRun, before: Seen, now: float
) -> tuple[list[Observation], dict[int, float]]:
    """New rollbacks by cause and finished ones timed; the start times still running."""
    found: list[Observation] = []
    revert_started = dict(before.revert_started)
    for iid in sorted(_rollback_ids(run) - before.rollback_ids):
        reason = cause_of(run.failure_cause(iid))
        found.append(CounterIncrement(metric.ROLLBACKS, (*scaleset, ("reason", reason))))
        if iid in run.rolling_back:
            revert_started[iid] = now
    for iid in sorted(frozenset(run.rolled_back) - before.rolled_back):
        started = revert_started.pop(iid, None)
        if started is not None:
            found.append(
                HistogramObservation(
                    metric.TIME_TO_REVERT, version_labels(run), max(0.0, now - started)
                )
            )
    for iid in run.rollback_failed:
        revert_started.pop(iid, None)
    return found, revert_started


def _finished(scaleset: Labels, run: UpgradeRun, outcome: str) -> list[Observation]:
    per_scaleset = (*scaleset, ("outcome", outcome))
    per_version = (*version_labels(run), ("outcome", outcome))
    found: list[Observation] = [
        CounterIncrement(metric.UPGRADES, per_scaleset),
        CounterIncrement(metric.VERSION_UPGRADES, per_version),
    ]
    seconds = _seconds_between(run.start_time, run.end_time)
    if seconds is not None:
        found.append(HistogramObservation(metric.UPGRADE_DURATION, per_scaleset, seconds))
        found.append(HistogramObservation(metric.VERSION_UPGRADE_DURATION, per_version, seconds))
    return found


def _rollback_ids(run: UpgradeRun) -> frozenset[int]:
    return frozenset(run.rolling_back) | frozenset(run.rolled_back) | frozenset(run.rollback_failed)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    seconds = (parse_stamp(end) - parse_stamp(start)).total_seconds()
    return seconds if seconds >= 0 else None
