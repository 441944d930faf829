"""Starts refused at the pre-start gate: how one is recognised and when the platform tries again.

A refused start touched no instance, so it says nothing about the version: it is neither
quarantined nor a failed change. Decisions only; the planner's steps act on them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from scaleset_operator.models.status import ErrorCode, HistoryEntry, RunningStatusCode, UpgradeRun

# With an upgrade delay of zero (demos, benchmarks) a set that stays unhealthy would otherwise
# be retried on every pass.
RETRY_FLOOR = timedelta(seconds=5)
# A health blip at publish time must not hold a good version back for long.
RETRY_CAP = timedelta(minutes=10)


def is_refusal(run: UpgradeRun) -> bool:
    error = run.error or run.stop_reason
    return (
        run.code is RunningStatusCode.FAULTED
        and error is not None
        and error.code == ErrorCode.UNHEALTHY_BEFORE.value
        and run.batches_done == 0
        and not run.succeeded
        and not run.failed
    )


def is_refusal_entry(entry: HistoryEntry) -> bool:
    status, error = entry.running_status, entry.error
    return (
        status is not None
        and status.code is RunningStatusCode.FAULTED
        and error is not None
        and error.code == ErrorCode.UNHEALTHY_BEFORE.value
    )


def retry_at(refused_at: datetime, detected_at: datetime, delay: timedelta) -> datetime:
    """When the platform may try a refused version again.

    The wait is as long again as the version has waited since it was detected, so successive
    waits double without a counter in status (status is the only memory). It is never shorter
    than the automatic upgrade delay, which paces platform upgrades (Azure: 30-60 minutes
    between later upgrades; seconds in tests), nor than `RETRY_FLOOR`, and never longer than
    `RETRY_CAP` unless the delay itself is.
    """
    waited = refused_at - detected_at
    return refused_at + max(delay, RETRY_FLOOR, min(waited, RETRY_CAP))
