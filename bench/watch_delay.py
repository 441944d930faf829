"""How soon kube-apiserver tells a watcher of a write: a watch of one namespace's pods, each
MODIFIED event timed against the newest ``managedFields`` stamp of the object it carries (the
time of the write behind it, to the second, so a delay reads up to a second long).

It tells a slow apiserver from a slow client: if this watch sees writes within a second while
kwok plays its stages many seconds late, the pods are queued in kwok.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

Obj = dict[str, Any]


def write_time(pod: Obj) -> float | None:
    """Seconds since the epoch of the newest ``managedFields`` entry of ``pod``."""
    stamps = [e.get("time") for e in (pod.get("metadata") or {}).get("managedFields") or [] if e]
    newest = max((s for s in stamps if isinstance(s, str)), default=None)
    if newest is None:
        return None
    return datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp()


class WatchDelay:
    """Runs the watch in a thread; ``delays(since, until)`` gives the delays of the events that
    arrived between those wall-clock times."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._v1 = client.CoreV1Api(api)
        self._namespace = namespace
        self._lock = threading.Lock()
        self._seen: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch-delay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def delays(self, since: float, until: float) -> list[float]:
        with self._lock:
            return [d for at, d in self._seen if since <= at <= until]

    def _run(self) -> None:
        rv = None
        while not self._stop.is_set():
            try:
                # Plain JSON lines: the typed client's models would cost this benchmark far more
                # CPU per event, taken from the processes it measures.
                resp = self._v1.list_namespaced_pod(
                    self._namespace,
                    watch=True,
                    resource_version=rv,
                    timeout_seconds=300,
                    _preload_content=False,
                )
                for line in iter_resp_lines(resp):
                    if self._stop.is_set():
                        break
                    arrived = time.time()
                    event = json.loads(line)
                    pod = event.get("object") or {}
                    rv = (pod.get("metadata") or {}).get("resourceVersion") or rv
                    if event.get("type") != "MODIFIED":
                        continue
                    written = write_time(pod)
                    if written is not None:
                        with self._lock:
                            self._seen.append((arrived, arrived - written))
                resp.release_conn()
            except Exception:
                # A lost watch is only a gap in the measurement: start another one.
                rv = None
                time.sleep(1.0)
