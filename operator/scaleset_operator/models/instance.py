"""An instance (pod) as the planner sees it, and the labels and annotations it carries.

The controller's per-instance memory lives in pod annotations, so a restarted operator
knows what each instance ran before its upgrade and when that upgrade began.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from scaleset_operator.models.base import ApiModel
from scaleset_operator.models.scaleset import GROUP

LABEL_SCALESET = f"{GROUP}/scaleset"
LABEL_INSTANCE_ID = f"{GROUP}/instance-id"
# On an instance a run left on its old image because a disruption budget never allowed it.
LABEL_UPGRADE_SKIPPED = f"{GROUP}/upgrade-skipped"
SKIPPED_FOR_DISRUPTION_BUDGET = "disruption-budget"
ANNOTATION_IMAGE_URN = f"{GROUP}/image"
ANNOTATION_MODEL_HASH = f"{GROUP}/model-hash"
ANNOTATION_UPGRADE = f"{GROUP}/os-upgrade"
ANNOTATION_PROTECT = f"{GROUP}/protect-from-scale-set-actions"
ANNOTATION_SURGE_FOR = f"{GROUP}/surge-for"
# On the ScaleSet: requests from the CLI, each with a unique id so replays are harmless.
ANNOTATION_START = f"{GROUP}/rolling-upgrade-start"
ANNOTATION_CANCEL = f"{GROUP}/rolling-upgrade-cancel"
ANNOTATION_UPDATE_INSTANCES = f"{GROUP}/update-instances"
ANNOTATION_CLEAR_QUARANTINE = f"{GROUP}/clear-quarantine"
ANNOTATION_ROLLBACK = f"{GROUP}/rolling-upgrade-rollback"
# Every annotation a request may arrive in; the controller reads each of them.
REQUEST_ANNOTATIONS = (
    ANNOTATION_START,
    ANNOTATION_CANCEL,
    ANNOTATION_UPDATE_INSTANCES,
    ANNOTATION_CLEAR_QUARANTINE,
    ANNOTATION_ROLLBACK,
)


class RequestAction(StrEnum):
    START = "start"
    CANCEL = "cancel"
    UPDATE_INSTANCES = "update-instances"
    CLEAR_QUARANTINE = "clear-quarantine"
    ROLLBACK = "rollback"


class Request(ApiModel):
    """A user's request written by the CLI as a ScaleSet annotation (JSON)."""

    id: str
    action: RequestAction
    at: str
    instance_ids: list[str] = Field(default_factory=list)
    versions: list[str] = Field(default_factory=list)


class UpgradePhase(StrEnum):
    UPGRADING = "Upgrading"
    ROLLING_BACK = "RollingBack"


class UpgradeMark(ApiModel):
    """Pod annotation written in the same patch that changes its image."""

    run: str
    phase: UpgradePhase
    previous_image: str
    previous_version: str | None = None
    target_version: str
    started_at: str


class ContainerState(ApiModel):
    name: str
    image: str
    ready: bool = False
    restart_count: int = 0
    waiting_reason: str | None = None
    # The kubelet's message for the waiting reason: a pull failure names the image it concerns.
    waiting_message: str | None = None
    running: bool = False
    # When the container's previous run ended (lastState.terminated.finishedAt, RFC 3339).
    last_finished_at: str | None = None
    # When the previous run began (lastState.terminated.startedAt), and, while the container
    # is not running again, when its latest run began (state.terminated.startedAt): a real
    # kubelet shows a crash loop this way most of the time, not as `CrashLoopBackOff`.
    last_started_at: str | None = None
    exited_run_started_at: str | None = None


class Instance(ApiModel):
    """One pod of a scale set, reduced to what decisions need."""

    instance_id: int
    name: str
    uid: str = ""
    os_image: str
    image_urn: str | None = None
    model_hash: str | None = None
    protected: bool = False
    deleting: bool = False
    deletion_due: str | None = None
    phase: str | None = None
    ready: bool = False
    ready_since: str | None = None
    created_at: str | None = None
    node_name: str | None = None
    zone: str | None = None
    os_status: ContainerState | None = None
    gate_ready: bool | None = None
    endpoint_ready: bool | None = None
    upgrade: UpgradeMark | None = None
    surge_for: int | None = None
    # The pod's labels: what PodDisruptionBudget selectors match.
    labels: dict[str, str] = Field(default_factory=dict)
    extra_conditions: dict[str, str] = Field(default_factory=dict)
