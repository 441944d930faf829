"""The pods of each scale set as the pod watch last reported them.

Most passes change nothing: a pod flipped ready, a timer fired early. Planning those against
the watch's copy spares kube-apiserver a LIST that scans every pod of the namespace. The copy is
only a filter: a pass that would act or write status lists the pods afresh and plans again, so
every write still rests on a fresh read. The copy is trusted only when no watch event raced
with the LIST that seeded it, and for at most `max_age` seconds (a watch that reconnects
reports no deletions it missed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

Obj = dict[str, Any]
DEFAULT_MAX_AGE = 10.0


def slim(pod: Obj) -> Obj:
    """What planning reads of a pod: metadata without managedFields (often half the object),
    the containers' names and images, the node, and the status."""
    spec = pod.get("spec") or {}
    return {
        "metadata": {k: v for k, v in (pod.get("metadata") or {}).items() if k != "managedFields"},
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": [
                {"name": c.get("name"), "image": c.get("image")}
                for c in spec.get("containers") or []
                if isinstance(c, dict)
            ],
        },
        "status": pod.get("status") or {},
    }


class PodCache:
    def __init__(
        self, max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._pods: dict[Hashable, dict[str, Obj]] = {}
        self._seeded_at: dict[Hashable, float] = {}
        self._events: dict[Hashable, int] = {}

    def observe(self, key: Hashable, event_type: str, pod: Obj) -> None:
        """A watch event for a pod of `key`."""
        name = str((pod.get("metadata") or {}).get("name", ""))
        with self._lock:
            self._events[key] = self._events.get(key, 0) + 1
            pods = self._pods.setdefault(key, {})
            if event_type == "DELETED":
                pods.pop(name, None)
            else:
                pods[name] = slim(pod)

    def mark(self, key: Hashable) -> int:
        """Call before a LIST; hand the result to `seed` with the LIST's answer."""
        with self._lock:
            return self._events.get(key, 0)

    def seed(self, key: Hashable, pods: list[Obj], mark: int) -> None:
        with self._lock:
            self._pods[key] = {str(p["metadata"]["name"]): slim(p) for p in pods}
            if self._events.get(key, 0) == mark:
                self._seeded_at[key] = self._clock()
            else:
                # An event came in while listing: which one is newer is unknown.
                self._seeded_at.pop(key, None)

    def pods(self, key: Hashable) -> list[Obj] | None:
        """The watch's copy, or None when it is not to be trusted."""
        with self._lock:
            seeded = self._seeded_at.get(key)
            if seeded is None or self._clock() - seeded > self.max_age:
                return None
            return list(self._pods.get(key, {}).values())

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._pods.pop(key, None)
            self._seeded_at.pop(key, None)
            self._events.pop(key, None)
