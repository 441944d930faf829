"""What the controller should do to the world, one small idempotent step each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from scaleset_operator.models.instance import UpgradeMark


class DeleteReason(StrEnum):
    """Why an instance's pod is deleted (shown in the operator's log)."""

    FAILED = "instance failed"
    SUCCEEDED = "instance succeeded"
    SCALE_IN = "scale in"
    RECREATE_ON_MODEL = "recreate on the latest model"
    RECREATE_ON_NEW_IMAGE = "recreate on the new image"
    RECREATE_ON_PREVIOUS_IMAGE = "recreate on the previous image"
    SURGE_NOT_KEPT = "surge instance not kept"
    REPLACED_BY_SURGE = "replaced by a surge instance"


class EventReason(StrEnum):
    """The reasons of the Kubernetes Events the planner emits."""

    BATCH_COMPLETED = "BatchCompleted"
    BATCH_STARTED = "BatchStarted"
    IMAGE_NOT_FOUND = "ImageNotFound"
    INSTANCE_RECREATED = "InstanceRecreated"
    INSTANCE_ROLLED_BACK = "InstanceRolledBack"
    INSTANCE_ROLLING_BACK = "InstanceRollingBack"
    INSTANCE_UPGRADE_FAILED = "InstanceUpgradeFailed"
    MODEL_IMAGE_CHANGED = "ModelImageChanged"
    MODEL_UPDATE = "ModelUpdate"
    NEW_IMAGE_VERSION = "NewImageVersion"
    NO_ROLLING_UPGRADE = "NoRollingUpgrade"
    QUARANTINE_CLEARED = "QuarantineCleared"
    ROLLBACK_FAILED = "RollbackFailed"
    ROLLBACK_REFUSED = "RollbackRefused"
    ROLLING_UPGRADE_CANCELLED = "RollingUpgradeCancelled"
    ROLLING_UPGRADE_CANCELLING = "RollingUpgradeCancelling"
    ROLLING_UPGRADE_COMPLETED = "RollingUpgradeCompleted"
    ROLLING_UPGRADE_FAULTED = "RollingUpgradeFaulted"
    ROLLING_UPGRADE_IN_PROGRESS = "RollingUpgradeInProgress"
    ROLLING_UPGRADE_RETARGETED = "RollingUpgradeRetargeted"
    ROLLING_UPGRADE_STARTED = "RollingUpgradeStarted"
    SCALE_IN_LIMITED = "ScaleInLimited"
    SCALED_IN = "ScaledIn"
    SCALED_OUT = "ScaledOut"
    UNKNOWN_INSTANCES = "UnknownInstances"
    UPDATE_INSTANCES = "UpdateInstances"
    UPGRADE_SKIPPED = "UpgradeSkipped"
    WAITING_FOR_DISRUPTION_BUDGET = "WaitingForDisruptionBudget"
    WAITING_FOR_MAINTENANCE_WINDOW = "WaitingForMaintenanceWindow"


@dataclass(frozen=True)
class CreateInstance:
    instance_id: int
    container_image: str
    image_urn: str
    upgrade: UpgradeMark | None = None
    surge_for: int | None = None


@dataclass(frozen=True)
class DeleteInstance:
    name: str
    uid: str
    reason: DeleteReason


@dataclass(frozen=True)
class SetInstanceImage:
    """Set the OS container's image in place; a no-op when it already is that image."""

    name: str
    uid: str
    container_image: str
    image_urn: str
    upgrade: UpgradeMark | None


@dataclass(frozen=True)
class PromoteInstance:
    """A surge instance that was kept becomes an ordinary instance of the set (its surge
    marker and upgrade mark are removed)."""

    name: str
    uid: str


@dataclass(frozen=True)
class LabelInstance:
    """Set one label on an instance's pod, so that people can find it."""

    name: str
    uid: str
    key: str
    value: str


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event; ``version`` and ``cause`` carry, as data, what the message says
    in words (the version a NewImageVersion announces, why an instance failed)."""

    type: str
    reason: EventReason
    message: str
    version: str | None = None
    cause: str | None = None


Action = CreateInstance | DeleteInstance | SetInstanceImage | PromoteInstance | LabelInstance
