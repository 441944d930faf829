"""What the planner's steps read from instances: the live set, versions, and the upgrade mark
a run leaves on each instance it changes."""

from __future__ import annotations

from datetime import datetime

from scaleset_operator.models.instance import Instance, UpgradeMark, UpgradePhase
from scaleset_operator.models.status import UpgradeRun
from scaleset_operator.planner.timefmt import parse_stamp


def live_instances(instances: tuple[Instance, ...]) -> dict[int, Instance]:
    """The set's own instances by id; surge instances stand apart until they are promoted."""
    return {i.instance_id: i for i in instances if i.surge_for is None}


def id_list(instances: list[Instance]) -> str:
    return ", ".join(str(i.instance_id) for i in instances)


def version_of(inst: Instance) -> str | None:
    return inst.image_urn.rsplit(":", 1)[-1] if inst.image_urn else None


def creation_time(inst: Instance) -> datetime | None:
    return parse_stamp(inst.created_at) if inst.created_at else None


def upgrade_mark(
    run: UpgradeRun, previous_image: str, previous_version: str | None, started_at: str
) -> UpgradeMark:
    """What an instance upgraded by `run` carries: where it came from and since when."""
    return UpgradeMark(
        run=run.start_time,
        phase=UpgradePhase.UPGRADING,
        previous_image=previous_image,
        previous_version=previous_version,
        target_version=run.target.version,
        started_at=started_at,
    )


def mark_left_by(run: UpgradeRun, inst: Instance) -> UpgradeMark | None:
    """The instance's upgrade mark if `run` wrote it; a mark from an earlier run is stale."""
    mark = inst.upgrade
    return mark if mark is not None and mark.run == run.start_time else None
