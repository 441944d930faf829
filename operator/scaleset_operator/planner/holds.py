"""Why each out-of-date instance is not upgraded yet, and when it may be: `status.outOfDate`.

Read-only: it reports the decisions the other steps made this pass (schedule, gate back-off,
pause, window, budgets) and must never make one of its own.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from scaleset_operator.catalog.resolve import is_newer
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import UpgradeMode
from scaleset_operator.models.status import (
    HoldReason,
    OutOfDate,
    OutOfDateHold,
    ResolvedImage,
    StartedBy,
    UpgradeRun,
)

# The exact checks apply_model and the platform start make; private there, shared on purpose.
from scaleset_operator.planner.between_batches import pause_ends_at
from scaleset_operator.planner.bring_to_model import is_out_of_date as model_change
from scaleset_operator.planner.passstate import PassState
from scaleset_operator.planner.refusal import is_refusal
from scaleset_operator.planner.run_end import run_finished
from scaleset_operator.planner.run_start import platform_start_due
from scaleset_operator.planner.schedule import HoldReason as VersionHold
from scaleset_operator.planner.schedule import UpgradeTarget, upgrade_target
from scaleset_operator.planner.timefmt import stamp

Hold = tuple[HoldReason, datetime | None]
PLATFORM, USER = StartedBy.PLATFORM, StartedBy.USER


def out_of_date(state: PassState, live: dict[int, Instance]) -> OutOfDate | None:
    """Out-of-date instances grouped by their one hold; None when every instance is current."""
    model = state.status.model_image
    if model is None:
        return None
    run = state.status.upgrade_run
    running = run is not None and not run_finished(run)
    obs = state.obs
    target = upgrade_target(
        obs.spec, state.status, obs.catalog, state.now, started_by=PLATFORM, wave=obs.wave
    )
    if run is not None and running:
        latest = run.target.urn
    else:
        # A user's target, because versions count whether or not the platform may start.
        anyone = upgrade_target(obs.spec, state.status, obs.catalog, state.now, started_by=USER)
        latest = f"{model.family}:{_newest(model, anyone)}"
    in_run = _RunHolds(state, run) if run is not None and running else None
    grouped: dict[Hold, list[int]] = defaultdict(list)
    for iid, inst in sorted(live.items()):
        if inst.deleting or (inst.model_hash == state.model_hash and inst.image_urn == latest):
            continue
        if inst.protected:
            hold: Hold = (HoldReason.PROTECTED, None)
        elif in_run is not None:
            hold = in_run.hold(iid)
        else:
            hold = _idle(state, inst, target)
        grouped[hold].append(iid)
    if not grouped:
        return None
    holds = [
        OutOfDateHold(reason=reason, instance_ids=ids, until=stamp(until) if until else None)
        for (reason, until), ids in sorted(grouped.items(), key=lambda kv: kv[1][0])
    ]
    ends = [until for reason, until in grouped if until is not None]
    return OutOfDate(
        count=sum(len(ids) for ids in grouped.values()),
        next_eligible_time=stamp(min(ends)) if ends else None,
        holds=holds,
    )


def _newest(model: ResolvedImage, target: UpgradeTarget) -> str:
    """The version instances should end on: the highest one `latest` may ever pick, those held
    back for their age or quarantine included, so that waiting for them shows."""
    newest = target.image.version if target.image is not None else model.version
    for held in target.held_back:
        if is_newer(held.version, newest):
            newest = held.version
    return newest


class _RunHolds:
    """A running upgrade holds an instance by its batch, its pause, its window or its budget.
    The run's id lists become sets once per pass: they are asked about every instance."""

    def __init__(self, state: PassState, run: UpgradeRun) -> None:
        batch = run.batch
        self.skipped = set(run.skipped)
        self.failed = set(run.failed)
        self.in_batch = set(batch.instance_ids) | state.touched if batch is not None else set()
        self.blocked = (
            {w.instance_id for w in batch.blocked_by_disruption_budget or []}
            if batch is not None
            else set()
        )
        self.between = _between_batches(state, run) if batch is None else None

    def hold(self, iid: int) -> Hold:
        if iid in self.skipped:
            return HoldReason.DISRUPTION_BUDGET, None
        if iid in self.failed:
            return HoldReason.LEFT_BEHIND, None
        if self.between is not None:
            return self.between
        if iid in self.blocked:
            return HoldReason.DISRUPTION_BUDGET, None
        if iid in self.in_batch:
            return HoldReason.UPGRADING, None
        return HoldReason.WAITING_FOR_BATCH, None


def _between_batches(state: PassState, run: UpgradeRun) -> Hold:
    if state.waiting_for_window:
        return HoldReason.OUTSIDE_MAINTENANCE_WINDOW, state.window_opens_at
    resume = pause_ends_at(run)
    if resume is not None and state.now < resume:
        return HoldReason.PAUSE_BETWEEN_BATCHES, resume
    return HoldReason.WAITING_FOR_BATCH, None


def _idle(state: PassState, inst: Instance, target: UpgradeTarget) -> Hold:
    """No upgrade runs: the upgrade mode holds a model change, the schedule an OS upgrade."""
    spec = state.obs.spec
    model = state.status.model_image
    if model is not None and model_change(inst, model, state.model_hash, spec):
        if spec.upgrade_policy.mode is UpgradeMode.MANUAL:
            return HoldReason.MANUAL_UPGRADE_MODE, None
        if inst.instance_id in state.budget_waits:
            return HoldReason.DISRUPTION_BUDGET, None
        if inst.instance_id in state.touched:
            return HoldReason.UPGRADING, None
        return HoldReason.WAITING_FOR_BATCH, None
    if not spec.upgrade_policy.automatic_os_upgrade_policy.enable_automatic_os_upgrade:
        return HoldReason.AUTOMATIC_UPGRADE_DISABLED, None
    if target.image is not None:
        return _platform_start(state, target, target.image)
    if model is not None and inst.os_image != model.container_image:
        # Older than the model with nothing newer to start: only a user's start moves it.
        return HoldReason.LEFT_BEHIND, None
    waves = [h for h in target.held_back if h.reason is VersionHold.WAVE]
    if waves:
        soaked = [h.until for h in waves if h.until is not None]
        return HoldReason.WAITING_FOR_WAVE, min(soaked, default=None)
    ripening = [h.until for h in target.held_back if h.reason is VersionHold.TOO_YOUNG]
    if ripening:
        return HoldReason.YOUNGER_THAN_MINIMUM_AGE, min(u for u in ripening if u is not None)
    return HoldReason.QUARANTINED, None


def _platform_start(state: PassState, target: UpgradeTarget, image: ResolvedImage) -> Hold:
    """A platform upgrade to `image` is due: what it waits for, in the order run_start checks."""
    pending = state.status.pending_upgrade
    if pending is not None and pending.version == image.version:
        due = platform_start_due(state, pending, image)
        if state.now < due:
            last = state.status.upgrade_run
            refused = last is not None and is_refusal(last) and last.target.version == image.version
            return (HoldReason.HEALTH_GATE if refused else HoldReason.UPGRADE_DELAY), due
    if not target.in_window:
        return HoldReason.OUTSIDE_MAINTENANCE_WINDOW, target.window_opens_at
    return HoldReason.WAITING_FOR_BATCH, None
