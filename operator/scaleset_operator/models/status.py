"""ScaleSet status: Azure-shaped upgrade progress and history, plus the controller's own memory.

`rollingUpgrade` and `osUpgradeHistory` carry exactly Azure's fields;
`upgradeRun` is where the controller keeps what it needs to resume after a crash.
Field descriptions here become the CRD's OpenAPI descriptions (`kubectl explain vmss.status…`).
"""

# Long module: the whole status in one file, in the order `kubectl explain` shows it; most of
# its lines are the field descriptions users read.

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from scaleset_operator.models.base import ApiModel
from scaleset_operator.models.scaleset import AzureRollingUpgradePolicy, RollingUpgradePolicy


class RunningStatusCode(StrEnum):
    ROLLING_FORWARD = "RollingForward"
    CANCELLED = "Cancelled"
    COMPLETED = "Completed"
    FAULTED = "Faulted"


class LastAction(StrEnum):
    START = "Start"
    CANCEL = "Cancel"


class StartedBy(StrEnum):
    UNKNOWN = "Unknown"
    USER = "User"
    PLATFORM = "Platform"


class QuarantineReason(StrEnum):
    """Why a version is kept out of `latest`."""

    UPGRADE_FAULTED = "UpgradeFaulted"
    ROLLED_BACK_BY_USER = "RolledBackByUser"


class ErrorCode(StrEnum):
    """Azure's rolling upgrade error codes."""

    UNHEALTHY_BEFORE = "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
    UNHEALTHY_DURING = "MaxUnhealthyInstancePercentExceededInRollingUpgrade"
    UPGRADED_UNHEALTHY = "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    FAILED_UPGRADED_VMS = "RollingUpgradeInProgressWithFailedUpgradedVMs"
    TIMEOUT = "RollingUpgradeTimeoutError"
    # Ours, not Azure's: Azure has no PodDisruptionBudgets.
    DISRUPTION_BUDGET_TIMEOUT = "DisruptionBudgetTimeoutInRollingUpgrade"


_STAMP = "(RFC 3339, UTC)"
_CODE = "RollingForward while it runs, then Completed, Cancelled or Faulted."


class ApiErrorBase(ApiModel):
    """One detail of an error, in Azure's error shape."""

    code: str | None = Field(default=None, description="Short machine-readable error code.")
    target: str | None = Field(
        default=None, description="What the error is about, such as one instance."
    )
    message: str | None = Field(default=None, description="Explanation for people.")


class InnerError(ApiModel):
    """Low-level detail behind an error, in Azure's shape (field names all lower case)."""

    exceptiontype: str | None = Field(default=None, description="Kind of the underlying failure.")
    errordetail: str | None = Field(
        default=None, description="Full text of the underlying failure."
    )


class ApiError(ApiModel):
    """An error in Azure's shape: a code, what it concerns, a message and optional details."""

    code: str | None = Field(
        default=None,
        description="Azure's error code, such as "
        "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade.",
    )
    target: str | None = Field(
        default=None, description="What the error is about: the scale set or an instance."
    )
    message: str | None = Field(default=None, description="Explanation for people.")
    details: list[ApiErrorBase] | None = Field(
        default=None, description="The errors behind this one, such as one per failed instance."
    )
    innererror: InnerError | None = None


class Progress(ApiModel):
    """How many instances are in each upgrade state."""

    successful_instance_count: int = Field(
        default=0, description="Instances upgraded and healthy on the new image."
    )
    failed_instance_count: int = Field(
        default=0,
        description="Instances that did not become healthy on the new image in time, "
        "whether rolled back or not.",
    )
    in_progress_instance_count: int = Field(
        default=0, description="Instances of the current batch that are still being upgraded."
    )
    pending_instance_count: int = Field(
        default=0,
        description="Instances the upgrade has not reached yet; once it has ended, those it "
        "never reached.",
    )


class RollingRunningStatus(ApiModel):
    """Where the upgrade stands."""

    code: RunningStatusCode = Field(description=_CODE)
    start_time: str | None = Field(default=None, description=f"When it started {_STAMP}.")
    last_action: LastAction | None = Field(
        default=None, description="The last action taken on it: Start or Cancel."
    )
    last_action_time: str | None = Field(
        default=None, description=f"When lastAction happened {_STAMP}."
    )


class HistoryRunningStatus(ApiModel):
    """How the attempt went, and when."""

    code: RunningStatusCode = Field(description=_CODE)
    start_time: str | None = Field(default=None, description=f"When it started {_STAMP}.")
    end_time: str | None = Field(
        default=None, description=f"When it ended {_STAMP}; absent while it runs."
    )


class TargetImageReference(ApiModel):
    """The image version the upgrade moved to, as an Azure image reference; a gallery image
    is written as an `id` path instead of publisher, offer and sku."""

    id: str | None = Field(
        default=None,
        description="Gallery image: galleries/GALLERY/images/IMAGE/versions/VERSION.",
    )
    publisher: str | None = Field(default=None, description="Platform image: its publisher.")
    offer: str | None = Field(default=None, description="Platform image: its offer.")
    sku: str | None = Field(default=None, description="Platform image: its sku.")
    version: str | None = Field(default=None, description="The exact target version.")
    exact_version: str | None = Field(
        default=None,
        description="Azure's exact version for a reference that says `latest`; not written "
        "here, since version is always exact.",
    )


class RollbackInfo(ApiModel):
    """Instances put back on their previous image after failing the upgrade."""

    successfully_rolledback_instance_count: int = Field(
        default=0, description="Instances healthy again on their previous image."
    )
    failed_rolledback_instance_count: int = Field(
        default=0, description="Instances that did not recover on their previous image in time."
    )
    rollback_error: ApiError | None = Field(
        default=None, description="Why some rollbacks failed; absent when all succeeded."
    )


_RUN_ERROR = "Why the upgrade faulted, or which instances failed; absent when all went well."


class RollingUpgradeStatus(ApiModel):
    """The current or latest OS upgrade, shaped like the `properties` of Azure's
    rollingUpgrades/latest answer."""

    policy: AzureRollingUpgradePolicy | None = Field(
        default=None, description="The rolling upgrade policy this upgrade runs with."
    )
    running_status: RollingRunningStatus | None = None
    progress: Progress | None = None
    error: ApiError | None = Field(default=None, description=_RUN_ERROR)


class HistoryEntry(ApiModel):
    """One OS upgrade attempt, shaped like the `properties` of an entry of Azure's OS
    upgrade history."""

    running_status: HistoryRunningStatus | None = None
    progress: Progress | None = None
    error: ApiError | None = Field(default=None, description=_RUN_ERROR)
    started_by: StartedBy | None = Field(
        default=None,
        description="Who started it: Platform (an automatic OS upgrade), User, or Unknown.",
    )
    target_image_reference: TargetImageReference | None = None
    rollback_info: RollbackInfo | None = Field(
        default=None,
        description="Rollback of the instances that failed; absent when rollback was off "
        "(a user-started upgrade, or disableAutomaticRollback) and nothing was rolled back.",
    )


class ResolvedImage(ApiModel):
    """An image reference pinned to one catalog entry (ImageVersion)."""

    publisher: str | None = Field(
        default=None, description="Platform image publisher; absent for a gallery image."
    )
    offer: str | None = Field(
        default=None, description="Platform image offer; absent for a gallery image."
    )
    sku: str | None = Field(
        default=None, description="Platform image sku; absent for a gallery image."
    )
    gallery: str | None = Field(
        default=None, description="Gallery of a gallery image; absent for a platform image."
    )
    image: str | None = Field(
        default=None,
        description="Image definition of a gallery image; absent for a platform image.",
    )
    version: str = Field(description="The exact version picked from the catalog.")
    container_image: str = Field(
        description="The container image of that version (the ImageVersion's spec.image)."
    )

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


class BudgetWait(ApiModel):
    """A batch member not started yet because a PodDisruptionBudget allows no more
    disruptions."""

    instance_id: int = Field(description="The member that waits.")
    disruption_budget: str = Field(
        description="The PodDisruptionBudget that blocked it on the latest pass."
    )
    since: str = Field(
        description=f"When it first waited {_STAMP}; disruptionBudgetTimeout counts from then."
    )


class Batch(ApiModel):
    """One batch of an OS upgrade, or of the rollback after a policy breach."""

    number: int = Field(description="Batch number, counted from 1.")
    instance_ids: list[int] = Field(description="Ids of the instances in the batch.")
    zone: str | None = Field(
        default=None,
        description="The one zone the batch stays in; absent with enableCrossZoneUpgrade or "
        "when nodes have no zone.",
    )
    started_at: str = Field(description=f"When the batch started {_STAMP}.")
    surge_ids: list[int] | None = Field(
        default=None,
        description="maxSurge: ids of the new instances, in the order of the instanceIds "
        "they replace.",
    )
    blocked_by_disruption_budget: list[BudgetWait] | None = Field(
        default=None,
        description="Members that wait because a PodDisruptionBudget allows no more "
        "disruptions; each starts in a later pass once its budgets allow. Absent when none "
        "waits.",
    )


class UpgradeRun(ApiModel):
    """The operator's own record of the current or last OS upgrade, from which it resumes
    after a restart. It keeps instance ids, not counts, so that replaying a step after a crash
    never counts an instance twice. Not part of Azure's API."""

    started_by: StartedBy = Field(description="Platform (automatic) or User.")
    start_time: str = Field(
        description=f"When the run started {_STAMP}; pods upgraded by it carry this time too."
    )
    target: ResolvedImage = Field(description="The image version the run moves instances to.")
    previous: ResolvedImage | None = Field(
        default=None,
        description="The model image before the run: where failed instances go back to, and "
        "the model image again if the run faults.",
    )
    code: RunningStatusCode = Field(default=RunningStatusCode.ROLLING_FORWARD, description=_CODE)
    end_time: str | None = Field(default=None, description=f"When the run ended {_STAMP}.")
    last_action: LastAction = Field(
        default=LastAction.START,
        description="Start, or Cancel once a user cancels: the run then ends before the next "
        "batch.",
    )
    last_action_time: str | None = Field(
        default=None, description=f"When lastAction happened {_STAMP}."
    )
    automatic_rollback: bool = Field(
        default=True,
        description="Whether failed instances go back to their previous image: true for a "
        "platform upgrade unless disableAutomaticRollback, false when a user started it.",
    )
    policy: RollingUpgradePolicy = Field(
        default_factory=RollingUpgradePolicy,
        description="The spec's rolling upgrade policy when the run started; later edits do "
        "not change a running upgrade.",
    )
    batch: Batch | None = Field(
        default=None, description="The batch in flight; absent between batches."
    )
    batches_done: int = Field(default=0, description="Batches finished so far.")
    last_batch_end: str | None = Field(
        default=None,
        description=f"When the last batch finished {_STAMP}; the next one waits "
        "pauseTimeBetweenBatches from then.",
    )
    succeeded: list[int] = Field(
        default_factory=list, description="Ids of the instances upgraded and healthy on the target."
    )
    failed: list[int] = Field(
        default_factory=list,
        description="Ids of the instances that did not become healthy in time.",
    )
    rolled_back: list[int] = Field(
        default_factory=list,
        description="Ids of failed instances healthy again on their old image.",
    )
    rollback_failed: list[int] = Field(
        default_factory=list,
        description="Ids of failed instances that did not recover on their old image.",
    )
    rolling_back: list[int] = Field(
        default_factory=list,
        description="Ids of failed instances going back to their old image now.",
    )
    skipped: list[int] = Field(
        default_factory=list,
        description="Ids of the instances left on their old image because a "
        "PodDisruptionBudget blocked them longer than disruptionBudgetTimeout (policy Skip).",
    )
    failure_reasons: dict[str, str] = Field(
        default_factory=dict,
        description="Why each failed instance failed, by instance id, such as "
        "ImagePullBackOff or HealthTimeout (...).",
    )
    failure_causes: dict[str, str] = Field(
        default_factory=dict,
        description="The cause of each failure as a code, by instance id: HealthTimeout, "
        "ImagePullBackOff, CrashLoopBackOff, PodFailed... (history's error.details code).",
    )
    stop_reason: ApiError | None = Field(
        default=None,
        description="The limit that was exceeded; the run ends Faulted once the instances in "
        "flight settle.",
    )
    error: ApiError | None = Field(
        default=None, description="The error the run ended with, if any."
    )
    rollback_of: ResolvedImage | None = Field(
        default=None,
        description="Set on a rollback run (kubectl scaleset rolling-upgrade rollback): the "
        "version it undoes, quarantined when it started. The run's target is the previous "
        "model image of the run it undoes. Absent on an upgrade.",
    )
    rollback_requested_at: str | None = Field(
        default=None,
        description=f"When a user asked to roll this run back while it ran {_STAMP}: it is "
        "cancelled, and once its batch in flight has settled the rollback run starts. Absent "
        "otherwise.",
    )

    def failure_cause(self, instance_id: int) -> str | None:
        """The failed instance's cause as a code. Runs recorded before causes were kept apart
        start their reason with it, such as `HealthTimeout (NotReady)`."""
        key = str(instance_id)
        cause = self.failure_causes.get(key)
        if cause:
            return cause
        reason = self.failure_reasons.get(key)
        return reason.split(" ", 1)[0] if reason else None


class Condition(ApiModel):
    """A standard Kubernetes status condition."""

    type: str = Field(description="Ready, ImageResolved, Upgrading or UpgradeFaulted.")
    status: str = Field(description="True, False or Unknown.")
    reason: str = Field(description="Why, in one CamelCase word.")
    message: str = Field(default="", description="Details for people.")
    last_transition_time: str = Field(description=f"When status last changed {_STAMP}.")
    observed_generation: int | None = Field(
        default=None, description="The spec generation this condition was computed from."
    )


class PendingUpgrade(ApiModel):
    """A newer version seen by the platform, waiting out the configured delay."""

    version: str = Field(description="The newer version.")
    detected_at: str = Field(
        description=f"When it was first seen {_STAMP}; the operator's upgrade delay counts "
        "from then."
    )


class QuarantinedVersion(ApiModel):
    """Why one version of faultedVersions is there."""

    version: str = Field(description="The quarantined version.")
    reason: QuarantineReason = Field(
        description="UpgradeFaulted: its OS upgrade ended Faulted after touching instances. "
        "RolledBackByUser: a user rolled its upgrade back (kubectl scaleset rolling-upgrade "
        "rollback)."
    )
    message: str = Field(default="", description="The reason for people.")
    since: str | None = Field(default=None, description=f"When it was quarantined {_STAMP}.")


class HoldReason(StrEnum):
    """What keeps an out-of-date instance where it is; see OutOfDateHold.reason."""

    PROTECTED = "Protected"
    MANUAL_UPGRADE_MODE = "ManualUpgradeMode"
    AUTOMATIC_UPGRADE_DISABLED = "AutomaticOSUpgradeDisabled"
    YOUNGER_THAN_MINIMUM_AGE = "YoungerThanMinimumImageAge"
    QUARANTINED = "Quarantined"
    WAITING_FOR_WAVE = "WaitingForWave"
    UPGRADE_DELAY = "UpgradeDelay"
    HEALTH_GATE = "HealthGate"
    OUTSIDE_MAINTENANCE_WINDOW = "OutsideMaintenanceWindow"
    PAUSE_BETWEEN_BATCHES = "PauseBetweenBatches"
    DISRUPTION_BUDGET = "DisruptionBudget"
    WAITING_FOR_BATCH = "WaitingForBatch"
    UPGRADING = "Upgrading"
    LEFT_BEHIND = "LeftBehind"


class OutOfDateHold(ApiModel):
    """Out-of-date instances held for one reason."""

    reason: HoldReason = Field(
        description="What holds them, one of the listed values (the README explains each); "
        "every out-of-date instance is held by exactly one."
    )
    instance_ids: list[int] = Field(description="The instances, in id order.")
    until: str | None = Field(
        default=None,
        description=f"When the hold ends, where that is known {_STAMP}.",
    )


class OutOfDate(ApiModel):
    """Instances not on the latest model and image, grouped by what holds them."""

    count: int = Field(description="Out-of-date instances.")
    next_eligible_time: str | None = Field(
        default=None,
        description=f"The soonest time a hold ends {_STAMP}; absent when none has a known end.",
    )
    holds: list[OutOfDateHold] = Field(
        default_factory=list, description="One entry per reason; each instance is in one."
    )


class RecreatedInstance(ApiModel):
    """An instance an OS upgrade deletes and brings back under its id (so that its extensions
    run again) that ran another image before the run than the run's previous model image."""

    instance_id: int = Field(description="The instance's id.")
    run: str = Field(description="The startTime of the run that recreates it.")
    previous_image: str = Field(
        description="The OS container image it ran before the run: what its recreated pod's "
        "upgrade mark names, and where a rollback brings it back to."
    )
    previous_version: str | None = Field(
        default=None, description="The version of previousImage, when known."
    )


class ScaleSetStatus(ApiModel):
    """What the operator observed and decided; only the operator writes it."""

    observed_generation: int | None = Field(
        default=None, description="The spec generation this status was computed from."
    )
    capacity: int = Field(
        default=0,
        description="Instances that exist and are not being deleted (the scale subresource's "
        "replicas).",
    )
    selector: str | None = Field(
        default=None,
        description="Label selector of the scale set's pods, for the scale subresource.",
    )
    ready_instances: int = Field(default=0, description="Instances healthy by spec.healthProbe.")
    latest_model_instances: int = Field(
        default=0,
        description="Instances on the latest model, template and image (Azure's "
        "latestModelApplied).",
    )
    protected_instances: int = Field(
        default=0,
        description="Instances protected from scale set actions (pod annotation "
        "scaleset.dev/protect-from-scale-set-actions): never upgraded or scaled in.",
    )
    model_image: ResolvedImage | None = Field(
        default=None,
        description="The image version the model stands at: what new and recreated "
        "instances get. Moves to the target when an OS upgrade starts.",
    )
    model_hash: str | None = Field(
        default=None,
        description="Hash of the model apart from the OS image (template, volume claim "
        "templates, OS container); an instance with another hash is out of date.",
    )
    current_image_version: str | None = Field(
        default=None, description="The version of modelImage."
    )
    upgrade_state: str | None = Field(
        default=None,
        description="Code of the current or last OS upgrade: RollingForward, Completed, "
        "Cancelled or Faulted; absent before the first.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Standard conditions: Ready, ImageResolved, Upgrading, UpgradeFaulted.",
    )
    rolling_upgrade: RollingUpgradeStatus | None = None
    os_upgrade_history: list[HistoryEntry] = Field(
        default_factory=list,
        description="The latest OS upgrade attempts, newest first; five by default, as Azure "
        "keeps.",
    )
    upgrade_run: UpgradeRun | None = None
    pending_upgrade: PendingUpgrade | None = None
    faulted_versions: list[str] = Field(
        default_factory=list,
        description="Quarantined versions: their OS upgrade ended Faulted, or a user rolled "
        "it back, so `latest` skips them until a user clears them (kubectl scaleset quarantine "
        "clear). The last 20; quarantineReasons says why each is here.",
    )
    quarantine_reasons: list[QuarantinedVersion] = Field(
        default_factory=list,
        description="Why each version of faultedVersions is quarantined, one entry per "
        "version; a version without an entry (quarantined by an older operator) was faulted.",
    )
    handled_requests: list[str] = Field(
        default_factory=list,
        description="Ids of the user requests (annotations the kubectl plugin writes) already "
        "carried out, so none runs twice. The last 20.",
    )
    out_of_date: OutOfDate | None = Field(
        default=None,
        description="Why instances that are not on the latest version (newer ones held back "
        "included) or model are not upgraded yet, and when they may be. Absent when none is.",
    )
    returning_instances: list[int] = Field(
        default_factory=list,
        description="Ids of deleted or failed instances that come back under the same id, "
        "with the same data disks, once their old pod is gone.",
    )
    recreated_from: list[RecreatedInstance] = Field(
        default_factory=list,
        description="Instances the running OS upgrade recreates that ran another image than "
        "its previous model image before it, and that image: the new pod's upgrade mark and a "
        "rollback name it, the old pod and its mark being gone.",
    )
