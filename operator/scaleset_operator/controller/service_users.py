"""Which scale sets judge their instances' health by a Service's EndpointSlices.

An endpoint can turn ready, or stop being ready, without any change to its pod (the
EndpointSlice controller writes a moment after the kubelet, and a Service's selector can
change), so the pod watch does not see it. The EndpointSlice watch asks this index whom a
change of a Service's slices concerns, and wakes those scale sets alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from scaleset_operator.controller.listwatch import EndpointSliceWatch
from scaleset_operator.k8s.client import SERVICE_NAME_LABEL, KubeClient
from scaleset_operator.models.scaleset import HealthSource

Key = tuple[str, str]
Service = tuple[str, str]
Obj = dict[str, Any]


def probed_service(obj: Obj) -> Service | None:
    """The (namespace, name) of the Service whose endpoints say whether the ScaleSet `obj`'s
    instances are healthy; None when its health comes from elsewhere. Read from the raw
    object, which may be invalid: a spec that does not validate names no Service."""
    meta, spec = obj.get("metadata"), obj.get("spec")
    probe = spec.get("healthProbe") if isinstance(spec, dict) else None
    if not isinstance(probe, dict) or probe.get("source") != HealthSource.LOAD_BALANCER.value:
        return None
    service = probe.get("serviceName")
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    if not isinstance(service, str) or not service or not namespace:
        return None
    return str(namespace), service


class ServiceUsers:
    """Scale set -> the Service it probes, and back. Used on the event loop only."""

    def __init__(self) -> None:
        self._probes: dict[Key, Service] = {}
        self._users: dict[Service, set[Key]] = {}

    def observe(self, key: Key, obj: Obj) -> None:
        """The ScaleSet `key` is now `obj`."""
        service = probed_service(obj)
        if self._probes.get(key) == service:
            return
        self.forget(key)
        if service is not None:
            self._probes[key] = service
            self._users.setdefault(service, set()).add(key)

    def forget(self, key: Key) -> None:
        service = self._probes.pop(key, None)
        if service is None:
            return
        users = self._users.get(service)
        if users is not None:
            users.discard(key)
            if not users:
                del self._users[service]

    def users(self, namespace: str, service: str) -> list[Key]:
        """The scale sets whose health this Service's endpoints tell, in a stable order."""
        return sorted(self._users.get((namespace, service), ()))


def start_endpoint_watch(
    kube: KubeClient, namespaces: Sequence[str], users: ServiceUsers, wake: Callable[[Key], None]
) -> EndpointSliceWatch:
    """Watches EndpointSlices; a change of a Service's slices wakes the scale sets among `users`
    that probe that Service. Called on the event loop, where `users` is read and `wake` called;
    the watch's thread only hands each change over."""
    loop = asyncio.get_running_loop()

    def service_changed(namespace: str, service: str) -> None:
        for key in users.users(namespace, service):
            wake(key)

    def changed(_: str, piece: Obj) -> None:
        meta = piece.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        namespace = meta.get("namespace")
        if not service or not namespace:
            return
        with contextlib.suppress(RuntimeError):  # the loop closes at shutdown
            loop.call_soon_threadsafe(service_changed, str(namespace), str(service))

    watch = EndpointSliceWatch(kube, namespaces, changed)
    watch.start()
    return watch
