"""Which colour each instance gets on the page: its state in the current (or last) upgrade.

Pure: a status and the instances in, one `Tile` per instance out. Reads only what the
operator recorded (the run's id lists, the model image) and what the pods say.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from scaleset_operator.models.instance import Instance, UpgradeMark, UpgradePhase
from scaleset_operator.models.status import (
    ResolvedImage,
    RunningStatusCode,
    ScaleSetStatus,
    UpgradeRun,
)
from scaleset_operator.planner.instances import mark_left_by
from scaleset_operator.planner.timefmt import parse_stamp

NO_ZONE = "(no zone)"


class TileState(StrEnum):
    TARGET = "target"
    IN_FLIGHT = "in-flight"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"
    PENDING = "pending"
    PROTECTED = "protected"


@dataclass(frozen=True)
class Tile:
    instance_id: int
    pod: str
    zone: str
    state: TileState
    version: str | None
    ready: bool
    detail: str

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.instance_id,
            "pod": self.pod,
            "zone": self.zone,
            "state": self.state.value,
            "version": self.version,
            "ready": self.ready,
            "detail": self.detail,
        }


def target_image(status: ScaleSetStatus) -> ResolvedImage | None:
    """What "on the target" means: the running upgrade's target, else the model image (after
    a faulted run that is the previous image again)."""
    run = status.upgrade_run
    if run is not None and run.code is RunningStatusCode.ROLLING_FORWARD:
        return run.target
    return status.model_image


def _version(inst: Instance) -> str | None:
    return inst.image_urn.rsplit(":", 1)[-1] if inst.image_urn else None


def _waiting(inst: Instance) -> str:
    reason = inst.os_status.waiting_reason if inst.os_status else None
    return f" ({reason})" if reason else ""


def _run_state(inst: Instance, run: UpgradeRun) -> tuple[TileState, str] | None:
    """The state the run's own records give, which outlive the pods' transient looks."""
    iid = inst.instance_id
    why = run.failure_reasons.get(str(iid), "")
    if iid in run.rolled_back:
        back = run.previous.version if run.previous else "the previous version"
        return TileState.ROLLED_BACK, f"rolled back to {back}" + (f": {why}" if why else "")
    if iid in run.rolling_back:
        return TileState.FAILED, "failed, rolling back" + (f": {why}" if why else "")
    if iid in run.rollback_failed:
        return TileState.FAILED, "rollback failed" + (f": {why}" if why else "")
    if iid in run.failed:
        return TileState.FAILED, "failed" + (f": {why}" if why else "")
    if iid in run.succeeded:
        return None
    if run.batch is not None and iid in run.batch.instance_ids:
        return TileState.IN_FLIGHT, f"batch {run.batch.number}"
    mark = mark_left_by(run, inst)
    if mark is not None and _patched_after(mark, run):
        # The pod carries a patch of this run that the status does not know of yet (pods and
        # ScaleSets reach the page through separate watches): it is in flight all the same,
        # not on target before the run records it as succeeded.
        return TileState.IN_FLIGHT, f"upgrading to {mark.target_version}"
    return None


def _patched_after(mark: UpgradeMark, run: UpgradeRun) -> bool:
    """Whether the running `run`, which left `mark`, upgraded the instance after the latest
    step its status records (the batch in flight began, or the last one ended)."""
    if run.code is not RunningStatusCode.ROLLING_FORWARD:
        return False
    if mark.phase is not UpgradePhase.UPGRADING:
        return False
    known = run.batch.started_at if run.batch is not None else run.last_batch_end
    try:
        return parse_stamp(mark.started_at) > parse_stamp(known or run.start_time)
    except ValueError:
        return False


def tile_of(inst: Instance, status: ScaleSetStatus) -> Tile:
    run = status.upgrade_run
    target = target_image(status)
    state: TileState
    detail: str
    found = _run_state(inst, run) if run is not None else None
    mark = inst.upgrade
    if inst.protected:
        state, detail = TileState.PROTECTED, "protected from scale set actions"
    elif found is not None:
        state, detail = found
    elif target is not None and inst.image_urn == target.urn:
        if inst.ready:
            state, detail = TileState.TARGET, f"on {target.version}"
        else:
            state, detail = TileState.IN_FLIGHT, f"starting on {target.version}{_waiting(inst)}"
    elif mark is not None and mark.phase is UpgradePhase.ROLLING_BACK and not inst.ready:
        state, detail = TileState.FAILED, f"rolling back{_waiting(inst)}"
    else:
        state = TileState.PENDING
        detail = f"on {_version(inst) or 'an unknown version'}"
    if inst.deleting:
        detail += ", being deleted"
    return Tile(
        instance_id=inst.instance_id,
        pod=inst.name,
        zone=inst.zone or NO_ZONE,
        state=state,
        version=_version(inst),
        ready=inst.ready,
        detail=detail,
    )


def tiles_by_zone(instances: Iterable[Instance], status: ScaleSetStatus) -> dict[str, list[Tile]]:
    """Zones in name order, instances by id inside each: the layout stays put as states move."""
    zones: dict[str, list[Tile]] = {}
    for inst in sorted(instances, key=lambda i: i.instance_id):
        tile = tile_of(inst, status)
        zones.setdefault(tile.zone, []).append(tile)
    return dict(sorted(zones.items()))


def state_counts(tiles: Sequence[Tile]) -> dict[str, int]:
    counts = {state.value: 0 for state in TileState}
    for tile in tiles:
        counts[tile.state.value] += 1
    return counts
