"""How soon kube-apiserver tells a watcher of a write: a watch of one namespace's pods, each
MODIFIED event timed against the newest ``managedFields`` stamp of the object it carries (the
time of the write behind it, to the second, so a delay reads up to a second long).

It tells a slow apiserver from a slow client: if this watch sees writes within a second while
kwok plays its stages many seconds late, the pods are queued in kwok.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client

from bench import common
from scaleset_operator.planner.timefmt import parse_stamp

Obj = dict[str, Any]


def write_time(pod: Obj) -> float | None:
    """Seconds since the epoch of the newest ``managedFields`` entry of ``pod``."""
    stamps = [e.get("time") for e in (pod.get("metadata") or {}).get("managedFields") or [] if e]
    newest = max((s for s in stamps if isinstance(s, str)), default=None)
    if newest is None:
        return None
    return parse_stamp(newest).timestamp()


class WatchDelay:
    """Runs the watch in a thread; ``delays(since, until)`` gives the delays of the events that
    arrived between those wall-clock times."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._lock = threading.Lock()
        self._seen: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=common.follow_pods,
            args=(api, namespace, self._event, self._stop),
            name="watch-delay",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def delays(self, since: float, until: float) -> list[float]:
        with self._lock:
            return [d for at, d in self._seen if since <= at <= until]

    def _event(self, kind: str, pod: Obj) -> None:
        if kind != "MODIFIED":
            return
        arrived = time.time()
        written = write_time(pod)
        if written is not None:
            with self._lock:
                self._seen.append((arrived, arrived - written))
