"""List-then-watch loops (reflectors) feeding the dashboard's store, one thread each.

The Kubernetes client is synchronous, so each watch runs in a daemon thread and hands every
event to the event loop; the loop alone touches the store. A watch that expires (410 Gone)
or breaks lists again; short server-side timeouts let a stopping dashboard end them quickly.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import ExpiredError, KubeApiError

Obj = dict[str, Any]
WATCH_SECONDS = 10
RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class Source:
    """One kind of object to mirror: its collection path and label selector."""

    kind: str
    path: str
    selector: str | None = None


class Sink:
    """What a reflector reports to (implemented by the store, called from the thread)."""

    def reset(self, kind: str, items: list[Obj]) -> None:
        raise NotImplementedError

    def event(self, kind: str, type_: str, obj: Obj) -> None:
        raise NotImplementedError

    def failed(self, kind: str, message: str | None) -> None:
        raise NotImplementedError


class Reflector:
    def __init__(self, kube: KubeClient, source: Source, sink: Sink, stop: threading.Event):
        self.kube = kube
        self.source = source
        self.sink = sink
        self.stop = stop
        self.thread = threading.Thread(
            target=self._run, name=f"dashboard-watch-{source.kind}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def _query(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.source.selector)] if self.source.selector else []

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._list_and_watch()
            except ExpiredError:
                continue
            except Exception as exc:
                # The API's errors, a line that is not JSON (a proxy's error page) or not an
                # event: the page shows what went wrong and, as in the operator's pod watch,
                # the thread lives on; a dead one would leave the page stale without a word.
                message = " ".join(str(exc).split()) or type(exc).__name__
                self.sink.failed(self.source.kind, message)
                self.stop.wait(RETRY_SECONDS)

    def _list_and_watch(self) -> None:
        listed = self.kube.request("GET", self.source.path, query=self._query())
        version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        self.sink.reset(self.source.kind, list(listed.get("items") or []))
        self.sink.failed(self.source.kind, None)
        while not self.stop.is_set():
            query = [
                *self._query(),
                ("watch", "1"),
                ("resourceVersion", version),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", str(WATCH_SECONDS)),
            ]
            lines = self.kube.stream_lines(self.source.path, query, read_timeout=WATCH_SECONDS + 20)
            for line in lines:
                event = json.loads(line)
                type_, obj = str(event.get("type")), event.get("object") or {}
                if type_ == "ERROR":
                    if obj.get("code") == 410:
                        raise ExpiredError(str(obj.get("message")))
                    raise KubeApiError(str(obj.get("message")))
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if type_ != "BOOKMARK":
                    self.sink.event(self.source.kind, type_, obj)
                if self.stop.is_set():
                    return


def start_reflectors(
    kube: KubeClient, sources: list[Source], sink: Sink, stop: threading.Event
) -> list[Reflector]:
    reflectors = [Reflector(kube, s, sink, stop) for s in sources]
    for r in reflectors:
        r.start()
    return reflectors
