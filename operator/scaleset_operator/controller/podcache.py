"""The pods of each scale set as the pod watch last reported them.

Most passes change nothing: a pod flipped ready, a timer fired early. Planning those against
the watch's copy spares kube-apiserver a LIST that scans every pod of the namespace. The copy is
only a filter: a pass that would act on pods lists them afresh and plans again, so every pod
write still rests on a fresh read. Watch events that arrive while such a LIST is in flight are
played again on top of its answer: the watch delivers each pod's changes in order, so a change
older than the LIST's copy is always followed by the one the LIST saw, and the copy ends up as
fresh as the watch itself. The pod watch resumes without gaps and reports pods that vanished
while it could not, so the copy stays right; still, it is trusted for at most `max_age` seconds
after a LIST, a bound on the harm of a bug or a missed event.

Parsing a thousand pods into instances on every pass cost more than planning itself, so each
pod's instance is kept until the pod (its resourceVersion) or what parsing reads besides the
pod (the OS container's name, the readiness gate, the node's zone, the endpoints) changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from scaleset_operator.k8s.pods import to_instance
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.planner.model_hash import os_container_name
from scaleset_operator.planner.verdict_memo import VerdictMemo

Obj = dict[str, Any]
DEFAULT_MAX_AGE = 60.0
# Events kept for replay while one LIST is in flight; beyond that the LIST's copy is not trusted.
REPLAY_LIMIT = 100_000


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
    """Per scale set, its pods as the watch last reported them (slimmed) and the instances
    parsed from them. Thread-safe: the pod watch's thread writes, the workers' threads read.
    `pods` answers None when the copy is not to be trusted (never listed, or listed more than
    `max_age` seconds ago), and the caller lists instead."""

    def __init__(
        self, max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._pods: dict[Hashable, dict[str, Obj]] = {}
        self._seeded_at: dict[Hashable, float] = {}
        # Per scale set with a LIST in flight: the events since its mark (None: too many).
        self._replay: dict[Hashable, list[tuple[str, Obj]] | None] = {}
        # Per scale set: pod name -> (what its instance was parsed from, the instance).
        self._parsed: dict[Hashable, dict[str, tuple[tuple[Any, ...], Instance | None]]] = {}
        # Per scale set: health verdicts of the instances above, kept as long as they are.
        self._verdicts: dict[Hashable, VerdictMemo] = {}

    def observe(self, key: Hashable, event_type: str, pod: Obj) -> None:
        """A watch event for a pod of `key`."""
        small = slim(pod)
        with self._lock:
            _apply(self._pods.setdefault(key, {}), event_type, small)
            if key in self._replay:
                log = self._replay[key]
                if log is not None and len(log) < REPLAY_LIMIT:
                    log.append((event_type, small))
                else:
                    self._replay[key] = None

    def mark(self, key: Hashable) -> None:
        """Call before a LIST, then `seed` with its answer: events in between are replayed."""
        with self._lock:
            self._replay[key] = []

    def seed(self, key: Hashable, pods: list[Obj]) -> None:
        with self._lock:
            fresh = {str(p["metadata"]["name"]): slim(p) for p in pods}
            log = self._replay.pop(key, None)
            self._pods[key] = fresh
            if log is None:
                # Too many events to replay, or no mark: which copy is newer is unknown.
                self._seeded_at.pop(key, None)
                return
            for event_type, small in log:
                _apply(fresh, event_type, small)
            self._seeded_at[key] = self._clock()

    def pods(self, key: Hashable) -> list[Obj] | None:
        """The watch's copy, or None when it is not to be trusted."""
        with self._lock:
            seeded = self._seeded_at.get(key)
            if seeded is None or self._clock() - seeded > self.max_age:
                return None
            return list(self._pods.get(key, {}).values())

    def instances(
        self,
        key: Hashable,
        pods: list[Obj],
        spec: ScaleSetSpec,
        zones: dict[str, str],
        ready_endpoints: set[str] | None,
    ) -> tuple[Instance, ...]:
        """`to_instance` of every pod, reusing what an earlier pass parsed from the same pod."""
        os_name = os_container_name(spec)
        gate = spec.health_probe.condition_type
        before = self._parsed.get(key, {})
        parsed: dict[str, tuple[tuple[Any, ...], Instance | None]] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            name = str(meta.get("name", ""))
            node = (pod.get("spec") or {}).get("nodeName")
            source = (
                meta.get("uid"),
                meta.get("resourceVersion"),
                os_name,
                gate,
                zones.get(node) if node else None,
                None if ready_endpoints is None else name in ready_endpoints,
            )
            known = before.get(name)
            if known is not None and known[0] == source and source[1] is not None:
                parsed[name] = known
            else:
                parsed[name] = (source, to_instance(pod, spec, zones, ready_endpoints))
        self._parsed[key] = parsed
        found = tuple(i for _, i in parsed.values() if i is not None)
        self._verdicts.setdefault(key, VerdictMemo()).keep_only(found)
        return found

    def verdicts(self, key: Hashable) -> VerdictMemo:
        """The verdicts kept for the instances the last `instances` call returned."""
        return self._verdicts.setdefault(key, VerdictMemo())

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._parsed.pop(key, None)
            self._verdicts.pop(key, None)
            self._pods.pop(key, None)
            self._seeded_at.pop(key, None)
            self._replay.pop(key, None)


def _apply(pods: dict[str, Obj], event_type: str, small: Obj) -> None:
    name = str(small["metadata"].get("name", ""))
    if event_type == "DELETED":
        pods.pop(name, None)
    else:
        pods[name] = small
