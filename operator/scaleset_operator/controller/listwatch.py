"""Objects listed and then watched, each path in a thread of its own: the pods of scale sets,
the ScaleSets themselves, and the EndpointSlices of Services.

Every pod of a rolling scale set changes three times per upgrade (our patch, the kubelet going
down and coming back), so the pod stream is most of what the operator reads; each status write
of ours comes back on the ScaleSet stream. kopf hands each event through its whole handler
machinery, about a millisecond apiece; these watches decode a line and hand it on. For pods the
apiserver filters by label, so pods of other workloads never reach us.

A watch that ends (server timeout, dropped connection) resumes from the last resourceVersion it
saw. When that version is too old (410 Gone) the objects are listed again, and objects that
vanished in between are reported as deleted: a watch alone would never tell.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from scaleset_operator.k8s.client import SERVICE_NAME_LABEL, KubeClient
from scaleset_operator.k8s.errors import ExpiredError, KubeApiError
from scaleset_operator.models.scaleset import GROUP, PLURAL, VERSION

Obj = dict[str, Any]
EventSink = Callable[[str, Obj], None]
log = logging.getLogger("scaleset_operator.listwatch")

BACKOFF = (0.5, 1.0, 2.0, 5.0)


def collection_paths(group_version: str, plural: str, namespaces: Sequence[str]) -> list[str]:
    """The collection in each of these namespaces, or in all of them when none is named."""
    if namespaces:
        return [f"{group_version}/namespaces/{ns}/{plural}" for ns in namespaces]
    return [f"{group_version}/{plural}"]


class ListWatch:
    """One thread per watched path (all namespaces, or each namespace the operator is limited
    to) that lists, then watches, the objects there (those carrying ``label``, when given) and
    hands every change to ``on_event`` as ("ADDED" | "MODIFIED" | "DELETED", object).
    ``synced`` is set once every path has listed."""

    def __init__(
        self,
        kube: KubeClient,
        paths: Sequence[str],
        on_event: EventSink,
        *,
        label: str | None = None,
        timeout_seconds: int = 60,
    ) -> None:
        self.kube = kube
        # Objects that carry this label (any value) are watched; all of them without one.
        self.label = label
        self.paths = list(paths)
        self.on_event = on_event
        self.timeout_seconds = timeout_seconds
        self._stopping = threading.Event()
        self.synced = threading.Event()
        self.lists = 0
        self.watches = 0
        self._listed: set[str] = set()
        self._streaming: set[str] = set()
        self._lock = threading.Lock()

    @property
    def live(self) -> bool:
        """Every path is being watched now: changes reach `on_event` as they happen. False
        from a watch's failure until it streams again (its events arrive late meanwhile)."""
        with self._lock:
            return self._streaming >= set(self.paths)

    def _streams(self, path: str, yes: bool) -> None:
        with self._lock:
            if yes:
                self._streaming.add(path)
            else:
                self._streaming.discard(path)

    def start(self) -> None:
        for path in self.paths:
            threading.Thread(
                target=self._run, args=(path,), name=f"watch {path}", daemon=True
            ).start()

    def stop(self) -> None:
        """The threads end at their next event or server timeout; they hold nothing."""
        self._stopping.set()

    def _run(self, path: str) -> None:
        # (namespace, name) -> (uid, label value) of every object the watch has reported.
        known: dict[tuple[str, str], tuple[str, str]] = {}
        version: str | None = None
        failures = 0
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._list(path, known)
                version = self._watch(path, version, known)
                failures = 0
            except ExpiredError:
                self._streams(path, False)
                log.info("watch on %s expired; listing again", path)
                version = None
            except Exception as exc:
                self._streams(path, False)
                # Whatever went wrong (the API, a malformed line, a bug downstream), the thread
                # must live on: without it no scale set would hear of its pods (or itself) again.
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                level = (
                    logging.WARNING if isinstance(exc, KubeApiError | OSError) else logging.ERROR
                )
                log.log(level, "watch on %s failed (%r); again in %.1fs", path, exc, delay)
                if failures >= len(BACKOFF):
                    version = None  # start over from a LIST after repeated failures
                self._stopping.wait(delay)

    def _list(self, path: str, known: dict[tuple[str, str], tuple[str, str]]) -> str:
        self.lists += 1
        body = self.kube.request("GET", path, query=self._selector())
        items: list[Obj] = body.get("items") or []
        seen = set()
        for obj in items:
            key = _key(obj)
            seen.add(key)
            kind = "MODIFIED" if key in known else "ADDED"
            known[key] = self._remember(obj)
            self.on_event(kind, obj)
        for key in list(known.keys() - seen):
            uid, value = known.pop(key)
            self.on_event("DELETED", self._stub(key, uid, value))
        with self._lock:
            self._listed.add(path)
            if self._listed >= set(self.paths):
                self.synced.set()
        return str((body.get("metadata") or {}).get("resourceVersion", ""))

    def _watch(self, path: str, version: str, known: dict[tuple[str, str], tuple[str, str]]) -> str:
        self.watches += 1
        query = [
            *self._selector(),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", str(self.timeout_seconds)),
        ]
        lines = self.kube.stream_lines(
            path,
            query,
            read_timeout=self.timeout_seconds + 30,
            opened=lambda: self._streams(path, True),
        )
        for line in lines:
            if self._stopping.is_set():
                break
            event = orjson.loads(line)
            kind, obj = str(event.get("type", "")), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise ExpiredError(str(obj.get("message", "410 Gone")))
                raise ValueError(f"watch error: {obj.get('message', obj)}")
            meta = obj.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            key = _key(obj)
            if kind == "DELETED":
                known.pop(key, None)
            else:
                known[key] = self._remember(obj)
            self.on_event(kind, obj)
        return version

    def _selector(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.label)] if self.label else []

    def _remember(self, obj: Obj) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        value = (meta.get("labels") or {}).get(self.label, "") if self.label else ""
        return str(meta.get("uid", "")), str(value)

    def _stub(self, key: tuple[str, str], uid: str, value: str) -> Obj:
        """Enough of a vanished object to report its deletion: where it was and whose it was."""
        namespace, name = key
        meta: Obj = {"namespace": namespace, "name": name, "uid": uid}
        if self.label:
            meta["labels"] = {self.label: value}
        return {"metadata": meta}


class PodWatch(ListWatch):
    """The pods carrying ``label``."""

    def __init__(
        self,
        kube: KubeClient,
        label: str,
        namespaces: Sequence[str],
        on_event: EventSink,
        *,
        timeout_seconds: int = 60,
    ) -> None:
        paths = collection_paths("/api/v1", "pods", namespaces)
        super().__init__(kube, paths, on_event, label=label, timeout_seconds=timeout_seconds)


class ScaleSetWatch(ListWatch):
    """Every ScaleSet (in the namespaces the operator is limited to)."""

    def __init__(self, kube: KubeClient, namespaces: Sequence[str], on_event: EventSink) -> None:
        paths = collection_paths(f"/apis/{GROUP}/{VERSION}", PLURAL, namespaces)
        super().__init__(kube, paths, on_event)


class EndpointSliceWatch(ListWatch):
    """The EndpointSlices of Services (those the EndpointSlice controller keeps, which carry
    their Service's name): a scale set whose health is its Service's endpoints hears of a
    change there, which no pod event announces."""

    def __init__(self, kube: KubeClient, namespaces: Sequence[str], on_event: EventSink) -> None:
        paths = collection_paths("/apis/discovery.k8s.io/v1", "endpointslices", namespaces)
        super().__init__(kube, paths, on_event, label=SERVICE_NAME_LABEL)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))
