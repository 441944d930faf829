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
from scaleset_operator.planner.instances import (
    mark_left_by,
    previous_urn,
    remember_origin,
    upgrade_mark,
    version_of,
)
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
    if inst.model_hash != model_hash or _reimages(state, run):
        # Azure re-runs the extensions in order on an OS upgrade, and init containers run only
        # at pod start: recreate under the same id (same name, same data disks); capacity
        # keeping brings it back on the target with an upgrade mark naming the image it ran.
        _recreate(state, run, inst, mark, DeleteReason.RECREATE_ON_NEW_IMAGE)
        return
    state.act(
        SetInstanceImage(inst.name, inst.uid, run.target.container_image, run.target.urn, mark),
        inst.instance_id,
    )


def roll_back(state: PassState, run: UpgradeRun, inst: Instance, mark: UpgradeMark) -> None:
    """Send an instance back to the image its mark says it ran before."""
    if _reimages(state, run):
        # Going back re-runs the extensions as well; capacity keeping recreates the instance
        # on the image it ran before the run.
        _recreate(state, run, inst, mark, DeleteReason.RECREATE_ON_PREVIOUS_IMAGE)
    else:
        back = mark.model_copy(
            update={"phase": UpgradePhase.ROLLING_BACK, "started_at": state.now_s}
        )
        urn = previous_urn(run, mark, inst.image_urn)
        state.act(
            SetInstanceImage(inst.name, inst.uid, mark.previous_image, urn, back),
            inst.instance_id,
        )
    state.event(
        WARNING,
        EventReason.INSTANCE_ROLLING_BACK,
        f"instance {inst.instance_id} goes back to {mark.previous_image}",
    )


def _recreate(
    state: PassState, run: UpgradeRun, inst: Instance, mark: UpgradeMark, reason: DeleteReason
) -> None:
    """Delete the instance's pod for capacity keeping to bring it back under its id. The old
    pod takes its mark with it, so the status keeps the image the instance ran before the run
    (written before the delete goes out) for the new pod's mark and its rollback."""
    state.status = remember_origin(state.status, run, inst.instance_id, mark)
    state.act(DeleteInstance(inst.name, inst.uid, reason), inst.instance_id)


def _reimages(state: PassState, run: UpgradeRun) -> bool:
    """Whether an instance with extensions changes image by being recreated (a run without a
    previous model image has no mark to give a recreated pod)."""
    return has_extensions(state.obs.spec) and run.previous is not None
