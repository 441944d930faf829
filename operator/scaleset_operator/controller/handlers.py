"""Thin kopf handlers: watch events only wake the worker of the scale set concerned.

kopf watches ImageVersions and UpgradeWaves; pods, ScaleSets and EndpointSlices come from our
own watches (listwatch.py), which cost a fraction of kopf's handling per event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import kopf
import orjson

from scaleset_operator.controller.config import CONFIG
from scaleset_operator.controller.leadership import Leadership
from scaleset_operator.controller.listwatch import EndpointSliceWatch, PodWatch, ScaleSetWatch
from scaleset_operator.controller.pacing import StatusPacer
from scaleset_operator.controller.podcache import PodCache
from scaleset_operator.controller.reconcile import Outcome, reconcile_once
from scaleset_operator.controller.scaleset_copy import ScaleSetCopy
from scaleset_operator.controller.service_users import ServiceUsers, start_endpoint_watch
from scaleset_operator.controller.wave_pass import reconcile_wave
from scaleset_operator.controller.workers import PodChanges, Workers
from scaleset_operator.k8s.client import KubeClient, make_api_client
from scaleset_operator.k8s.errors import KubeApiError, NotFoundError
from scaleset_operator.k8s.pods import ready_on_spec
from scaleset_operator.metrics import OperatorMetrics, operator_registry, serve
from scaleset_operator.models.imageversion import PLURAL as IV_PLURAL
from scaleset_operator.models.instance import LABEL_SCALESET
from scaleset_operator.models.scaleset import GROUP, PLURAL, VERSION
from scaleset_operator.models.upgradewave import PLURAL as WAVE_PLURAL
from scaleset_operator.notifications.delivery import Backoff
from scaleset_operator.notifications.ledger import ANNOTATION as NOTIFIED
from scaleset_operator.notifications.notifier import Notifier
from scaleset_operator.notifications.wire import Ref, ScaleSetRef

log = logging.getLogger("scaleset_operator")


class _State:
    kube: KubeClient | None = None
    workers: Workers | None = None
    metrics: OperatorMetrics | None = None
    leadership: Leadership | None = None
    leadership_task: asyncio.Task[None] | None = None
    pacer: StatusPacer = StatusPacer()
    pods: PodCache = PodCache()
    scalesets: ScaleSetCopy = ScaleSetCopy()
    podwatch: PodWatch | None = None
    scaleset_watch: ScaleSetWatch | None = None
    endpoint_watch: EndpointSliceWatch | None = None
    service_users: ServiceUsers = ServiceUsers()
    scaleset_follower: asyncio.Task[None] | None = None
    notifier: Notifier | None = None
    wave_workers: Workers | None = None
    # What each wave has admitted or faulted: only a change there concerns the scale sets.
    wave_gates: ClassVar[dict[str, object]] = {}


STATE = _State()


class _NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf builds a deep copy of every watched object to diff it for change handlers; all our
    handlers are event handlers, which never read that diff, so none is built. At a thousand
    pods rolling, the copies were about a tenth of the operator's CPU."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


def _pass(namespace: str, name: str) -> Outcome:
    assert STATE.kube is not None
    metrics = STATE.metrics
    timer = metrics.reconcile_timer(namespace, name) if metrics else contextlib.nullcontext()
    with timer:
        return reconcile_once(
            STATE.kube,
            namespace,
            name,
            CONFIG.planner,
            metrics,
            STATE.pacer,
            STATE.pods,
            STATE.notifier,
            gather=CONFIG.gather_while_settling,
            scalesets=STATE.scalesets,
        )


def _workers() -> Workers:
    assert STATE.workers is not None
    return STATE.workers


def _wave_pass(_: str, name: str) -> Outcome:
    assert STATE.kube is not None
    return reconcile_wave(STATE.kube, name, CONFIG.namespaces, STATE.notifier)


def _wave_workers() -> Workers:
    assert STATE.wave_workers is not None
    return STATE.wave_workers


def tune(settings: kopf.OperatorSettings) -> None:
    """kopf settings: where it keeps state (nowhere), how it watches and retries."""
    # Our handlers keep no kopf state; annotations under our group if kopf ever needs any.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = _NoDiffBase(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.enabled = False
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.networking.error_backoffs = [0.5, 1, 2, 5]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    tune(settings)
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=CONFIG.max_threads)
    )
    STATE.kube = KubeClient(make_api_client(CONFIG.kubeconfig, CONFIG.context))
    STATE.pacer = StatusPacer(CONFIG.status_interval)
    STATE.pods = PodCache()
    STATE.scalesets = ScaleSetCopy()
    STATE.service_users = ServiceUsers()
    STATE.workers = Workers(
        _pass,
        debounce=CONFIG.debounce,
        active=not CONFIG.leader_elect,
        unready=STATE.pods.unready,
    )
    # A wave reads every scale set it orders: one pass per burst of their changes is enough.
    STATE.wave_workers = Workers(
        _wave_pass, debounce=max(CONFIG.debounce, 0.3), active=not CONFIG.leader_elect, kind="wave"
    )
    STATE.podwatch = watch = _start_pod_watch(STATE.kube, STATE.workers)
    STATE.pods.live = lambda: watch.live
    STATE.scaleset_watch = _start_scaleset_watch(STATE.kube)
    STATE.endpoint_watch = start_endpoint_watch(
        STATE.kube, CONFIG.namespaces, STATE.service_users, _workers().endpoints_changed
    )
    if CONFIG.leader_elect:
        _start_leadership(STATE.kube, (STATE.workers, STATE.wave_workers))
    if CONFIG.metrics_port is not None:
        try:
            STATE.metrics = _start_metrics(CONFIG.metrics_port)
        except OSError as exc:
            # Retrying cannot free the port: end the operator instead of idling in retries.
            raise kopf.PermanentError(
                f"cannot serve metrics on port {CONFIG.metrics_port}: {exc.strerror}"
            ) from exc
    if CONFIG.notify_sinks:
        STATE.notifier = _start_notifier(STATE.kube)


def _start_notifier(kube: KubeClient) -> Notifier:
    """Webhook delivery in threads of its own; the passes only hand it their status."""

    def write_cursor(namespace: str, name: str, value: str) -> None:
        if namespace:
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        else:  # an UpgradeWave: cluster-scoped (WaveRef.key)
            path = f"/apis/{GROUP}/{VERSION}/{WAVE_PLURAL}/{name}"
        with contextlib.suppress(NotFoundError):  # deleted: its record went with it
            kube.request(
                "PATCH",
                path,
                body={"metadata": {"annotations": {NOTIFIED: value}}},
                content_type="application/merge-patch+json",
            )

    def warn(ref: Ref, message: str) -> None:
        if not isinstance(ref, ScaleSetRef):
            return  # a wave has no namespace for the Event; the sink's thread logged it
        meta = {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid}
        try:
            kube.post_event({"metadata": meta}, "Warning", "NotificationSinkFailing", message)
        except KubeApiError as exc:
            log.debug("event not recorded: %s", exc)

    metrics = STATE.metrics.notifications if STATE.metrics is not None else None
    notifier = Notifier(
        CONFIG.notify_sinks,
        write_cursor,
        warn,
        metrics,
        backoff=Backoff(cap=CONFIG.notify_backoff_cap),
    )
    notifier.start()
    return notifier


def _start_pod_watch(kube: KubeClient, workers: Workers) -> PodWatch:
    """Our own pod watch (see listwatch.py); its thread hands wake-ups to the event loop."""
    changes = PodChanges(asyncio.get_running_loop(), workers)

    def instance_changed(kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(LABEL_SCALESET)
        namespace = meta.get("namespace")
        if not owner or not namespace:
            return
        key = (str(namespace), str(owner))
        STATE.pods.observe(key, kind, pod)
        changes.add(key, str(meta.get("name", "")), kind == "DELETED" or ready_on_spec(pod))

    watch = PodWatch(kube, LABEL_SCALESET, CONFIG.namespaces, instance_changed)
    watch.start()
    return watch


def _start_scaleset_watch(kube: KubeClient) -> ScaleSetWatch:
    """Our own ScaleSet watch; its thread hands every change to the event loop, where they are
    taken one at a time and in order (a deletion stops the worker before the same name, made
    again, wakes a new one)."""
    loop = asyncio.get_running_loop()
    changes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def changed(kind: str, obj: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closes at shutdown
            loop.call_soon_threadsafe(changes.put_nowait, (kind, obj))

    STATE.scaleset_follower = loop.create_task(_follow_scalesets(changes), name="scalesets")
    watch = ScaleSetWatch(kube, CONFIG.namespaces, changed)
    watch.start()
    return watch


async def _follow_scalesets(changes: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
    while True:
        kind, obj = await changes.get()
        try:
            await scaleset_changed(kind, obj)
        except Exception:
            # One bad object must not deafen the operator to every later change.
            log.exception("ScaleSet change not handled")


def _start_metrics(port: int) -> OperatorMetrics:
    registry = operator_registry()
    metrics = OperatorMetrics(registry)
    serve(registry, port=port)
    log.info("metrics on :%d/metrics", port)
    return metrics


def _start_leadership(kube: KubeClient, workers: tuple[Workers, ...]) -> None:
    identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    STATE.leadership = Leadership(
        kube,
        namespace=CONFIG.lease_namespace,
        name=CONFIG.lease_name,
        identity=identity,
        lease_seconds=CONFIG.lease_seconds,
        renew_every=max(0.5, CONFIG.lease_seconds / 5),
    )

    def activate() -> None:
        for group in workers:
            group.activate()

    async def deactivate() -> None:
        for group in workers:
            await group.deactivate()

    STATE.leadership_task = asyncio.create_task(
        STATE.leadership.run(activate, deactivate), name="leadership"
    )
    log.info(
        "leader election on lease %s/%s as %s", CONFIG.lease_namespace, CONFIG.lease_name, identity
    )


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    if STATE.podwatch is not None:
        STATE.podwatch.stop()
    if STATE.scaleset_watch is not None:
        STATE.scaleset_watch.stop()
    if STATE.endpoint_watch is not None:
        STATE.endpoint_watch.stop()
    if STATE.scaleset_follower is not None:
        STATE.scaleset_follower.cancel()
    if STATE.notifier is not None:
        await asyncio.to_thread(STATE.notifier.stop)
    if STATE.leadership_task is not None:
        STATE.leadership_task.cancel()
    if STATE.workers is not None:
        await STATE.workers.stop_all()
    if STATE.wave_workers is not None:
        await STATE.wave_workers.stop_all()
    if STATE.leadership is not None and STATE.leadership.leading:
        await asyncio.to_thread(STATE.leadership.release)


async def scaleset_changed(kind: str, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    if not namespace or not name:
        return
    key = (str(namespace), str(name))
    if kind == "DELETED":
        await _workers().stop(key)
        STATE.pods.forget(key)
        STATE.scalesets.forget(key)
        STATE.service_users.forget(key)
        if STATE.metrics is not None:
            STATE.metrics.forget(*key)
        if STATE.notifier is not None:
            STATE.notifier.forget(*key)
        _wave_workers().poke_all()
        return
    # Our own write of progress counters comes back as an event. A status write is conditional
    # on the version the pass read, so the object at the version it produced is what that pass
    # planned on plus those counters: nothing to plan on (anyone's later change has a later
    # version, and changes of pods come through the pod watch).
    with contextlib.suppress(TypeError, orjson.JSONEncodeError):
        STATE.scalesets.observe(key, obj)
    STATE.service_users.observe(key, obj)
    if not STATE.scalesets.is_idle_echo(key, meta.get("resourceVersion")):
        _workers().poke(key)
    # A wave waits on its scale sets' statuses.
    _wave_workers().poke_all()


@kopf.on.event(GROUP, VERSION, IV_PLURAL)
async def catalog_changed(**_: Any) -> None:
    assert STATE.kube is not None
    STATE.kube.invalidate_catalog()
    _workers().poke_all()


@kopf.on.event(GROUP, VERSION, WAVE_PLURAL)
async def wave_changed(
    *, event: Mapping[str, object], body: kopf.Body, name: str, **_: Any
) -> None:
    assert STATE.kube is not None
    STATE.kube.invalidate_waves()
    if event.get("type") == "DELETED":
        await _wave_workers().stop(("", name))
        STATE.wave_gates.pop(name, None)
        if STATE.notifier is not None:
            # A wave made again under this name meets its sinks afresh.
            STATE.notifier.forget("", name)
        _workers().poke_all()
        return
    _wave_workers().poke(("", name))
    gates = _gates_of(body)
    if STATE.wave_gates.get(name) != gates:
        # Stages, selectors, an admitted stage or a fault changed: some scale set may move.
        STATE.wave_gates[name] = gates
        _workers().poke_all()


def _gates_of(body: Mapping[str, Any]) -> object:
    spec = body.get("spec") or {}
    versions = (body.get("status") or {}).get("versions") or []
    # The soak's end too: instances waiting for it show until when.
    held = sorted(
        (
            str(v.get("image")),
            str(v.get("version")),
            str(v.get("stageIndex")),
            v.get("phase") == "Faulted",
            str(v.get("soakEndsAt")),
        )
        for v in versions
        if isinstance(v, dict)
    )
    return (repr(spec), held)


@kopf.on.probe(id="workers")
async def worker_count(**_: Any) -> int:
    return len(_workers().keys())


@kopf.on.probe(id="leader")
async def is_leader(**_: Any) -> bool:
    return _workers().active
