"""The dashboard's mirror of the cluster: scale sets, their pods and the image catalog, kept
current by the watches, plus each scale set's timeline. Lives on the event loop: reflector
threads hand their events over with `call_soon_threadsafe`, never touching it themselves.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from scaleset_operator.catalog.objects import catalog_entries
from scaleset_operator.dashboard.documents import detail, parse, summary
from scaleset_operator.dashboard.timeline import Timeline, advance
from scaleset_operator.dashboard.watches import Sink
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import KubeApiError
from scaleset_operator.k8s.pods import to_instance
from scaleset_operator.models.instance import LABEL_SCALESET
from scaleset_operator.planner.timefmt import stamp

Obj = dict[str, Any]
SCALESETS, PODS, CATALOG = "scalesets", "pods", "imageversions"


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _owner_key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{(meta.get('labels') or {}).get(LABEL_SCALESET, '')}"


class Store(Sink):
    def __init__(self, loop: asyncio.AbstractEventLoop, kube: KubeClient) -> None:
        self.loop = loop
        self.kube = kube
        self.scalesets: dict[str, Obj] = {}
        self.pods: dict[str, dict[str, Obj]] = {}
        self.catalog: dict[str, Obj] = {}
        self.timelines: dict[str, Timeline] = {}
        self.errors: dict[str, str] = {}
        self.synced: set[str] = set()
        self._subscribers: set[asyncio.Event] = set()

    # --- from the reflector threads ------------------------------------------------------
    def reset(self, kind: str, items: list[Obj]) -> None:
        self.loop.call_soon_threadsafe(self._reset, kind, items)

    def event(self, kind: str, type_: str, obj: Obj) -> None:
        self.loop.call_soon_threadsafe(self._event, kind, type_, obj)

    def failed(self, kind: str, message: str | None) -> None:
        self.loop.call_soon_threadsafe(self._failed, kind, message)

    # --- on the loop ---------------------------------------------------------------------
    def _reset(self, kind: str, items: list[Obj]) -> None:
        if kind == SCALESETS:
            self.scalesets = {}
        elif kind == PODS:
            self.pods = {}
        else:
            self.catalog = {}
        for item in items:
            self._put(kind, "ADDED", item)
        self.synced.add(kind)
        self._notify()

    def _event(self, kind: str, type_: str, obj: Obj) -> None:
        self._put(kind, type_, obj)
        self._notify()

    def _failed(self, kind: str, message: str | None) -> None:
        if message is None:
            if self.errors.pop(kind, None) is not None:
                self._notify()
            return
        self.errors[kind] = message
        self._notify()

    def _put(self, kind: str, type_: str, obj: Obj) -> None:
        gone = type_ == "DELETED"
        if kind == SCALESETS:
            key = _key(obj)
            if gone:
                self.scalesets.pop(key, None)
                self.timelines.pop(key, None)
                return
            self.scalesets[key] = obj
            parsed = parse(obj)
            moment = stamp(datetime.now(UTC))
            found = advance(self.timelines.get(key), parsed.status, moment)
            if found is not None:
                self.timelines[key] = found
        elif kind == PODS:
            owner = _owner_key(obj)
            name = str((obj.get("metadata") or {}).get("name") or "")
            pods = self.pods.setdefault(owner, {})
            if gone:
                pods.pop(name, None)
            else:
                pods[name] = obj
        else:
            name = str((obj.get("metadata") or {}).get("name") or "")
            if gone:
                self.catalog.pop(name, None)
            else:
                self.catalog[name] = obj

    # --- subscribers (event streams) -----------------------------------------------------
    def subscribe(self) -> asyncio.Event:
        changed = asyncio.Event()
        changed.set()
        self._subscribers.add(changed)
        return changed

    def unsubscribe(self, changed: asyncio.Event) -> None:
        self._subscribers.discard(changed)

    def _notify(self) -> None:
        for changed in self._subscribers:
            changed.set()

    # --- documents -----------------------------------------------------------------------
    def overview(self) -> Obj:
        rows = [summary(parse(obj)) for _, obj in sorted(self.scalesets.items())]
        return {
            "scalesets": rows,
            "errors": dict(sorted(self.errors.items())),
            "synced": sorted(self.synced),
        }

    async def detail(self, key: str) -> Obj | None:
        obj = self.scalesets.get(key)
        if obj is None:
            return None
        parsed = parse(obj)
        pods = list(self.pods.get(key, {}).values())
        nodes = {str((p.get("spec") or {}).get("nodeName") or "") for p in pods} - {""}
        try:
            # Cached by the cluster client for a minute; empty when nodes may not be listed.
            zones = await asyncio.to_thread(self.kube.node_zones, nodes)
        except KubeApiError:
            zones = {}
        instances = []
        if parsed.spec is not None:
            found = (to_instance(p, parsed.spec, zones, None) for p in pods)
            instances = [i for i in found if i is not None]
        catalog = catalog_entries(self.catalog.values())
        return detail(parsed, instances, catalog, self.timelines.get(key))
