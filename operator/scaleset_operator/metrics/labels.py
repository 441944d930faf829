"""The closed sets of label values the metrics use, and how a run or a failure maps to one.

Pure: no prometheus_client, so the transition logic and its tests can use these alone.
"""

from __future__ import annotations

from scaleset_operator.models.status import RunningStatusCode, UpgradeRun
from scaleset_operator.planner.health import FAIL_FAST_REASONS
from scaleset_operator.planner.refusal import is_refusal

SCALESET_LABELS = ("namespace", "scaleset")
VERSION_LABELS = ("image", "version")

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
