"""The ScaleSet resource: spec (the scale set model and its upgrade policy) and status.

Field descriptions here become the CRD's OpenAPI descriptions (`kubectl explain vmss.spec…`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from scaleset_operator.models.base import ApiModel
from scaleset_operator.models.durations import ISO8601_DURATION

GROUP = "scaleset.dev"
VERSION = "v1alpha1"
PLURAL = "scalesets"
KIND = "ScaleSet"
LATEST = "latest"
DESCRIPTION = (
    "A group of identical instances (pods) made from one model, whose OS image is upgraded in "
    "rolling batches, on its own when a newer version is published: the Kubernetes "
    "counterpart of an Azure virtual machine scale set."
)


class UpgradeMode(StrEnum):
    MANUAL = "Manual"
    ROLLING = "Rolling"
    AUTOMATIC = "Automatic"


class ImageReference(ApiModel):
    """The OS image of every instance: a platform image (publisher, offer, sku) or a gallery
    image (gallery, image), plus a version. Only sku and version may change after creation."""

    publisher: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Platform image: who publishes it. Goes with offer and sku, never with "
        "gallery. Fixed after creation.",
    )
    offer: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Platform image: the publisher's product, a family of related images. "
        "Fixed after creation.",
    )
    sku: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Platform image: the edition of the offer, such as a major release. May "
        "change, but only by a user: automatic upgrades never switch sku.",
    )
    gallery: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Gallery image: the gallery that holds the image definition. Goes with "
        "image, never with publisher, offer or sku. Fixed after creation.",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Gallery image: the image definition inside the gallery. Fixed after creation.",
    )
    version: str = Field(
        default=LATEST,
        pattern=r"^(latest|[0-9]{1,9}(\.[0-9]{1,9}){0,3})$",
        description="`latest` (default) or an exact dotted numeric version such as 1.2.3. "
        "`latest` is resolved at creation and when sku changes; after that only OS upgrades "
        "move it. Must be `latest` when automatic OS upgrades are enabled.",
    )

    @property
    def is_gallery(self) -> bool:
        return self.gallery is not None

    def same_image(self, other: ImageReference) -> bool:
        """Same catalog entry family, whatever the version."""
        return (self.publisher, self.offer, self.sku, self.gallery, self.image) == (
            other.publisher,
            other.offer,
            other.sku,
            other.gallery,
            other.image,
        )

    @property
    def family(self) -> str:
        """The image without its version, spelled like ResolvedImage.family."""
        if self.is_gallery:
            return f"{self.gallery}/{self.image}"
        return f"{self.publisher}:{self.offer}:{self.sku}"

    def describe(self) -> str:
        if self.is_gallery:
            return f"{self.gallery}/{self.image}:{self.version}"
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"


class AutomaticOSUpgradePolicy(ApiModel):
    """Whether the platform moves instances to a newer OS image version on its own."""

    enable_automatic_os_upgrade: bool = Field(
        default=False,
        alias="enableAutomaticOSUpgrade",
        description="When true, publishing a newer `latest` version starts a rolling OS "
        "upgrade by itself (startedBy Platform). Needs imageReference.version `latest`. "
        "Default false.",
    )
    disable_automatic_rollback: bool = Field(
        default=False,
        description="When true, an instance that fails an automatic OS upgrade stays on the "
        "new image instead of getting its previous one back. Default false. Upgrades a user "
        "starts never roll back.",
    )


class OnDisruptionBudgetTimeout(StrEnum):
    FAULT = "Fault"
    SKIP = "Skip"


class AzureRollingUpgradePolicy(ApiModel):
    """How a rolling upgrade proceeds, with Azure's ranges and defaults: the fields of Azure's
    API, which is all that Azure-shaped status shows."""

    max_batch_instance_percent: int = Field(
        default=20,
        ge=5,
        le=100,
        description="Largest share of all instances upgraded together in one batch, 5 to 100, "
        "default 20. A batch holds at least one instance and may be smaller so the unhealthy "
        "limit holds. Not above maxUnhealthyInstancePercent.",
    )
    max_unhealthy_instance_percent: int = Field(
        default=20,
        ge=5,
        le=100,
        description="Largest share of all instances that may be unhealthy at once, for any "
        "reason, 5 to 100, default 20. Checked before the upgrade starts and before each batch: "
        "above it the upgrade does not start, or stops.",
    )
    max_unhealthy_upgraded_instance_percent: int = Field(
        default=20,
        ge=0,
        le=100,
        description="Largest share of the instances upgraded so far that may turn out "
        "unhealthy, 0 to 100, default 20. Checked after each batch: above it the upgrade is "
        "aborted (Faulted).",
    )
    pause_time_between_batches: str = Field(
        default="PT0S",
        pattern=ISO8601_DURATION,
        description="Wait between the end of one batch and the start of the next, an ISO 8601 "
        "duration such as PT30S. Default PT0S: no pause.",
    )
    prioritize_unhealthy_instances: bool = Field(
        default=False,
        description="When true, unhealthy instances go into the first batches, ahead of the "
        "healthy ones. Default false.",
    )
    enable_cross_zone_upgrade: bool = Field(
        default=False,
        description="When true, a batch may mix instances of several zones (the node label "
        "topology.kubernetes.io/zone). Default false: each batch stays in one zone.",
    )
    max_surge: bool = Field(
        default=False,
        description="When true, each batch first creates new instances on the new image and "
        "removes the old ones only once their replacements are healthy, instead of upgrading "
        "in place. Default false.",
    )
    rollback_failed_instances_on_policy_breach: bool = Field(
        default=False,
        description="When true and the upgrade aborts because a limit above was exceeded, "
        "every instance that failed its upgrade is also put back on its previous image. "
        "Default false.",
    )


class RollingUpgradePolicy(AzureRollingUpgradePolicy):
    """How a rolling upgrade proceeds, with Azure's ranges and defaults, and how it respects
    PodDisruptionBudgets. OS image upgrades use every knob; model changes in Rolling mode use
    the batch size."""

    disruption_budget_timeout: str = Field(
        default="PT30M",
        pattern=ISO8601_DURATION,
        description="How long a batch member may wait for its PodDisruptionBudgets to allow "
        "taking it out of service, an ISO 8601 duration. Default PT30M, like AKS's node drain "
        "timeout. Not in Azure's API.",
    )
    on_disruption_budget_timeout: OnDisruptionBudgetTimeout = Field(
        default=OnDisruptionBudgetTimeout.FAULT,
        description="A member still blocked after disruptionBudgetTimeout: Fault (default) "
        "ends the upgrade Faulted, naming the budget; Skip leaves it on its image, labelled "
        "scaleset.dev/upgrade-skipped=disruption-budget. Not in Azure's API.",
    )


TIME_OF_DAY = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Weekday(StrEnum):
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"


class MaintenanceWindow(ApiModel):
    """A recurring time (UTC) in which platform upgrades may start, and start their batches."""

    days: list[Weekday] = Field(
        default_factory=list,
        max_length=7,
        description="Weekdays it opens on, Monday to Sunday; empty: every day.",
    )
    start: str = Field(pattern=TIME_OF_DAY, description="Opening time, HH:MM in UTC.")
    duration: str = Field(
        pattern=ISO8601_DURATION,
        description="How long it stays open, an ISO 8601 duration such as PT4H. A platform "
        "upgrade still running when it closes lets the batch in flight finish and starts its "
        "next batch in the next window.",
    )


class AutomaticUpgradeSchedule(ApiModel):
    """Which versions OS upgrades may adopt and when platform (automatic) upgrades may run.
    An addition to Azure's API."""

    minimum_image_age: str = Field(
        default="PT0S",
        pattern=ISO8601_DURATION,
        description="A version is adopted only this long after it was published (its "
        "publishedDate, else its creation), an ISO 8601 duration. Default PT0S. Holds for "
        "platform upgrades, their switch to a newer version between batches and user starts "
        "alike.",
    )
    maintenance_windows: list[MaintenanceWindow] | None = Field(
        default=None,
        max_length=16,
        description="Platform upgrades start, and start each batch, only inside one of these, "
        "at most 16; empty: any time. User-started upgrades ignore them.",
    )


class UpgradePolicy(ApiModel):
    """How changes of the model reach the instances, and how OS image upgrades run."""

    mode: UpgradeMode = Field(
        default=UpgradeMode.MANUAL,
        description="How model changes (template, data disks, sku, a pinned version) reach "
        "the instances. Manual (default): only when a user updates them. Rolling: in batches "
        "of maxBatchInstancePercent. Automatic: all at once. OS image upgrades run in any mode.",
    )
    automatic_os_upgrade_policy: AutomaticOSUpgradePolicy = Field(
        default_factory=AutomaticOSUpgradePolicy, alias="automaticOSUpgradePolicy"
    )
    rolling_upgrade_policy: RollingUpgradePolicy = Field(default_factory=RollingUpgradePolicy)
    automatic_upgrade_schedule: AutomaticUpgradeSchedule = Field(
        default_factory=AutomaticUpgradeSchedule
    )
    health_timeout: str = Field(
        default="PT5M",
        pattern=ISO8601_DURATION,
        description="How long an upgraded instance may take to become healthy on its new "
        "image before it counts as failed, an ISO 8601 duration. Default PT5M, the 5 minutes "
        "Azure uses.",
    )


class HealthSource(StrEnum):
    POD_READY = "PodReady"
    LOAD_BALANCER = "LoadBalancer"
    APPLICATION_HEALTH = "ApplicationHealth"


class HealthProbe(ApiModel):
    """Where an instance's health comes from; by default the pod's Ready condition."""

    source: HealthSource = Field(
        default=HealthSource.POD_READY,
        description="PodReady (default): the pod's Ready condition. LoadBalancer: ready in "
        "the EndpointSlices of serviceName, like Azure's load balancer probe. "
        "ApplicationHealth: a condition the instance sets itself, like Azure's Application "
        "Health extension.",
    )
    service_name: str | None = Field(
        default=None,
        description="LoadBalancer: the Service whose EndpointSlices list the pod. Required "
        "with that source.",
    )
    condition_type: str | None = Field(
        default=None,
        description="ApplicationHealth: the readiness-gate condition the instance sets "
        "itself. Required with that source.",
    )
    grace_period: str = Field(
        default="PT0S",
        pattern=ISO8601_DURATION,
        description="Time after an instance (re)starts during which being unready counts as "
        "Initializing, not unhealthy; an ISO 8601 duration. Default PT0S.",
    )


class ScaleSetSpec(ApiModel):
    """The scale set model: how many instances, where, on which image, and how changes and
    OS image upgrades reach them."""

    capacity: int = Field(
        default=1,
        ge=0,
        le=10000,
        description="Number of instances wanted, 0 to 10000, default 1. Also the scale "
        "subresource's replicas, so `kubectl scale vmss/NAME --replicas=N` works.",
    )
    location: str = Field(
        min_length=1,
        max_length=63,
        description="Region the scale set lives in, such as westeurope. Only image versions "
        "replicated to it (ImageVersion targetRegions) are used.",
    )
    image_reference: ImageReference
    upgrade_policy: UpgradePolicy = Field(default_factory=UpgradePolicy)
    health_probe: HealthProbe = Field(default_factory=HealthProbe)
    os_container_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="The container of template.spec.containers that plays the OS disk: its "
        "image comes from imageReference. Default: the first container.",
    )
    template: dict[str, Any] = Field(
        description="Pod template of every instance (Azure's virtualMachineProfile). The "
        "operator sets the OS container's image from imageReference; init containers play "
        "the extensions, run in order."
    )
    volume_claim_templates: list[dict[str, Any]] = Field(
        default_factory=list,
        description="PersistentVolumeClaim templates, as in a StatefulSet: the data disks. "
        "Each instance gets its own claims, kept through upgrades, rollbacks and restarts.",
    )
