"""What the controller should do to the world, one small idempotent step each."""

from __future__ import annotations

from dataclasses import dataclass

from scaleset_operator.models.instance import UpgradeMark


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
    reason: str


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
class EmitEvent:
    type: str
    reason: str
    message: str


Action = CreateInstance | DeleteInstance | SetInstanceImage | PromoteInstance
