"""One reconcile pass of one scale set: observe -> plan -> persist status -> act -> report.

Synchronous on purpose (the `kubernetes` client blocks); the async worker runs it in a thread.
Status is written before the actions, so a crash in between leaves the intent on record and
the next pass finishes the same step instead of inventing a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from pydantic import ValidationError

from scaleset_operator.controller.pacing import (
    GATHER_WHILE_SETTLING,
    StatusPacer,
    only_progress_changed,
)
from scaleset_operator.controller.passreads import PassBudgets, PassReads, requests_of
from scaleset_operator.controller.podcache import PodCache, Snapshot
from scaleset_operator.controller.scaleset_copy import ScaleSetCopy
from scaleset_operator.controller.scaleset_io import (
    SPEC_VALID,
    invalid_spec,
    read_scaleset,
    remember_write,
    status_of,
    unchanged,
    write_status,
)
from scaleset_operator.k8s.apply import apply_actions
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import KubeApiError, NotFoundError
from scaleset_operator.k8s.pods import to_instance
from scaleset_operator.models.instance import (
    LABEL_SCALESET,
    Instance,
)
from scaleset_operator.models.scaleset import HealthSource, ScaleSetSpec
from scaleset_operator.models.status import RunningStatusCode, ScaleSetStatus
from scaleset_operator.planner import conditions as cond
from scaleset_operator.planner.actions import Action, EmitEvent
from scaleset_operator.planner.bring_to_model import rollout_pending
from scaleset_operator.planner.observed import Observed, PlannerSettings
from scaleset_operator.planner.plan import plan
from scaleset_operator.planner.timefmt import stamp

Obj = dict[str, Any]
log = logging.getLogger("scaleset_operator.reconcile")
# How long after our last pod write a pass waits for the pod watch to report our writes before
# it lists the pods instead. The first echoes of a batch's writes wake the next pass while the
# rest are still on their way, which cost a LIST per batch of an upgrade; and while a thousand
# pods start, the watch runs a second or so behind.
CATCH_UP_WAIT = 2.0


class MetricsSink(Protocol):
    def observe(
        self,
        namespace: str,
        name: str,
        status: ScaleSetStatus,
        instances: Sequence[Instance],
        capacity: int,
    ) -> None: ...

    def record_events(self, namespace: str, name: str, events: Sequence[EmitEvent]) -> None: ...


class NotificationSink(Protocol):
    def offer(self, obj: Obj, status: ScaleSetStatus) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """When to look again: seconds, or None to wait for the next watch event; `gather`: how
    long to let watch events pile up before that next pass (the worker's debounce at least)."""

    requeue_after: float | None
    gone: bool = False
    gather: float = 0.0
    # Pods of the batch members still to settle: once the watch has seen each of them Ready,
    # the batch may close, and the worker runs the next pass at once instead of gathering.
    awaiting: frozenset[str] = frozenset()


def _upgrading(status: ScaleSetStatus) -> bool:
    """An OS upgrade rolls forward, or a model rollout has instances still to take out: the
    passes that take instances out within the budgets."""
    run = status.upgrade_run
    forward = run is not None and run.code is RunningStatusCode.ROLLING_FORWARD
    return forward or rollout_pending(status)


@dataclass(frozen=True)
class _Planned:
    pods: list[Obj]
    instances: tuple[Instance, ...]
    actions: tuple[Action, ...]
    events: tuple[EmitEvent, ...]
    status: ScaleSetStatus
    requeue_after: float | None
    open_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class _CatchUp:
    """The watch's copy lacks some of our own recent pod writes: the pass is to be run again
    once it has them, or in `within` seconds at the latest."""

    within: float


def _plan_with(
    kube: KubeClient,
    obj: Obj,
    spec: ScaleSetSpec,
    status: ScaleSetStatus,
    pods: list[Obj],
    settings: PlannerSettings,
    pod_cache: PodCache | None,
    budgets: PassBudgets,
    shared: PassReads,
) -> _Planned:
    owner = obj["metadata"].get("uid")
    pods = [p for p in pods if _owned_by(p, owner)]
    nodes = {(p.get("spec") or {}).get("nodeName") for p in pods} - {None}
    zones = kube.node_zones({str(n) for n in nodes})
    endpoints = None
    if spec.health_probe.source is HealthSource.LOAD_BALANCER and spec.health_probe.service_name:
        endpoints = (
            kube.ready_endpoints(obj["metadata"]["namespace"], spec.health_probe.service_name)
            or set()
        )
    verdicts = None
    if pod_cache is not None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        instances = pod_cache.instances(key, pods, spec, zones, endpoints)
        verdicts = pod_cache.verdicts(key)
    else:
        instances = tuple(
            i for i in (to_instance(p, spec, zones, endpoints) for p in pods) if i is not None
        )
    observed = Observed(
        name=obj["metadata"]["name"],
        namespace=obj["metadata"]["namespace"],
        generation=obj["metadata"].get("generation"),
        spec=spec,
        status=status,
        instances=instances,
        catalog=shared.catalog,
        now=datetime.now(UTC),
        requests=requests_of(obj),
        settings=settings,
        wave=shared.wave,
        verdicts=verdicts,
    )
    # Planned first as if the namespace had no PodDisruptionBudgets: they only hold back what
    # a plan takes out, so a plan that acts on nobody is the plan with them, and most passes
    # of an upgrade (its members settling) need no listing. One that acts, while an upgrade
    # or a model rollout runs or starts in this very pass, is planned again within them.
    result = plan(observed)
    if result.actions and (_upgrading(status) or _upgrading(result.status)):
        result = plan(replace(observed, budgets=budgets.get()))
    valid = cond.set_condition(
        result.status.conditions,
        type_=SPEC_VALID,
        status=True,
        reason="Valid",
        message="",
        now=stamp(observed.now),
        generation=observed.generation,
    )
    return _Planned(
        pods=pods,
        instances=instances,
        actions=result.actions,
        events=result.events,
        status=result.status.model_copy(update={"conditions": valid}),
        requeue_after=result.requeue_after,
        open_ids=result.open_ids,
    )


def reconcile_once(
    kube: KubeClient,
    namespace: str,
    name: str,
    settings: PlannerSettings,
    metrics: MetricsSink | None = None,
    pacer: StatusPacer | None = None,
    pod_cache: PodCache | None = None,
    notifier: NotificationSink | None = None,
    *,
    gather: float = GATHER_WHILE_SETTLING,
    scalesets: ScaleSetCopy | None = None,
) -> Outcome:
    key = (namespace, name)
    watched = scalesets.get(key) if scalesets is not None else None
    try:
        obj = watched if watched is not None else read_scaleset(kube, key, scalesets)
    except NotFoundError:
        if pacer is not None:
            pacer.forget(key)
        if pod_cache is not None:
            pod_cache.forget(key)
        return Outcome(None, gone=True)
    if obj["metadata"].get("deletionTimestamp"):
        return Outcome(None)
    try:
        spec = ScaleSetSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        invalid_spec(kube, obj, exc)
        return Outcome(None)
    status = status_of(obj)
    result = _observe_and_plan(kube, obj, spec, status, settings, pod_cache)
    if isinstance(result, _CatchUp):
        # The events of those writes wake the worker before that, as a rule.
        return Outcome(result.within)
    new_status = result.status
    confirm = confirm_before_acting(watched is not None, bool(result.actions), new_status != status)
    if confirm and not unchanged(kube, key, obj, scalesets):
        # Planned on the watch's object, which was behind: pod writes rest on a fresh read.
        return Outcome(0.0)
    held = pacer.hold_update(key, status, new_status, bool(result.actions)) if pacer else 0.0
    persisted = status
    if new_status != status and not held:
        written = write_status(kube, obj, status, new_status)
        progress_only = only_progress_changed(status, new_status)
        remember_write(key, written, pacer, scalesets, progress_only=progress_only)
        if written is None:
            # Someone (or our previous pass) changed the object: plan again on fresh state.
            return Outcome(0.05)
        obj, persisted = written, new_status
    if notifier is not None:
        _notify(notifier, obj, persisted)
    lost = _act(kube, obj, spec, new_status, result, pod_cache)
    _report(kube, obj, result, metrics, spec.capacity)
    if lost:
        return Outcome(0.2)
    return _next(result, held, gather)


def _act(
    kube: KubeClient,
    obj: Obj,
    spec: ScaleSetSpec,
    new_status: ScaleSetStatus,
    result: _Planned,
    pod_cache: PodCache | None,
) -> int:
    """The pass's pod writes; how many lost a race. The pod copy learns which versions the
    watch must report before it holds them, and is not trusted after a lost race."""
    if not result.actions:
        return 0
    key = _key_of(obj)
    wrote = None
    if pod_cache is not None:
        pod_cache.writing(key)
        wrote = partial(pod_cache.expect, key)
    model_hash = new_status.model_hash or ""
    lost = apply_actions(kube, obj, spec, model_hash, result.pods, result.actions, wrote)
    if lost and pod_cache is not None:
        pod_cache.distrust(key)
    return lost


def _observe_and_plan(
    kube: KubeClient,
    obj: Obj,
    spec: ScaleSetSpec,
    status: ScaleSetStatus,
    settings: PlannerSettings,
    pod_cache: PodCache | None,
) -> _Planned | _CatchUp:
    """Plans on the pod watch's copy when the copy holds every pod write of ours (see
    podcache.py), or when that plan changes nothing but progress; waits for the watch instead
    while it lacks only our writes of the last moments; otherwise lists the pods afresh and plans
    again, so that every action rests on a read that has seen our own writes."""
    meta = obj["metadata"]
    key = (meta["namespace"], meta["name"])
    taken = pod_cache.snapshot(key) if pod_cache is not None else None
    wait = catch_up_wait(taken) if taken is not None else None
    if wait is not None:
        return _CatchUp(wait)
    budgets = PassBudgets(kube, meta["namespace"])
    shared = PassReads.of(kube, obj, spec)
    if taken is not None and pod_cache is not None:
        copy = taken.pods
        quick = _plan_with(kube, obj, spec, status, copy, settings, pod_cache, budgets, shared)
        if stands_on_copy(taken, bool(quick.actions or quick.events), status, quick.status):
            return quick
    if pod_cache is not None:
        pod_cache.mark(key)
    listed = kube.list_pods(meta["namespace"], f"{LABEL_SCALESET}={meta['name']}")
    if pod_cache is not None:
        listed = pod_cache.seed(key, listed)
    return _plan_with(kube, obj, spec, status, listed, settings, pod_cache, budgets, shared)


def confirm_before_acting(on_watched: bool, acts: bool, writes_status: bool) -> bool:
    """Whether a pass must read its ScaleSet before its pod writes, to learn that the object
    it planned on (`on_watched`: the watch's copy) is still the latest. A pass that acts
    writes its new status first (never held back), and that write names the version it
    planned on: the API refuses it if the object changed since, and the pass then acts on
    nothing. So only a pass that acts without a status change reads."""
    return on_watched and acts and not writes_status


def stands_on_copy(
    taken: Snapshot, acts: bool, before: ScaleSetStatus, after: ScaleSetStatus
) -> bool:
    """Whether a plan on the watch's copy `taken` may be carried out as it is: the copy holds
    our own writes, or the plan changes nothing but progress (`acts`: it acts or records
    events; `after`: the status it plans)."""
    if taken.caught_up:
        return True
    return not acts and (after == before or only_progress_changed(before, after))


def catch_up_wait(taken: Snapshot) -> float | None:
    """How long at most to wait for the watch to report our own pod writes that the copy
    lacks; None when there are none, or when the pass is not to wait for them: they are not
    recent, or the watch does not stream."""
    if taken.caught_up or taken.since_write >= CATCH_UP_WAIT:
        return None
    return max(0.05, CATCH_UP_WAIT - taken.since_write)


def _report(
    kube: KubeClient, obj: Obj, result: _Planned, metrics: MetricsSink | None, capacity: int
) -> None:
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    for event in result.events:
        try:
            kube.post_event(obj, event.type, event.reason, event.message)
        except KubeApiError as exc:
            log.debug("event not recorded: %s", exc)
        log.info("%s/%s %s: %s", namespace, name, event.reason, event.message)
    if metrics is not None:
        metrics.record_events(namespace, name, result.events)
        metrics.observe(namespace, name, result.status, result.instances, capacity)


def _notify(notifier: NotificationSink, obj: Obj, persisted: ScaleSetStatus) -> None:
    """Hands over only what is in the API: a notification must never announce a status that
    a crash could still take back. A notifier bug must not stop upgrades, hence the catch-all;
    the next pass offers the same status again."""
    try:
        notifier.offer(obj, persisted)
    except Exception:
        log.exception("notifications of %s/%s not queued", *_key_of(obj))


def _key_of(obj: Obj) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _next(result: _Planned, held: float, gather: float) -> Outcome:
    awaiting = _awaiting(result)
    if result.actions:
        # Our own writes come back as watch events too; this is only a safety net.
        return Outcome(min(result.requeue_after or 5.0, 5.0), awaiting=awaiting)
    outcome = replace(_after(result.requeue_after, held), awaiting=awaiting)
    if awaiting:
        return replace(outcome, gather=gather)
    return outcome


def _awaiting(result: _Planned) -> frozenset[str]:
    if not result.open_ids:
        return frozenset()
    names = {i.instance_id: i.name for i in result.instances}
    return frozenset(names[i] for i in result.open_ids if i in names)


def _after(requeue_after: float | None, held: float) -> Outcome:
    """Look again when the planner asks, or sooner to write a held-back status."""
    if held:
        return Outcome(min(held, requeue_after or held))
    return Outcome(requeue_after)


def _owned_by(pod: Obj, uid: str | None) -> bool:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("uid") == uid:
            return True
    return False
