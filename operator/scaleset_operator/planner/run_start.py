"""Starting an OS upgrade run: when a user asks, or when the platform finds a newer version
and its delay, back-off and maintenance window allow."""

from __future__ import annotations

from datetime import datetime

from scaleset_operator.models.status import (
    LastAction,
    PendingUpgrade,
    ResolvedImage,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.actions import EventReason
from scaleset_operator.planner.passstate import NORMAL, WARNING, PassState
from scaleset_operator.planner.refusal import is_refusal
from scaleset_operator.planner.run_end import refusal_retry_at, run_finished
from scaleset_operator.planner.schedule import upgrade_target
from scaleset_operator.planner.timefmt import parse_stamp


def user_start(state: PassState) -> None:
    run = state.status.upgrade_run
    if run is not None and not run_finished(run):
        state.event(
            WARNING, EventReason.ROLLING_UPGRADE_IN_PROGRESS, "an OS upgrade is already running"
        )
        return
    obs = state.obs
    target = upgrade_target(
        obs.spec, state.status, obs.catalog, state.now, started_by=StartedBy.USER
    ).image
    if target is None:
        ref = obs.spec.image_reference
        state.event(
            WARNING,
            EventReason.IMAGE_NOT_FOUND,
            f"cannot start: {ref.describe()} resolves to nothing",
        )
        return
    # Azure: a manually started upgrade never rolls back automatically.
    start_run(state, target, StartedBy.USER, automatic_rollback=False)


def maybe_start_platform_upgrade(state: PassState) -> None:
    """Start a platform run once a newer eligible version has waited out the upgrade delay,
    and any back-off after a refused start, inside a maintenance window."""
    obs, status = state.obs, state.status
    spec = obs.spec
    target = upgrade_target(
        spec, status, obs.catalog, state.now, started_by=StartedBy.PLATFORM, wave=obs.wave
    )
    for ripe in target.ripens_at:
        state.wake(ripe)
    image = target.image
    if image is None:
        if status.pending_upgrade is not None:
            state.status = status.model_copy(update={"pending_upgrade": None})
        return
    pending = _note_pending(state, image)
    due = platform_start_due(state, pending, image)
    if state.now < due:
        state.wake(due)
        return
    if not target.in_window:
        if target.window_opens_at is not None:
            state.wake(target.window_opens_at)
        return
    auto = spec.upgrade_policy.automatic_os_upgrade_policy
    start_run(
        state, image, StartedBy.PLATFORM, automatic_rollback=not auto.disable_automatic_rollback
    )


def _note_pending(state: PassState, image: ResolvedImage) -> PendingUpgrade:
    """The pending upgrade to `image`; a version not pending yet is detected now."""
    status = state.status
    pending = status.pending_upgrade
    if pending is None or pending.version != image.version:
        pending = PendingUpgrade(version=image.version, detected_at=state.now_s)
        state.status = status.model_copy(update={"pending_upgrade": pending})
        state.event(
            NORMAL,
            EventReason.NEW_IMAGE_VERSION,
            f"version {image.version} published; upgrade scheduled",
            version=image.version,
        )
    return pending


def platform_start_due(state: PassState, pending: PendingUpgrade, image: ResolvedImage) -> datetime:
    """The upgrade delay after detection, and the back-off after a refused start of the same
    version."""
    due = parse_stamp(pending.detected_at) + state.obs.settings.automatic_upgrade_delay
    last = state.status.upgrade_run
    if (
        last is not None
        and last.end_time is not None
        and is_refusal(last)
        and last.target.version == image.version
    ):
        due = max(due, refusal_retry_at(state, last.end_time, pending))
    return due


def start_run(
    state: PassState,
    target: ResolvedImage,
    started_by: StartedBy,
    *,
    automatic_rollback: bool,
    rollback_of: ResolvedImage | None = None,
) -> None:
    """A run to `target`; a rollback run names the version it undoes, which is where its
    instances come from whatever the model says now."""
    status = state.status
    run = UpgradeRun(
        started_by=started_by,
        start_time=state.now_s,
        target=target,
        previous=rollback_of or status.model_image,
        rollback_of=rollback_of,
        last_action=LastAction.START,
        last_action_time=state.now_s,
        automatic_rollback=automatic_rollback,
        policy=state.obs.spec.upgrade_policy.rolling_upgrade_policy,
    )
    state.status = status.model_copy(
        update={
            "upgrade_run": run,
            "pending_upgrade": None,
            # Scale-out and recreated instances get the target from now on.
            "model_image": target,
            "current_image_version": target.version,
        }
    )
    undo = f"rollback of {rollback_of.version}: " if rollback_of is not None else ""
    state.event(
        NORMAL,
        EventReason.ROLLING_UPGRADE_STARTED,
        f"{undo}OS upgrade to {target.urn} started by {started_by.value}",
    )
