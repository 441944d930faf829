"""Azure-shaped views of an upgrade run: `status.rollingUpgrade` and history entries."""

from __future__ import annotations

from collections.abc import Mapping

from scaleset_operator.models.scaleset import AzureRollingUpgradePolicy, RollingUpgradePolicy
from scaleset_operator.models.status import (
    ApiError,
    ApiErrorBase,
    HistoryEntry,
    HistoryRunningStatus,
    Progress,
    RollbackInfo,
    RollingRunningStatus,
    RollingUpgradeStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.refusal import is_refusal, is_refusal_entry


def progress_of(run: UpgradeRun, pending: int) -> Progress:
    batch = set(run.batch.instance_ids) if run.batch else set()
    in_progress = len(batch - set(run.succeeded) - set(run.failed))
    return Progress(
        successful_instance_count=len(run.succeeded),
        failed_instance_count=len(run.failed),
        in_progress_instance_count=in_progress,
        pending_instance_count=pending,
    )


def azure_policy(policy: RollingUpgradePolicy) -> AzureRollingUpgradePolicy:
    """The policy as Azure shows it: its own knobs, without ours."""
    fields = AzureRollingUpgradePolicy.model_fields
    return AzureRollingUpgradePolicy.model_validate(
        {k: v for k, v in vars(policy).items() if k in fields}
    )


def rolling_upgrade_status(run: UpgradeRun, pending: int) -> RollingUpgradeStatus:
    return RollingUpgradeStatus(
        policy=azure_policy(run.policy),
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
    """Newest first; the entry of the current run (same start time) is replaced.

    A refusal also replaces the earlier refusal of the same version: the platform retries
    while the set stays unhealthy, and one entry per retry would push the real upgrades out
    of the five Azure keeps.
    """
    entry = history_entry(run, pending)
    refused = is_refusal(run)
    rest = [
        h
        for h in history
        if (h.running_status is None or h.running_status.start_time != run.start_time)
        and not (
            refused
            and is_refusal_entry(h)
            and h.target_image_reference == entry.target_image_reference
        )
    ]
    return [entry, *rest][:limit]


def failure_details(run: UpgradeRun, back_to: Mapping[int, str | None]) -> list[ApiErrorBase]:
    """One `error.details` item per failed instance: why it failed, and where it ended up.

    `back_to` holds the version each rolled-back instance really went back to (its own
    previous version, which need not be the run's previous model).
    """
    details = []
    for iid in sorted(run.failed):
        reason = run.failure_reasons.get(str(iid), "Unknown")
        cause = run.failure_cause(iid) or reason
        version = back_to.get(iid)
        onto = f" to {version}" if version else ""
        if iid in run.rolled_back:
            outcome = f"rolled back{onto}"
        elif iid in run.rollback_failed:
            outcome = f"rolled back{onto}, still unhealthy there"
        elif iid in run.rolling_back:
            outcome = f"rolling back{onto}"
        else:
            outcome = f"left on {run.target.version}"
        details.append(
            ApiErrorBase(
                code=cause,
                target=f"instance {iid}",
                message=f"{reason}; {outcome}",
            )
        )
    return details
