"""The planner: observe -> plan. One pass decides one step and the whole new status.

Order of a pass: resolve the model image, keep the instance count, start/advance/finish the
OS upgrade, bring out-of-date instances to the model (per upgrade mode), then summarise status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scaleset_operator.catalog.resolve import is_newer, pin, resolve
from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.instance import Instance, Request, UpgradeMark, UpgradePhase
from scaleset_operator.models.scaleset import LATEST, ScaleSetSpec, UpgradeMode
from scaleset_operator.models.status import (
    ApiError,
    ApiErrorBase,
    Batch,
    Condition,
    ErrorCode,
    PendingUpgrade,
    ResolvedImage,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner import conditions as cond
from scaleset_operator.planner.actions import (
    Action,
    CreateInstance,
    DeleteInstance,
    EmitEvent,
    PromoteInstance,
    SetInstanceImage,
)
from scaleset_operator.planner.batches import batch_size, exceeds, next_batch
from scaleset_operator.planner.gate import health_gate
from scaleset_operator.planner.health import HealthVerdict, counts_as_unhealthy, verdict
from scaleset_operator.planner.history import (
    failure_details,
    record_history,
    rolling_upgrade_status,
)
from scaleset_operator.planner.model import has_extensions, model_hash
from scaleset_operator.planner.observed import Observed, Plan
from scaleset_operator.planner.refusal import is_refusal, retry_at
from scaleset_operator.planner.schedule import upgrade_target, window_state
from scaleset_operator.planner.timefmt import parse_stamp, stamp

NORMAL = "Normal"
WARNING = "Warning"
_FAULTED_MEMORY = 20
_REQUEST_MEMORY = 20


@dataclass
class _Pass:
    """Scratch state of one planning pass."""

    obs: Observed
    status: ScaleSetStatus
    actions: list[Action] = field(default_factory=list)
    events: list[EmitEvent] = field(default_factory=list)
    wake_at: list[datetime] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    # A platform run held between batches by a closed maintenance window, and when the next
    # one opens (None only for windows that never open).
    waiting_for_window: bool = False
    window_opens_at: datetime | None = None

    @property
    def now(self) -> datetime:
        return self.obs.now

    @property
    def now_s(self) -> str:
        return stamp(self.obs.now)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(EmitEvent(type_, reason, message))

    def act(self, action: Action, instance_id: int | None = None) -> None:
        self.actions.append(action)
        if instance_id is not None:
            self.touched.add(instance_id)

    def wake(self, at: datetime) -> None:
        self.wake_at.append(at)


def plan(obs: Observed) -> Plan:
    work = _Pass(obs=obs, status=obs.status)
    spec = obs.spec
    mhash = model_hash(spec)
    model = _resolve_model(work, mhash)
    live = _live_instances(obs.instances)
    if model is not None:
        _keep_capacity(work, model, live)
        _handle_requests(work, model)
        _advance_upgrade(work, live)
        if work.status.upgrade_run is None or _run_finished(work.status.upgrade_run):
            _apply_model(work, mhash, live)
        moved = work.status.model_image
        if moved is not None and moved.urn != model.urn:
            # An upgrade started or rolled back in this pass: say so now, not one pass later.
            work.status = work.status.model_copy(update={"conditions": _resolved(work, moved)})
    _summarise(work, mhash, live)
    requeue = None
    if work.wake_at:
        soonest = min(work.wake_at)
        requeue = max(0.05, (soonest - obs.now).total_seconds())
    return Plan(tuple(work.actions), work.status, tuple(work.events), requeue)


# --- the model image ------------------------------------------------------------------------


def _resolve_model(work: _Pass, mhash: str) -> ResolvedImage | None:
    """The image new instances get; `latest` moves only through OS upgrades once pinned."""
    obs, status = work.obs, work.status
    ref = obs.spec.image_reference
    current = status.model_image
    same_family = current is not None and _ref_matches(current, obs.spec)
    pinned_ok = ref.version == LATEST or (current is not None and current.version == ref.version)
    if current is not None and same_family and pinned_ok:
        model = current
    else:
        entry = resolve(obs.catalog, ref, obs.spec.location, skip_versions=status.faulted_versions)
        if entry is None:
            keep = f"; instances keep {current.urn}" if current else ""
            work.status = status.model_copy(
                update={
                    "conditions": cond.set_condition(
                        status.conditions,
                        type_=cond.IMAGE_RESOLVED,
                        status=False,
                        reason="ImageNotFound",
                        message=f"no ImageVersion matches {ref.describe()} in location "
                        f"{obs.spec.location} (published, not excluded, replicated there)" + keep,
                        now=work.now_s,
                        generation=obs.generation,
                    )
                }
            )
            return current
        model = pin(entry, ref)
        if current is not None and model.urn != current.urn:
            work.event(NORMAL, "ModelImageChanged", f"model image {current.urn} -> {model.urn}")
    work.status = work.status.model_copy(
        update={
            "model_image": model,
            "model_hash": mhash,
            "current_image_version": model.version,
            "conditions": _resolved(work, model),
        }
    )
    return model


def _resolved(work: _Pass, model: ResolvedImage) -> list[Condition]:
    """The conditions with ImageResolved saying what the image reference resolves to."""
    ref = work.obs.spec.image_reference
    return cond.set_condition(
        work.status.conditions,
        type_=cond.IMAGE_RESOLVED,
        status=True,
        reason="Resolved",
        message=f"{ref.describe()} resolves to {model.urn} ({model.container_image})",
        now=work.now_s,
        generation=work.obs.generation,
    )


def _ref_matches(current: ResolvedImage, spec: ScaleSetSpec) -> bool:
    ref = spec.image_reference
    return (current.publisher, current.offer, current.sku, current.gallery, current.image) == (
        ref.publisher,
        ref.offer,
        ref.sku,
        ref.gallery,
        ref.image,
    )


# --- instances -------------------------------------------------------------------------------


def _live_instances(instances: tuple[Instance, ...]) -> dict[int, Instance]:
    return {i.instance_id: i for i in instances if i.surge_for is None}


def _keep_capacity(work: _Pass, model: ResolvedImage, live: dict[int, Instance]) -> None:
    """Recreate failed or missing instances under their own ids, scale out with the lowest
    free ids, scale in from the highest ids, never removing a protected instance."""
    capacity = work.obs.spec.capacity
    run = work.status.upgrade_run
    active = [i for i in live.values() if not i.deleting]
    for inst in active:
        if inst.phase in ("Failed", "Succeeded") and not inst.protected:
            work.act(
                DeleteInstance(inst.name, inst.uid, f"instance {inst.phase.lower()}"),
                inst.instance_id,
            )
            work.event(
                WARNING,
                "InstanceRecreated",
                f"instance {inst.instance_id} {inst.phase.lower()}; recreating",
            )
    # A surge instance that is taking over stands for the original it replaces.
    standing_in = {
        i.surge_for for i in work.obs.instances if i.surge_for is not None and not i.deleting
    }
    leaving = [i for i in live.values() if i.deleting]
    terminating = [i for i in leaving if i.instance_id not in standing_in]
    wanted = capacity - len(active) - (len(leaving) - len(terminating))
    returning: list[int] = []
    if wanted > 0:
        returning = _create_missing(work, model, run, terminating, wanted)
    elif wanted < 0:
        _scale_in(work, active, -wanted)
    if returning != work.status.returning_instances:
        work.status = work.status.model_copy(update={"returning_instances": returning})


def _create_missing(
    work: _Pass,
    model: ResolvedImage,
    run: UpgradeRun | None,
    terminating: list[Instance],
    wanted: int,
) -> list[int]:
    """Create `wanted` instances; return the ids to bring back once their pods are gone.

    A deleted or failed instance comes back under its own id, so its name and its data disks
    stay; two pods cannot share a name, so that waits until the old pod is gone, but no longer
    than its grace period and a little slack (a pod stuck on a lost node would hold capacity).
    """
    awaited = []
    for inst in terminating:
        due = _termination_overdue_at(inst)
        if due is None or work.now < due:
            awaited.append(inst.instance_id)
            if due is not None:
                work.wake(due)
    taken = {i.instance_id for i in work.obs.instances}
    remembered = [iid for iid in work.status.returning_instances if iid not in taken]
    reserved = taken | set(remembered)
    lowest = (i for i in range(len(reserved) + wanted + 1) if i not in reserved)
    count = max(0, wanted - len(awaited))
    ids = remembered[:count]
    ids += [next(lowest) for _ in range(count - len(ids))]
    for iid in ids:
        work.act(_recreation(run, iid, model, work.now_s), iid)
    if ids:
        work.event(NORMAL, "ScaledOut", f"creating {len(ids)} instance(s) on {model.urn}")
    return sorted(awaited)


_TERMINATION_SLACK = timedelta(seconds=30)


def _termination_overdue_at(inst: Instance) -> datetime | None:
    if inst.deletion_due is None:
        return None
    return parse_stamp(inst.deletion_due) + _TERMINATION_SLACK


def _scale_in(work: _Pass, active: list[Instance], excess: int) -> None:
    removable = sorted(
        (i for i in active if not i.protected), key=lambda i: i.instance_id, reverse=True
    )
    for inst in removable[:excess]:
        work.act(DeleteInstance(inst.name, inst.uid, "scale in"), inst.instance_id)
    if len(removable) < excess:
        work.event(
            WARNING,
            "ScaleInLimited",
            f"{excess - len(removable)} protected instance(s) keep the set above capacity",
        )
    if removable[:excess]:
        work.event(NORMAL, "ScaledIn", f"removing instances {_ids(removable[:excess])}")


def _mark_for_new(run: UpgradeRun | None, iid: int, now: str) -> UpgradeMark | None:
    """A batch member recreated mid-upgrade still carries what to roll back to."""
    if run is None or run.batch is None or iid not in run.batch.instance_ids:
        return None
    if run.code is not RunningStatusCode.ROLLING_FORWARD or run.previous is None:
        return None
    return _upgrade_mark(run, run.previous.container_image, run.previous.version, now)


def _recreation(run: UpgradeRun | None, iid: int, model: ResolvedImage, now: str) -> CreateInstance:
    """A batch member recreated mid-run comes back on the target with its upgrade mark; one
    that is rolling back (deleted so that its extensions run again, or lost meanwhile) comes
    back on the run's previous image with a rollback mark, judged like an in-place rollback."""
    mark = _mark_for_new(run, iid, now)
    if mark is None or run is None or run.previous is None or iid not in run.rolling_back:
        return CreateInstance(iid, model.container_image, model.urn, mark)
    back = mark.model_copy(update={"phase": UpgradePhase.ROLLING_BACK})
    return CreateInstance(iid, run.previous.container_image, run.previous.urn, back)


def _upgrade_mark(
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


def _ids(instances: list[Instance]) -> str:
    return ", ".join(str(i.instance_id) for i in instances)


def _out_of_date(inst: Instance, model: ResolvedImage, mhash: str, spec: ScaleSetSpec) -> bool:
    if inst.model_hash != mhash:
        return True
    family = (inst.image_urn or "").rsplit(":", 1)[0] if inst.image_urn else None
    if family != model.family:
        return True
    # A pinned version is part of the model; with `latest` only OS upgrades move the image.
    return spec.image_reference.version != LATEST and inst.image_urn != model.urn


def _bring_to_model(work: _Pass, inst: Instance, model: ResolvedImage, mhash: str) -> None:
    # A new image for an instance with extensions is a reimage too: they must run again.
    if inst.model_hash == mhash and not has_extensions(work.obs.spec):
        work.act(
            SetInstanceImage(inst.name, inst.uid, model.container_image, model.urn, None),
            inst.instance_id,
        )
    else:
        work.act(
            DeleteInstance(inst.name, inst.uid, "recreate on the latest model"), inst.instance_id
        )


def _apply_model(work: _Pass, mhash: str, live: dict[int, Instance]) -> None:
    """Rolling and Automatic modes carry model changes to instances; Manual waits for the user."""
    spec = work.obs.spec
    model = work.status.model_image
    if model is None or spec.upgrade_policy.mode is UpgradeMode.MANUAL:
        return
    stale = [
        i
        for i in sorted(live.values(), key=lambda i: i.instance_id)
        if not i.deleting
        and not i.protected
        and i.instance_id not in work.touched
        and _out_of_date(i, model, mhash, spec)
    ]
    if not stale:
        return
    if spec.upgrade_policy.mode is UpgradeMode.AUTOMATIC:
        chosen = stale
    else:
        total = max(spec.capacity, 1)
        probe = spec.health_probe
        busy = sum(
            1
            for i in live.values()
            if i.deleting
            or (not _out_of_date(i, model, mhash, spec) and not verdict(i, probe, work.now).healthy)
        )
        room = batch_size(total, spec.upgrade_policy.rolling_upgrade_policy) - busy
        chosen = stale[: max(0, room)]
    for inst in chosen:
        _bring_to_model(work, inst, model, mhash)
    if chosen:
        work.event(NORMAL, "ModelUpdate", f"bringing instances {_ids(chosen)} to the latest model")


# --- user requests ---------------------------------------------------------------------------


def _handle_requests(work: _Pass, model: ResolvedImage) -> None:
    handled = list(work.status.handled_requests)
    for req in sorted(work.obs.requests, key=lambda r: (r.at, r.action == "cancel", r.id)):
        if req.id in handled:
            continue
        handled.append(req.id)
        if req.action == "start":
            _user_start(work)
        elif req.action == "cancel":
            _user_cancel(work)
        elif req.action == "update-instances":
            _update_instances(work, req, model)
        elif req.action == "clear-quarantine":
            _clear_quarantine(work, req)
    work.status = work.status.model_copy(update={"handled_requests": handled[-_REQUEST_MEMORY:]})


def _update_instances(work: _Pass, req: Request, model: ResolvedImage) -> None:
    mhash = work.status.model_hash or ""
    wanted_all = "*" in req.instance_ids
    wanted = {int(x) for x in req.instance_ids if x.isdigit()}
    live = _live_instances(work.obs.instances)
    chosen = []
    for iid, inst in sorted(live.items()):
        if not (wanted_all or iid in wanted) or inst.deleting or inst.protected:
            continue
        if iid in work.touched:
            continue
        if inst.model_hash == mhash and inst.image_urn == model.urn:
            continue
        _bring_to_model(work, inst, model, mhash)
        chosen.append(inst)
    unknown = sorted(wanted - set(live))
    if unknown:
        work.event(WARNING, "UnknownInstances", f"update-instances: no instances {unknown}")
    work.event(
        NORMAL,
        "UpdateInstances",
        f"bringing instances {_ids(chosen) or '(none needed)'} to the latest model {model.urn}",
    )


def _clear_quarantine(work: _Pass, req: Request) -> None:
    """A version quarantined by a faulted upgrade becomes eligible for `latest` again."""
    current = work.status.faulted_versions
    cleared = current if not req.versions or "*" in req.versions else req.versions
    kept = [v for v in current if v not in cleared]
    work.status = work.status.model_copy(update={"faulted_versions": kept})
    done = [v for v in current if v not in kept]
    work.event(
        NORMAL,
        "QuarantineCleared",
        f"versions {', '.join(done)} may be picked as latest again"
        if done
        else "clear-quarantine: no quarantined version matched",
    )


def _user_start(work: _Pass) -> None:
    run = work.status.upgrade_run
    if run is not None and not _run_finished(run):
        work.event(WARNING, "RollingUpgradeInProgress", "an OS upgrade is already running")
        return
    obs = work.obs
    target = upgrade_target(
        obs.spec, work.status, obs.catalog, work.now, started_by=StartedBy.USER
    ).image
    if target is None:
        ref = obs.spec.image_reference
        work.event(WARNING, "ImageNotFound", f"cannot start: {ref.describe()} resolves to nothing")
        return
    # Azure: a manually started upgrade never rolls back automatically.
    _start_run(work, target, StartedBy.USER, automatic_rollback=False)


def _user_cancel(work: _Pass) -> None:
    run = work.status.upgrade_run
    if run is None or _run_finished(run):
        work.event(WARNING, "NoRollingUpgrade", "cancel: no OS upgrade is running")
        return
    work.status = work.status.model_copy(
        update={
            "upgrade_run": run.model_copy(
                update={"last_action": "Cancel", "last_action_time": work.now_s}
            )
        }
    )
    work.event(
        NORMAL, "RollingUpgradeCancelling", "cancel requested; in-flight instances settle first"
    )


# --- the OS upgrade --------------------------------------------------------------------------


def _run_finished(run: UpgradeRun) -> bool:
    return run.code is not RunningStatusCode.ROLLING_FORWARD


def _start_run(
    work: _Pass, target: ResolvedImage, started_by: StartedBy, *, automatic_rollback: bool
) -> None:
    status = work.status
    run = UpgradeRun(
        started_by=started_by,
        start_time=work.now_s,
        target=target,
        previous=status.model_image,
        last_action="Start",
        last_action_time=work.now_s,
        automatic_rollback=automatic_rollback,
        policy=work.obs.spec.upgrade_policy.rolling_upgrade_policy,
    )
    work.status = status.model_copy(
        update={
            "upgrade_run": run,
            "pending_upgrade": None,
            # Scale-out and recreated instances get the target from now on.
            "model_image": target,
            "current_image_version": target.version,
        }
    )
    work.event(
        NORMAL,
        "RollingUpgradeStarted",
        f"OS upgrade to {target.urn} started by {started_by.value}",
    )


def _maybe_start_platform_upgrade(work: _Pass) -> None:
    obs, status = work.obs, work.status
    spec = obs.spec
    target = upgrade_target(spec, status, obs.catalog, work.now, started_by=StartedBy.PLATFORM)
    for ripe in target.ripens_at:
        work.wake(ripe)
    image = target.image
    if image is None:
        if status.pending_upgrade is not None:
            work.status = status.model_copy(update={"pending_upgrade": None})
        return
    pending = status.pending_upgrade
    if pending is None or pending.version != image.version:
        pending = PendingUpgrade(version=image.version, detected_at=work.now_s)
        work.status = status.model_copy(update={"pending_upgrade": pending})
        work.event(
            NORMAL, "NewImageVersion", f"version {image.version} published; upgrade scheduled"
        )
    due = parse_stamp(pending.detected_at) + obs.settings.automatic_upgrade_delay
    last = status.upgrade_run
    if (
        last is not None
        and last.end_time is not None
        and is_refusal(last)
        and last.target.version == image.version
    ):
        due = max(due, _retry_at(work, last.end_time, pending))
    if work.now < due:
        work.wake(due)
        return
    if not target.in_window:
        if target.window_opens_at is not None:
            work.wake(target.window_opens_at)
        return
    auto = spec.upgrade_policy.automatic_os_upgrade_policy
    _start_run(
        work, image, StartedBy.PLATFORM, automatic_rollback=not auto.disable_automatic_rollback
    )


def _advance_upgrade(work: _Pass, live: dict[int, Instance]) -> None:
    _tidy_surges(work)
    run = work.status.upgrade_run
    if run is None or _run_finished(run):
        _maybe_start_platform_upgrade(work)
        run = work.status.upgrade_run
        if run is None or _run_finished(run):
            return
    if run.batch is not None and run.batch.surge_ids is not None:
        run = _settle_surge_batch(work, run, live)
    else:
        run = _settle_batch(work, run, live)
    if run.batch is None and run.code is RunningStatusCode.ROLLING_FORWARD:
        run = _between_batches(work, run, live)
    work.status = work.status.model_copy(update={"upgrade_run": run})


def _health_timeout(work: _Pass) -> timedelta:
    return parse_duration(work.obs.spec.upgrade_policy.health_timeout)


def _grace(work: _Pass) -> timedelta:
    return parse_duration(work.obs.spec.health_probe.grace_period)


def _mark(run: UpgradeRun, inst: Instance) -> UpgradeMark | None:
    mark = inst.upgrade
    return mark if mark is not None and mark.run == run.start_time else None


def _settle_batch(work: _Pass, run: UpgradeRun, live: dict[int, Instance]) -> UpgradeRun:
    """Steps 3-4: patch batch members, wait for health, roll back what fails."""
    batch = run.batch
    if batch is None:
        return _finish_stopping(work, run)
    probe = work.obs.spec.health_probe
    timeout = _health_timeout(work)
    grace = _grace(work)
    succeeded, failed = list(run.succeeded), list(run.failed)
    rolled_back, rollback_failed = list(run.rolled_back), list(run.rollback_failed)
    rolling_back = list(run.rolling_back)
    reasons = dict(run.failure_reasons)
    capacity_ids = _kept_ids(work, live)
    members = [i for i in batch.instance_ids if i in capacity_ids]
    for iid in members:
        if iid in succeeded or (iid in failed and iid not in rolling_back):
            continue
        inst = live.get(iid)
        if inst is None or inst.deleting:
            continue  # recreated by capacity keeping, on the target and with a mark
        mark = _mark(run, inst)
        if iid in rolling_back:
            if mark is None:
                rolling_back.remove(iid)
                rollback_failed.append(iid)
                continue
            if inst.os_image != mark.previous_image or mark.phase is not UpgradePhase.ROLLING_BACK:
                _roll_back(work, run, inst, mark)
                continue
            v = verdict(
                inst,
                probe,
                work.now,
                expected_image=mark.previous_image,
                since=parse_stamp(mark.started_at),
                grace=grace,
            )
            deadline = parse_stamp(mark.started_at) + timeout
            if v.healthy:
                rolling_back.remove(iid)
                rolled_back.append(iid)
                work.event(
                    NORMAL,
                    "InstanceRolledBack",
                    f"instance {iid} is healthy on {mark.previous_image}",
                )
            elif work.now >= deadline or (v.fail_fast and work.obs.settings.fail_fast):
                rolling_back.remove(iid)
                rollback_failed.append(iid)
                work.event(
                    WARNING,
                    "RollbackFailed",
                    f"instance {iid} did not recover on {mark.previous_image}: {v.reason}",
                )
            else:
                work.wake(deadline)
            continue
        if inst.os_image != run.target.container_image or mark is None:
            if inst.protected:
                continue
            if inst.os_image == run.target.container_image and mark is None:
                # Created on the target (scale-out or recreation): judge it from its creation.
                since = parse_stamp(inst.created_at) if inst.created_at else work.now
                mark = _upgrade_mark(
                    run,
                    run.previous.container_image if run.previous else inst.os_image,
                    run.previous.version if run.previous else None,
                    stamp(since),
                )
                own = inst.upgrade
                if own is not None and own.target_version == run.target.version:
                    # Patched by a pass whose status write was lost: its own mark knows
                    # what it ran before and when its upgrade began.
                    mark = own.model_copy(update={"run": run.start_time})
            else:
                _patch_to_target(work, run, inst)
                continue
        v = verdict(
            inst,
            probe,
            work.now,
            expected_image=run.target.container_image,
            since=parse_stamp(mark.started_at),
            grace=grace,
        )
        deadline = parse_stamp(mark.started_at) + timeout
        if v.healthy:
            succeeded.append(iid)
        elif work.now >= deadline or (v.fail_fast and work.obs.settings.fail_fast):
            failed.append(iid)
            reasons[str(iid)] = v.reason if work.now < deadline else f"HealthTimeout ({v.reason})"
            work.event(
                WARNING,
                "InstanceUpgradeFailed",
                f"instance {iid} unhealthy on {run.target.urn}: {reasons[str(iid)]}",
            )
            if run.automatic_rollback and mark.previous_image != run.target.container_image:
                rolling_back.append(iid)
                _roll_back(work, run, inst, mark)
        else:
            work.wake(deadline)
    run = run.model_copy(
        update={
            "succeeded": succeeded,
            "failed": failed,
            "rolled_back": rolled_back,
            "rollback_failed": rollback_failed,
            "rolling_back": rolling_back,
            "failure_reasons": reasons,
        }
    )
    open_members = [
        i for i in members if i not in succeeded and (i not in failed or i in rolling_back)
    ]
    open_members = [
        i for i in open_members if not (i in live and live[i].protected and i not in failed)
    ]
    if open_members:
        return run
    return _close_batch(work, run, batch.number, live)


def _close_batch(
    work: _Pass, run: UpgradeRun, number: int, live: dict[int, Instance]
) -> UpgradeRun:
    """Step 5 after every batch, in place or surge: abort above the upgraded-unhealthy share."""
    run = run.model_copy(
        update={"batch": None, "batches_done": run.batches_done + 1, "last_batch_end": work.now_s}
    )
    succeeded, failed = len(run.succeeded), len(run.failed)
    work.event(
        NORMAL,
        "BatchCompleted",
        f"batch {number} done: {succeeded} upgraded, {failed} failed so far",
    )
    upgraded = succeeded + failed
    limit = run.policy.max_unhealthy_upgraded_instance_percent
    relapsed = _unhealthy_after_passing(work, run, live)
    unhealthy = failed + len(relapsed)
    if run.stop_reason is None and exceeds(unhealthy, upgraded, limit):
        later = f" ({len(relapsed)} of them after passing their health check)" if relapsed else ""
        run = _stop(
            work,
            run,
            ErrorCode.UPGRADED_UNHEALTHY,
            f"{unhealthy} of {upgraded} upgraded instances are unhealthy{later}, above "
            f"maxUnhealthyUpgradedInstancePercent {limit}%",
            also=relapsed,
        )
    return _finish_stopping(work, run)


def _unhealthy_after_passing(
    work: _Pass, run: UpgradeRun, live: dict[int, Instance]
) -> list[ApiErrorBase]:
    """Upgraded instances that passed their health check and are unhealthy now.

    Azure stops when too many upgraded instances *become* unhealthy, so an instance that broke
    after its check counts too. It stays counted as upgraded (it did run the new image
    healthily) and is not rolled back: automatic rollback is for instances that never became
    healthy. Surge runs cannot be followed this way: the instance that took over has a new id.
    """
    probe = work.obs.spec.health_probe
    grace = _grace(work)
    found = []
    for iid in sorted(run.succeeded):
        inst = live.get(iid)
        if inst is None or inst.deleting or inst.os_image != run.target.container_image:
            continue
        v = verdict(inst, probe, work.now, since=_since(inst), grace=grace)
        if counts_as_unhealthy(v):
            found.append(
                ApiErrorBase(
                    code=v.reason,
                    target=f"instance {iid}",
                    message=f"{v.reason} after passing its health check on {run.target.version}",
                )
            )
    return found


def _kept_ids(work: _Pass, live: dict[int, Instance]) -> set[int]:
    """Instance ids that exist after this pass's scale-in."""
    removed = {
        a.name for a in work.actions if isinstance(a, DeleteInstance) and a.reason == "scale in"
    }
    return {iid for iid, inst in live.items() if inst.name not in removed} | {
        a.instance_id for a in work.actions if isinstance(a, CreateInstance)
    }


def _patch_to_target(work: _Pass, run: UpgradeRun, inst: Instance) -> None:
    existing = _mark(run, inst)
    mark = _upgrade_mark(
        run,
        existing.previous_image if existing else inst.os_image,
        existing.previous_version if existing else _version_of(inst),
        work.now_s,
    )
    mhash = work.status.model_hash
    if inst.model_hash != mhash or _reimages(work, run, mark.previous_image):
        # Azure re-runs the extensions in order on an OS upgrade, and init containers run only
        # at pod start: recreate under the same id (same name, same data disks); capacity
        # keeping brings it back on the target with an upgrade mark.
        work.act(DeleteInstance(inst.name, inst.uid, "recreate on the new image"), inst.instance_id)
        return
    work.act(
        SetInstanceImage(inst.name, inst.uid, run.target.container_image, run.target.urn, mark),
        inst.instance_id,
    )


def _reimages(work: _Pass, run: UpgradeRun, previous_image: str) -> bool:
    """Whether an instance with extensions changes image by being recreated.

    A recreated pod's mark can only name the run's previous image (the old pod and its mark
    are gone), so an instance that came from another image (mixed versions after Manual mode
    or protection) keeps the in-place patch: rolling back to the image it really ran matters
    more than re-running its extensions.
    """
    if not has_extensions(work.obs.spec) or run.previous is None:
        return False
    return previous_image == run.previous.container_image


def _version_of(inst: Instance) -> str | None:
    return inst.image_urn.rsplit(":", 1)[-1] if inst.image_urn else None


def _roll_back(work: _Pass, run: UpgradeRun, inst: Instance, mark: UpgradeMark) -> None:
    if _reimages(work, run, mark.previous_image):
        # Going back re-runs the extensions as well; `_recreation` restores the previous image.
        reason = "recreate on the previous image"
        work.act(DeleteInstance(inst.name, inst.uid, reason), inst.instance_id)
    else:
        back = mark.model_copy(
            update={"phase": UpgradePhase.ROLLING_BACK, "started_at": work.now_s}
        )
        urn = _urn_back(run, inst, mark)
        work.act(
            SetInstanceImage(inst.name, inst.uid, mark.previous_image, urn, back),
            inst.instance_id,
        )
    work.event(
        WARNING,
        "InstanceRollingBack",
        f"instance {inst.instance_id} goes back to {mark.previous_image}",
    )


def _urn_back(run: UpgradeRun, inst: Instance, mark: UpgradeMark) -> str:
    """The urn of the version the instance really goes back to, for its annotation: its own
    previous version, not the run's previous model, which differs when instances ran mixed
    versions (Manual mode, instances protected during an earlier upgrade)."""
    if mark.previous_version is not None:
        return f"{(run.previous or run.target).family}:{mark.previous_version}"
    return run.previous.urn if run.previous else (inst.image_urn or "")


def _rolled_back_to(work: _Pass, run: UpgradeRun) -> dict[int, str | None]:
    """The version each instance sent back went to, as its own upgrade mark remembers it."""
    live = _live_instances(work.obs.instances)
    versions: dict[int, str | None] = {}
    for iid in (*run.rolled_back, *run.rollback_failed, *run.rolling_back):
        inst = live.get(iid)
        if inst is None:
            continue
        mark = _mark(run, inst)
        # A surge run never touched the old instance: its own version is where it stayed.
        own = mark.previous_version if mark is not None else None
        versions[iid] = own or _version_of(inst)
    return versions


def _with_causes(work: _Pass, run: UpgradeRun, error: ApiError | None) -> ApiError | None:
    """Every failed instance's cause in `error.details`, whatever ended the run; details that
    name other instances (those unhealthy after passing) are kept."""
    causes = failure_details(run, _rolled_back_to(work, run))
    if not causes:
        return error
    if error is None:
        # A cancel leaves no error of its own; Azure's code for a run with failed instances
        # says what the user should look at.
        error = ApiError(
            code=ErrorCode.FAILED_UPGRADED_VMS.value,
            message=f"cancelled after {len(run.failed)} instance(s) failed to upgrade",
            target=work.obs.name,
        )
    named = {d.target for d in causes}
    others = [d for d in error.details or [] if d.target not in named]
    return error.model_copy(update={"details": [*causes, *others]})


def _stop(
    work: _Pass,
    run: UpgradeRun,
    code: ErrorCode,
    message: str,
    *,
    also: list[ApiErrorBase] | None = None,
) -> UpgradeRun:
    """A policy breach: the run ends Faulted, after optional rollback of failed instances.
    `also`: details of instances that are not failed but count towards the breach."""
    work.event(WARNING, "RollingUpgradeFaulted", f"{code.value}: {message}")
    if run.policy.rollback_failed_instances_on_policy_breach:
        rolling_back = list(run.rolling_back)
        live = _live_instances(work.obs.instances)
        for iid in run.failed:
            if iid in run.rolled_back or iid in rolling_back or iid in run.rollback_failed:
                continue
            inst = live.get(iid)
            mark = _mark(run, inst) if inst else None
            if inst is None or mark is None:
                continue
            rolling_back.append(iid)
            _roll_back(work, run, inst, mark)
        run = run.model_copy(update={"rolling_back": rolling_back})
        if rolling_back:
            run = run.model_copy(
                update={
                    "batch": Batch(
                        number=run.batches_done, instance_ids=rolling_back, started_at=work.now_s
                    )
                }
            )
    # After the rollbacks above, so that the details say where those instances are going.
    base = ApiError(code=code.value, message=message, target=work.obs.name, details=also or None)
    return run.model_copy(update={"stop_reason": _with_causes(work, run, base)})


def _finish_stopping(work: _Pass, run: UpgradeRun) -> UpgradeRun:
    if run.stop_reason is None or run.batch is not None:
        return run
    return _end(work, run, RunningStatusCode.FAULTED, run.stop_reason)


def _end(
    work: _Pass, run: UpgradeRun, code: RunningStatusCode, error: ApiError | None
) -> UpgradeRun:
    ended = run.model_copy(
        update={
            "code": code,
            "end_time": work.now_s,
            "error": _with_causes(work, run, error),
            "batch": None,
        }
    )
    status_update: dict[str, object] = {}
    if is_refusal(ended):
        # It touched nothing, so it is no verdict on the version: quarantining it would let a
        # health blip at publish time block a good version for good. It stays pending and
        # the platform tries it again after a back-off.
        pending = _pending_after_refusal(work, run)
        status_update["pending_upgrade"] = pending
        if pending is not None:
            work.wake(_retry_at(work, work.now_s, pending))
    elif code is RunningStatusCode.FAULTED:
        faulted = [v for v in work.status.faulted_versions if v != run.target.version]
        status_update["faulted_versions"] = [*faulted, run.target.version][-_FAULTED_MEMORY:]
    if code is RunningStatusCode.FAULTED and run.previous is not None:
        # New instances must not get an image whose upgrade faulted or never began.
        status_update["model_image"] = run.previous
        status_update["current_image_version"] = run.previous.version
    if status_update:
        work.status = work.status.model_copy(update=status_update)
    kind = WARNING if code is RunningStatusCode.FAULTED else NORMAL
    work.event(
        kind,
        f"RollingUpgrade{code.value}",
        f"OS upgrade to {run.target.urn} {code.value.lower()}: {len(run.succeeded)} upgraded, "
        f"{len(run.failed)} failed, {len(run.rolled_back)} rolled back",
    )
    return ended


def _pending_after_refusal(work: _Pass, run: UpgradeRun) -> PendingUpgrade | None:
    """What is pending once a start was refused: whatever was pending before it (a refusal
    changed nothing), else the refused platform version, detected when the run started."""
    before = work.obs.status.pending_upgrade
    if before is not None:
        return before
    if run.started_by is StartedBy.PLATFORM:
        return PendingUpgrade(version=run.target.version, detected_at=run.start_time)
    return None


def _retry_at(work: _Pass, refused_at: str, pending: PendingUpgrade) -> datetime:
    return retry_at(
        parse_stamp(refused_at),
        parse_stamp(pending.detected_at),
        work.obs.settings.automatic_upgrade_delay,
    )


def _refusal_note(work: _Pass, run: UpgradeRun) -> str:
    """Status says why nothing happens and when the platform tries again."""
    pending = _pending_after_refusal(work, run)
    if pending is None:
        return "; nothing was upgraded"
    at = _retry_at(work, work.now_s, pending)
    return (
        f"; nothing was upgraded, and the platform tries {pending.version} again at "
        f"{stamp(at)} at the earliest"
    )


def _between_batches(work: _Pass, run: UpgradeRun, live: dict[int, Instance]) -> UpgradeRun:
    """Before each batch: cancel, pause, retarget, overall health, then pick the batch."""
    obs = work.obs
    orphans = [
        iid
        for iid, inst in sorted(live.items())
        if not inst.deleting
        and not inst.protected
        and inst.os_image == run.target.container_image
        and inst.upgrade is not None
        and inst.upgrade.phase is UpgradePhase.UPGRADING
        and inst.upgrade.target_version == run.target.version
        and iid not in run.succeeded
        and iid not in run.failed
        and iid not in work.touched
    ]
    if orphans:
        # Patched by a pass whose status write was lost: that batch is still in flight.
        batch = Batch(number=run.batches_done + 1, instance_ids=orphans, started_at=work.now_s)
        return run.model_copy(update={"batch": batch})
    if run.last_action == "Cancel":
        return _end(work, run, RunningStatusCode.CANCELLED, None)
    if run.last_batch_end is not None:
        resume_at = parse_stamp(run.last_batch_end) + parse_duration(
            run.policy.pause_time_between_batches
        )
        if work.now < resume_at:
            work.wake(resume_at)
            return run
    if _outside_window(work, run):
        return run
    run = _retarget(work, run)
    policy = run.policy
    gate = health_gate(obs.spec, policy, live.values(), work.now)
    total, unhealthy = gate.total, gate.unhealthy
    if gate.closed:
        code = ErrorCode.UNHEALTHY_BEFORE if run.batches_done == 0 else ErrorCode.UNHEALTHY_DURING
        message = gate.describe()
        if code is ErrorCode.UNHEALTHY_BEFORE:
            message += _refusal_note(work, run)
        run = _stop(work, run, code, message)
        return _finish_stopping(work, run)
    candidates = [
        inst
        for iid, inst in sorted(live.items())
        if not inst.deleting
        and not inst.protected
        and inst.os_image != run.target.container_image
        and iid not in run.failed
        and iid not in work.touched
    ]
    if not candidates:
        error = None
        if run.failed:
            error = ApiError(
                code=ErrorCode.FAILED_UPGRADED_VMS.value,
                message=f"{len(run.failed)} instance(s) failed to upgrade; "
                f"the rest run {run.target.urn}",
                target=obs.name,
            )
        return _end(work, run, RunningStatusCode.COMPLETED, error)
    chosen, zone = next_batch(
        candidates,
        total=total,
        policy=policy,
        is_unhealthy=lambda i: i.instance_id in gate.unhealthy_ids,
        unhealthy_now=unhealthy,
    )
    number = run.batches_done + 1
    batch = Batch(
        number=number,
        instance_ids=[i.instance_id for i in chosen],
        zone=zone,
        started_at=work.now_s,
    )
    if policy.max_surge:
        batch, creates = _surge_batch(work, run, chosen, batch)
        run = run.model_copy(update={"batch": batch})
        for action in creates:
            work.act(action, action.instance_id)
    else:
        run = run.model_copy(update={"batch": batch})
        for inst in chosen:
            _patch_to_target(work, run, inst)
    size = batch_size(total, policy)
    estimate = run.batches_done + -(-len(candidates) // max(1, size))
    work.event(
        NORMAL,
        "BatchStarted",
        f"batch {number}/{estimate}: instances {_ids(chosen)}"
        + (f" in {zone}" if zone else "")
        + f" -> {run.target.urn}",
    )
    work.wake(work.now + _health_timeout(work))
    return run


def _outside_window(work: _Pass, run: UpgradeRun) -> bool:
    """A platform run starts batches only inside a maintenance window: when one closes, the
    batch in flight has settled by now and the next waits for the next window. A user's run
    ignores the windows, as its start did."""
    if run.started_by is not StartedBy.PLATFORM:
        return False
    schedule = work.obs.spec.upgrade_policy.automatic_upgrade_schedule
    inside, opens = window_state(schedule, work.now)
    if inside:
        return False
    if opens is not None:
        work.wake(opens)
    work.waiting_for_window, work.window_opens_at = True, opens
    if not _was_waiting_for_window(work.obs.status):
        work.event(NORMAL, cond.WAITING_FOR_WINDOW, _window_wait_text(run, opens))
    return True


def _window_wait_text(run: UpgradeRun, opens: datetime | None) -> str:
    until = stamp(opens) if opens is not None else "never (no window opens)"
    return f"batch {run.batches_done + 1} waits for the next maintenance window, until {until}"


def _was_waiting_for_window(status: ScaleSetStatus) -> bool:
    upgrading = next((c for c in status.conditions if c.type == cond.UPGRADING), None)
    return upgrading is not None and upgrading.reason == cond.WAITING_FOR_WINDOW


def _retarget(work: _Pass, run: UpgradeRun) -> UpgradeRun:
    """A platform run moves on to an even newer eligible version after a batch; eligible as for
    any start, so never a quarantined one or one younger than the minimum
    image age."""
    unpromoted = any(i.surge_for is not None for i in work.obs.instances)
    if run.started_by is not StartedBy.PLATFORM or unpromoted:
        # (Surge instances of the last batch are promoted first: retargeting forgets
        # which instances were done.)
        return run
    obs = work.obs
    found = upgrade_target(
        obs.spec, work.status, obs.catalog, work.now, started_by=StartedBy.PLATFORM
    )
    target = found.image
    if target is None or not is_newer(target.version, run.target.version):
        return run
    work.event(NORMAL, "RollingUpgradeRetargeted", f"newer version {target.urn}: retargeting")
    work.status = work.status.model_copy(
        update={"model_image": target, "current_image_version": target.version}
    )
    # Instances done on the old target are candidates again, judged afresh.
    return run.model_copy(update={"target": target, "succeeded": []})


def _since(inst: Instance) -> datetime | None:
    return parse_stamp(inst.created_at) if inst.created_at else None


def _verdicts(work: _Pass, live: dict[int, Instance]) -> dict[int, HealthVerdict]:
    probe = work.obs.spec.health_probe
    grace = _grace(work)
    return {
        iid: verdict(inst, probe, work.now, since=_since(inst), grace=grace)
        for iid, inst in live.items()
    }


# --- status ----------------------------------------------------------------------------------


def _summarise(work: _Pass, mhash: str, live: dict[int, Instance]) -> None:
    obs = work.obs
    status = work.status
    spec = obs.spec
    verdicts = _verdicts(work, live)
    ready = sum(1 for v in verdicts.values() if v.healthy)
    model = status.model_image
    latest = sum(
        1
        for i in live.values()
        if model is not None and i.model_hash == mhash and i.image_urn == model.urn
    )
    protected = sum(1 for i in live.values() if i.protected)
    conditions = cond.set_condition(
        status.conditions,
        type_=cond.READY,
        status=ready >= spec.capacity,
        reason="AllInstancesReady" if ready >= spec.capacity else "InstancesNotReady",
        message=f"{ready}/{spec.capacity} instances healthy",
        now=work.now_s,
        generation=obs.generation,
    )
    run = status.upgrade_run
    running = run is not None and not _run_finished(run)
    reason, message = "NoUpgrade", ""
    if run is not None:
        reason = run.code.value
        message = f"OS upgrade to {run.target.urn}: {len(run.succeeded)} upgraded"
    if run is not None and running and work.waiting_for_window:
        # What `rolling-upgrade get-latest` shows: Azure's shape has no field for it.
        reason = cond.WAITING_FOR_WINDOW
        message = f"{_window_wait_text(run, work.window_opens_at)}; {message}"
    conditions = cond.set_condition(
        conditions,
        type_=cond.UPGRADING,
        status=running,
        reason=reason,
        message=message,
        now=work.now_s,
        generation=obs.generation,
    )
    faulted = run is not None and run.code is RunningStatusCode.FAULTED
    conditions = cond.set_condition(
        conditions,
        type_=cond.UPGRADE_FAULTED,
        status=faulted,
        reason=(run.error.code or "Faulted") if faulted and run and run.error else "NotFaulted",
        message=(run.error.message or "") if faulted and run and run.error else "",
        now=work.now_s,
        generation=obs.generation,
    )
    update: dict[str, object] = {
        "observed_generation": obs.generation,
        "capacity": sum(1 for i in live.values() if not i.deleting),
        "selector": f"scaleset.dev/scaleset={obs.name}",
        "ready_instances": ready,
        "latest_model_instances": latest,
        "protected_instances": protected,
        "conditions": conditions,
        "upgrade_state": run.code.value if run else None,
    }
    if run is not None and (running or run != obs.status.upgrade_run):
        pending = _pending_count(run, live)
        update["rolling_upgrade"] = rolling_upgrade_status(run, pending)
        update["os_upgrade_history"] = record_history(
            status.os_upgrade_history, run, pending, obs.settings.history_limit
        )
    work.status = status.model_copy(update=update)


def _pending_count(run: UpgradeRun, live: dict[int, Instance]) -> int:
    """Instances the run has not begun; after a fault or cancel, those it never reached."""
    in_batch = set(run.batch.instance_ids) if run.batch else set()
    return sum(
        1
        for iid, inst in live.items()
        if not inst.deleting
        and not inst.protected
        and inst.os_image != run.target.container_image
        and iid not in run.failed
        and iid not in in_batch
        and iid not in run.succeeded
    )


# --- maxSurge: new instances first, old ones removed once the new are healthy -------------


def _surge_batch(
    work: _Pass, run: UpgradeRun, chosen: list[Instance], batch: Batch
) -> tuple[Batch, list[CreateInstance]]:
    taken = {i.instance_id for i in work.obs.instances} | {
        a.instance_id for a in work.actions if isinstance(a, CreateInstance)
    }
    # New instances get new ids, as new VMs do: never one this run has counted already.
    used = taken | set(run.succeeded) | set(run.failed)
    free = iter(range(max(used, default=-1) + 1, max(used, default=-1) + 2 + len(chosen)))
    surge_ids: list[int] = []
    creates = []
    for inst in chosen:
        new_id = next(free)
        surge_ids.append(new_id)
        mark = _upgrade_mark(run, inst.os_image, _version_of(inst), work.now_s)
        creates.append(
            CreateInstance(
                new_id, run.target.container_image, run.target.urn, mark, surge_for=inst.instance_id
            )
        )
    return batch.model_copy(update={"surge_ids": surge_ids}), creates


def _settle_surge_batch(work: _Pass, run: UpgradeRun, live: dict[int, Instance]) -> UpgradeRun:
    """Judge each new instance; the old one goes only when its replacement is healthy."""
    batch = run.batch
    assert batch is not None
    assert batch.surge_ids is not None
    surges = {i.instance_id: i for i in work.obs.instances if i.surge_for is not None}
    probe = work.obs.spec.health_probe
    timeout = _health_timeout(work)
    succeeded, failed = list(run.succeeded), list(run.failed)
    rolled_back = list(run.rolled_back)
    reasons = dict(run.failure_reasons)
    open_pairs = 0
    # Counted by the id of the instance being replaced, as an in-place upgrade would be.
    for old_id, new_id in zip(batch.instance_ids, batch.surge_ids, strict=True):
        if old_id in succeeded or old_id in failed:
            continue
        new = surges.get(new_id) or live.get(new_id)
        if new is None:
            # Lost between the status write and the create: create it again.
            fresh = _upgrade_mark(
                run,
                run.previous.container_image if run.previous else "",
                run.previous.version if run.previous else None,
                work.now_s,
            )
            work.act(
                CreateInstance(
                    new_id, run.target.container_image, run.target.urn, fresh, surge_for=old_id
                ),
                new_id,
            )
            open_pairs += 1
            continue
        mark = new.upgrade
        since = parse_stamp(mark.started_at) if mark else work.now
        v = verdict(
            new,
            probe,
            work.now,
            expected_image=run.target.container_image,
            since=since,
            grace=_grace(work),
        )
        deadline = since + timeout
        if v.healthy:
            succeeded.append(old_id)
        elif work.now >= deadline or (v.fail_fast and work.obs.settings.fail_fast):
            failed.append(old_id)
            reasons[str(old_id)] = (
                v.reason if work.now < deadline else f"HealthTimeout ({v.reason})"
            )
            work.event(
                WARNING,
                "InstanceUpgradeFailed",
                f"new instance {new_id} (for {old_id}) unhealthy on {run.target.urn}: "
                f"{reasons[str(old_id)]}",
            )
            if run.automatic_rollback:
                # Rolling back a surge is removing it: the old instance never stopped.
                rolled_back.append(old_id)
        else:
            work.wake(deadline)
            open_pairs += 1
    run = run.model_copy(
        update={
            "succeeded": succeeded,
            "failed": failed,
            "rolled_back": rolled_back,
            "failure_reasons": reasons,
        }
    )
    _tidy_surges(work, run)
    if open_pairs:
        return run
    return _close_batch(work, run, batch.number, live)


def _tidy_surges(work: _Pass, run: UpgradeRun | None = None) -> None:
    """Finish what a judged surge instance implies; idempotent, so it runs on every pass."""
    run = run or work.status.upgrade_run
    for inst in sorted(work.obs.instances, key=lambda i: i.instance_id):
        if inst.surge_for is None or inst.deleting or inst.instance_id in work.touched:
            continue
        iid, old_id = inst.instance_id, inst.surge_for
        keep = run is not None and (
            old_id in run.succeeded or (old_id in run.failed and old_id not in run.rolled_back)
        )
        pending = (
            run is not None
            and run.batch is not None
            and run.batch.surge_ids is not None
            and iid in run.batch.surge_ids
            and old_id not in run.succeeded
            and old_id not in run.failed
        )
        if pending:
            continue
        if keep:
            old = next(
                (
                    o
                    for o in work.obs.instances
                    if o.instance_id == inst.surge_for and not o.deleting
                ),
                None,
            )
            if old is not None and old.surge_for is None and old.instance_id not in work.touched:
                work.act(
                    DeleteInstance(old.name, old.uid, "replaced by a surge instance"),
                    old.instance_id,
                )
            work.act(PromoteInstance(inst.name, inst.uid), iid)
        else:
            work.act(DeleteInstance(inst.name, inst.uid, "surge instance not kept"), iid)
