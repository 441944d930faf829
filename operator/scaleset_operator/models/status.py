"""ScaleSet status: Azure-shaped upgrade progress and history, plus the controller's own memory.

`rollingUpgrade` and `osUpgradeHistory` carry exactly Azure's fields (SPEC section 3);
`upgradeRun` is where the controller keeps what it needs to resume after a crash.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from scaleset_operator.models.base import ApiModel
from scaleset_operator.models.scaleset import RollingUpgradePolicy


class RunningStatusCode(StrEnum):
    ROLLING_FORWARD = "RollingForward"
    CANCELLED = "Cancelled"
    COMPLETED = "Completed"
    FAULTED = "Faulted"


class StartedBy(StrEnum):
    UNKNOWN = "Unknown"
    USER = "User"
    PLATFORM = "Platform"


class ErrorCode(StrEnum):
    """Azure's rolling upgrade error codes."""

    UNHEALTHY_BEFORE = "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
    UNHEALTHY_DURING = "MaxUnhealthyInstancePercentExceededInRollingUpgrade"
    UPGRADED_UNHEALTHY = "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    FAILED_UPGRADED_VMS = "RollingUpgradeInProgressWithFailedUpgradedVMs"
    TIMEOUT = "RollingUpgradeTimeoutError"


class ApiErrorBase(ApiModel):
    code: str | None = None
    target: str | None = None
    message: str | None = None


class InnerError(ApiModel):
    exceptiontype: str | None = None
    errordetail: str | None = None


class ApiError(ApiModel):
    code: str | None = None
    target: str | None = None
    message: str | None = None
    details: list[ApiErrorBase] | None = None
    innererror: InnerError | None = None


class Progress(ApiModel):
    successful_instance_count: int = 0
    failed_instance_count: int = 0
    in_progress_instance_count: int = 0
    pending_instance_count: int = 0


class RollingRunningStatus(ApiModel):
    code: RunningStatusCode
    start_time: str | None = None
    last_action: str | None = None
    last_action_time: str | None = None


class HistoryRunningStatus(ApiModel):
    code: RunningStatusCode
    start_time: str | None = None
    end_time: str | None = None


class TargetImageReference(ApiModel):
    """Azure's ImageReference; gallery images are written as an `id` path."""

    id: str | None = None
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    version: str | None = None
    exact_version: str | None = None


class RollbackInfo(ApiModel):
    successfully_rolledback_instance_count: int = 0
    failed_rolledback_instance_count: int = 0
    rollback_error: ApiError | None = None


class RollingUpgradeStatus(ApiModel):
    """`status.rollingUpgrade`: the shape of Azure's rollingUpgrades/latest `properties`."""

    policy: RollingUpgradePolicy | None = None
    running_status: RollingRunningStatus | None = None
    progress: Progress | None = None
    error: ApiError | None = None


class HistoryEntry(ApiModel):
    """One `status.osUpgradeHistory` item: Azure's history `properties` object."""

    running_status: HistoryRunningStatus | None = None
    progress: Progress | None = None
    error: ApiError | None = None
    started_by: StartedBy | None = None
    target_image_reference: TargetImageReference | None = None
    rollback_info: RollbackInfo | None = None


class ResolvedImage(ApiModel):
    """An image reference pinned to one catalog entry: what instances of the model run."""

    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    gallery: str | None = None
    image: str | None = None
    version: str
    container_image: str

    @property
    def family(self) -> str:
        if self.gallery is not None:
            return f"{self.gallery}/{self.image}"
        return f"{self.publisher}:{self.offer}:{self.sku}"

    @property
    def urn(self) -> str:
        """Azure's `Publisher:Offer:Sku:Version` form (gallery images: `gallery/image:version`)."""
        return f"{self.family}:{self.version}"

    def target_reference(self) -> TargetImageReference:
        if self.gallery is not None:
            return TargetImageReference(
                id=f"galleries/{self.gallery}/images/{self.image}/versions/{self.version}",
                version=self.version,
            )
        return TargetImageReference(
            publisher=self.publisher,
            offer=self.offer,
            sku=self.sku,
            version=self.version,
        )


class Batch(ApiModel):
    number: int
    instance_ids: list[int]
    zone: str | None = None
    started_at: str
    surge_ids: list[int] | None = None


class UpgradeRun(ApiModel):
    """The controller's memory of the current or last OS upgrade; instance ids, not counts,
    so that replaying a step after a crash never counts an instance twice."""

    started_by: StartedBy
    start_time: str
    target: ResolvedImage
    previous: ResolvedImage | None = None
    code: RunningStatusCode = RunningStatusCode.ROLLING_FORWARD
    end_time: str | None = None
    last_action: str = "Start"
    last_action_time: str | None = None
    automatic_rollback: bool = True
    policy: RollingUpgradePolicy = Field(default_factory=RollingUpgradePolicy)
    batch: Batch | None = None
    batches_done: int = 0
    last_batch_end: str | None = None
    succeeded: list[int] = Field(default_factory=list)
    failed: list[int] = Field(default_factory=list)
    rolled_back: list[int] = Field(default_factory=list)
    rollback_failed: list[int] = Field(default_factory=list)
    rolling_back: list[int] = Field(default_factory=list)
    failure_reasons: dict[str, str] = Field(default_factory=dict)
    stop_reason: ApiError | None = None
    error: ApiError | None = None


class Condition(ApiModel):
    type: str
    status: str
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class PendingUpgrade(ApiModel):
    """A newer version seen by the platform, waiting out the configured delay."""

    version: str
    detected_at: str


class ScaleSetStatus(ApiModel):
    observed_generation: int | None = None
    capacity: int = 0
    selector: str | None = None
    ready_instances: int = 0
    latest_model_instances: int = 0
    protected_instances: int = 0
    model_image: ResolvedImage | None = None
    model_hash: str | None = None
    current_image_version: str | None = None
    upgrade_state: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    rolling_upgrade: RollingUpgradeStatus | None = None
    os_upgrade_history: list[HistoryEntry] = Field(default_factory=list)
    upgrade_run: UpgradeRun | None = None
    pending_upgrade: PendingUpgrade | None = None
    faulted_versions: list[str] = Field(default_factory=list)
    handled_requests: list[str] = Field(default_factory=list)
    returning_instances: list[int] = Field(default_factory=list)
