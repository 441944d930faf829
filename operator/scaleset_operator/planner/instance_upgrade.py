"""Moving one instance to a run's target image, or back to the image it ran before: in place,
or by recreating it when its extensions must run again."""

from __future__ import annotations

from scaleset_operator.models.instance import Instance, UpgradeMark, UpgradePhase
from scaleset_operator.models.status import UpgradeRun
from scaleset_operator.planner.actions import (
    DeleteInstance,
    DeleteReason,
    EventReason,
    SetInstanceImage,
)
from scaleset_operator.planner.instances import mark_left_by, upgrade_mark, version_of
from scaleset_operator.planner.model_hash import has_extensions
from scaleset_operator.planner.passstate import WARNING, PassState


def patch_to_target(state: PassState, run: UpgradeRun, inst: Instance) -> None:
    """Start upgrading an instance; its mark keeps the image it came from."""
    existing = mark_left_by(run, inst)
    mark = upgrade_mark(
        run,
        existing.previous_image if existing else inst.os_image,
        existing.previous_version if existing else version_of(inst),
        state.now_s,
    )
    model_hash = state.status.model_hash
    if inst.model_hash != model_hash or _reimages(state, run, mark.previous_image):
        # Azure re-runs the extensions in order on an OS upgrade, and init containers run only
        # at pod start: recreate under the same id (same name, same data disks); capacity
        # keeping brings it back on the target with an upgrade mark.
        state.act(
            DeleteInstance(inst.name, inst.uid, DeleteReason.RECREATE_ON_NEW_IMAGE),
            inst.instance_id,
        )
        return
    state.act(
        SetInstanceImage(inst.name, inst.uid, run.target.container_image, run.target.urn, mark),
        inst.instance_id,
    )


def roll_back(state: PassState, run: UpgradeRun, inst: Instance, mark: UpgradeMark) -> None:
    """Send an instance back to the image its mark says it ran before."""
    if _reimages(state, run, mark.previous_image):
        # Going back re-runs the extensions as well; capacity keeping recreates the instance
        # on the run's previous image.
        reason = DeleteReason.RECREATE_ON_PREVIOUS_IMAGE
        state.act(DeleteInstance(inst.name, inst.uid, reason), inst.instance_id)
    else:
        back = mark.model_copy(
            update={"phase": UpgradePhase.ROLLING_BACK, "started_at": state.now_s}
        )
        urn = _urn_back(run, inst, mark)
        state.act(
            SetInstanceImage(inst.name, inst.uid, mark.previous_image, urn, back),
            inst.instance_id,
        )
    state.event(
        WARNING,
        EventReason.INSTANCE_ROLLING_BACK,
        f"instance {inst.instance_id} goes back to {mark.previous_image}",
    )


def _reimages(state: PassState, run: UpgradeRun, previous_image: str) -> bool:
    """Whether an instance with extensions changes image by being recreated.

    A recreated pod's mark can only name the run's previous image (the old pod and its mark
    are gone), so an instance that came from another image (mixed versions after Manual mode
    or protection) keeps the in-place patch: rolling back to the image it really ran matters
    more than re-running its extensions.
    """
    if not has_extensions(state.obs.spec) or run.previous is None:
        return False
    return previous_image == run.previous.container_image


def _urn_back(run: UpgradeRun, inst: Instance, mark: UpgradeMark) -> str:
    """The urn of the version the instance really goes back to, for its annotation: its own
    previous version, not the run's previous model, which differs when instances ran mixed
    versions (Manual mode, instances protected during an earlier upgrade)."""
    if mark.previous_version is not None:
        return f"{(run.previous or run.target).family}:{mark.previous_version}"
    return run.previous.urn if run.previous else (inst.image_urn or "")
