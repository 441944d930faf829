"""What the planner's steps read from instances: the live set, versions, and the upgrade mark
a run leaves on each instance it changes."""

from __future__ import annotations

from datetime import datetime

from scaleset_operator.models.instance import Instance, UpgradeMark, UpgradePhase
from scaleset_operator.models.status import (
    RecreatedInstance,
    RunningStatusCode,
    ScaleSetStatus,
    UpgradeRun,
)
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


def recreated_mark(
    status: ScaleSetStatus, run: UpgradeRun, instance_id: int, started_at: str
) -> UpgradeMark | None:
    """The upgrade mark of an instance `run` recreates, written on its new pod: the old pod
    and its mark are gone by then, so the image it ran before comes from the status (or is
    the run's previous model image)."""
    if run.previous is None:
        return None
    for came in status.recreated_from:
        if came.run == run.start_time and came.instance_id == instance_id:
            return upgrade_mark(run, came.previous_image, came.previous_version, started_at)
    return upgrade_mark(run, run.previous.container_image, run.previous.version, started_at)


def remember_origin(
    status: ScaleSetStatus, run: UpgradeRun, instance_id: int, mark: UpgradeMark
) -> ScaleSetStatus:
    """The status, knowing what an instance that `run` is about to delete (to recreate it)
    ran before the run, when that is not the run's previous model image. Written before the
    delete goes out, so it survives a crash (state lives in the API, never only in memory)."""
    kept = [
        c for c in status.recreated_from if c.run == run.start_time and c.instance_id != instance_id
    ]
    if run.previous is not None and mark.previous_image != run.previous.container_image:
        came = RecreatedInstance(
            instance_id=instance_id,
            run=run.start_time,
            previous_image=mark.previous_image,
            previous_version=mark.previous_version,
        )
        kept = sorted([*kept, came], key=lambda c: c.instance_id)
    if kept == status.recreated_from:
        return status
    return status.model_copy(update={"recreated_from": kept})


def current_origins(status: ScaleSetStatus) -> list[RecreatedInstance]:
    """The recreated instances' images still needed: those of the run rolling forward."""
    run = status.upgrade_run
    if run is None or run.code is not RunningStatusCode.ROLLING_FORWARD:
        return []
    return [c for c in status.recreated_from if c.run == run.start_time]


def previous_urn(run: UpgradeRun, mark: UpgradeMark, fallback: str | None) -> str:
    """The urn of the version an instance really goes back to, for its annotation: its own
    previous version, not the run's previous model, which differs when instances ran mixed
    versions (Manual mode, instances protected during an earlier upgrade)."""
    if mark.previous_version is not None:
        return f"{(run.previous or run.target).family}:{mark.previous_version}"
    return run.previous.urn if run.previous else (fallback or "")
