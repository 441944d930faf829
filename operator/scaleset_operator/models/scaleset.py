"""The ScaleSet resource: spec (the scale set model and its upgrade policy) and status."""

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


class UpgradeMode(StrEnum):
    MANUAL = "Manual"
    ROLLING = "Rolling"
    AUTOMATIC = "Automatic"


class ImageReference(ApiModel):
    """A platform image (publisher/offer/sku) or a gallery image (gallery/image), plus a version."""

    publisher: str | None = Field(default=None, min_length=1, max_length=253)
    offer: str | None = Field(default=None, min_length=1, max_length=253)
    sku: str | None = Field(default=None, min_length=1, max_length=253)
    gallery: str | None = Field(default=None, min_length=1, max_length=253)
    image: str | None = Field(default=None, min_length=1, max_length=253)
    version: str = Field(
        default=LATEST,
        pattern=r"^(latest|[0-9]{1,9}(\.[0-9]{1,9}){0,3})$",
        description="`latest` or an exact dotted numeric version such as 1.2.3.",
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

    def describe(self) -> str:
        if self.is_gallery:
            return f"{self.gallery}/{self.image}:{self.version}"
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"


class AutomaticOSUpgradePolicy(ApiModel):
    enable_automatic_os_upgrade: bool = Field(default=False, alias="enableAutomaticOSUpgrade")
    disable_automatic_rollback: bool = False


class RollingUpgradePolicy(ApiModel):
    """Azure's rolling upgrade knobs, with Azure's defaults."""

    max_batch_instance_percent: int = Field(default=20, ge=5, le=100)
    max_unhealthy_instance_percent: int = Field(default=20, ge=5, le=100)
    max_unhealthy_upgraded_instance_percent: int = Field(default=20, ge=0, le=100)
    pause_time_between_batches: str = Field(default="PT0S", pattern=ISO8601_DURATION)
    prioritize_unhealthy_instances: bool = False
    enable_cross_zone_upgrade: bool = False
    max_surge: bool = False
    rollback_failed_instances_on_policy_breach: bool = False


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
    """A recurring time (UTC) in which platform upgrades may start."""

    days: list[Weekday] = Field(
        default_factory=list, max_length=7, description="Days it opens on; empty: every day."
    )
    start: str = Field(pattern=TIME_OF_DAY, description="Opening time, HH:MM in UTC.")
    duration: str = Field(pattern=ISO8601_DURATION, description="How long it stays open.")


class AutomaticUpgradeSchedule(ApiModel):
    """When platform (automatic) OS upgrades may begin; user-started ones ignore it."""

    minimum_image_age: str = Field(
        default="PT0S",
        pattern=ISO8601_DURATION,
        description="A version is adopted only this long after it was published.",
    )
    maintenance_windows: list[MaintenanceWindow] | None = Field(
        default=None,
        max_length=16,
        description="Platform upgrades start only inside one of these; empty: any time.",
    )


class UpgradePolicy(ApiModel):
    mode: UpgradeMode = UpgradeMode.MANUAL
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
        description="How long an upgraded instance may take to become healthy (Azure: 5 min).",
    )


class HealthSource(StrEnum):
    POD_READY = "PodReady"
    LOAD_BALANCER = "LoadBalancer"
    APPLICATION_HEALTH = "ApplicationHealth"


class HealthProbe(ApiModel):
    """Where an instance's health comes from; by default the pod's Ready condition."""

    source: HealthSource = HealthSource.POD_READY
    service_name: str | None = Field(
        default=None, description="LoadBalancer: the Service whose EndpointSlices list the pod."
    )
    condition_type: str | None = Field(
        default=None,
        description="ApplicationHealth: the readiness-gate condition the instance sets itself.",
    )
    grace_period: str = Field(
        default="PT0S",
        pattern=ISO8601_DURATION,
        description="Time after (re)start during which an unready instance is Initializing.",
    )


class ScaleSetSpec(ApiModel):
    capacity: int = Field(default=1, ge=0, le=10000)
    location: str = Field(min_length=1, max_length=63)
    image_reference: ImageReference
    upgrade_policy: UpgradePolicy = Field(default_factory=UpgradePolicy)
    health_probe: HealthProbe = Field(default_factory=HealthProbe)
    os_container_name: str | None = Field(default=None, min_length=1, max_length=63)
    template: dict[str, Any]
    volume_claim_templates: list[dict[str, Any]] = Field(default_factory=list)
