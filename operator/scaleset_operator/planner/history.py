"""Azure-shaped views of an upgrade run: `status.rollingUpgrade` and history entries."""

from __future__ import annotations

from scaleset_operator.models.status import (
    ApiError,
    HistoryEntry,
    HistoryRunningStatus,
    Progress,
    RollbackInfo,
    RollingRunningStatus,
    RollingUpgradeStatus,
    StartedBy,
    UpgradeRun,
)


def progress_of(run: UpgradeRun, pending: int) -> Progress:
    batch = set(run.batch.instance_ids) if run.batch else set()
    in_progress = len(batch - set(run.succeeded) - set(run.failed))
    return Progress(
        successful_instance_count=len(run.succeeded),
        failed_instance_count=len(run.failed),
        in_progress_instance_count=in_progress,
        pending_instance_count=pending,
    )


def rolling_upgrade_status(run: UpgradeRun, pending: int) -> RollingUpgradeStatus:
    return RollingUpgradeStatus(
        policy=run.policy,
        running_status=RollingRunningStatus(
            code=run.code,
            start_time=run.start_time,
            last_action=run.last_action,
            last_action_time=run.last_action_time,
        ),
        progress=progress_of(run, pending),
        error=run.error or run.stop_reason,
    )


def _rollback_info(run: UpgradeRun) -> RollbackInfo | None:
    if not (run.rolled_back or run.rollback_failed or run.rolling_back):
        if run.started_by is StartedBy.USER or not run.automatic_rollback:
            return None
        return RollbackInfo()
    error = None
    if run.rollback_failed:
        error = ApiError(
            code="RollbackFailed",
            message=f"{len(run.rollback_failed)} instance(s) did not recover on the previous image",
        )
    return RollbackInfo(
        successfully_rolledback_instance_count=len(run.rolled_back),
        failed_rolledback_instance_count=len(run.rollback_failed),
        rollback_error=error,
    )


def history_entry(run: UpgradeRun, pending: int) -> HistoryEntry:
    return HistoryEntry(
        running_status=HistoryRunningStatus(
            code=run.code, start_time=run.start_time, end_time=run.end_time
        ),
        progress=progress_of(run, pending),
        error=run.error or run.stop_reason,
        started_by=run.started_by,
        target_image_reference=run.target.target_reference(),
        rollback_info=_rollback_info(run),
    )


def record_history(
    history: list[HistoryEntry], run: UpgradeRun, pending: int, limit: int
) -> list[HistoryEntry]:
    """Newest first; the entry of the current run (same start time) is replaced in place."""
    entry = history_entry(run, pending)
    rest = [
        h
        for h in history
        if h.running_status is None or h.running_status.start_time != run.start_time
    ]
    return [entry, *rest][:limit]
