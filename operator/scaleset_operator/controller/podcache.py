"""The pods of each scale set as the pod watch last reported them.

Most passes change nothing: a pod flipped ready, a timer fired early. Planning those against
the watch's copy spares kube-apiserver a LIST that scans every pod of the namespace. The copy is
only a filter: a pass that would act on pods lists them afresh and plans again, so every pod
write still rests on a fresh read. Watch events that arrive while such a LIST is in flight are
played again on top of its answer: the watch delivers each pod's changes in order, so a change
older than the LIST's copy is always followed by the one the LIST saw, and the copy ends up as
fresh as the watch itself. The pod watch resumes without gaps and reports pods that vanished
while it could not, so the copy stays right; still, it is trusted for a bounded time after a
LIST (15 to 22.5 minutes), a bound on the harm of a bug or a missed event.

A pass that acts plans on the copy too once the copy holds every pod write of our own, the way
Kubernetes' own controllers act on their informers with "expectations": each write's answer
carries the pod's new resourceVersion, and the write is confirmed when the watch reports that
version (or the pod's deletion). Until then the pass waits for the watch, which reports our
writes within moments as a rule, for at most a short while after the last of them; when that
runs out, while the watch reconnects, or after a write that lost a race, it lists the pods
afresh. (A LIST of a thousand pods costs the operator as much CPU as ten passes.) The copy is
then behind the API only by what other writers did in the last moments, which a LIST would be
too by the time the writes land; and every pod write still tests the pod's uid and image, so a
pod that changed under us is never overwritten.

Parsing a thousand pods into instances on every pass cost more than planning itself, so each
pod's instance is kept until the pod (its resourceVersion) or what parsing reads besides the
pod (the OS container's name, the readiness gate, the node's zone, the endpoints) changes.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from scaleset_operator.k8s.pods import ready_on_spec, to_instance
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.planner.model_hash import os_container_name
from scaleset_operator.planner.verdict_memo import VerdictMemo

Obj = dict[str, Any]
# Fifteen minutes and more: each LIST of a set's pods makes kube-apiserver filter every pod of
# the namespace, so these LISTs cost sets x pods per period. Re-listing once a minute cost a fleet
# of 500 sets in one namespace 2,316-3,638 LISTs during its 10,000-instance upgrade; every five
# minutes, 500 at once, as the copies of sets made together expired together.
DEFAULT_MAX_AGE = 900.0
# Each set's bound is longer by up to this fraction of it, fixed by its name: sets seeded together
# re-list one at a time, not in one burst.
DEFAULT_SPREAD = 0.5
# Events kept for replay while one LIST is in flight; beyond that the LIST's copy is not trusted.
REPLAY_LIMIT = 100_000
# resourceVersions remembered per scale set between two LISTs, so that a write whose watch event
# came before its answer counts as seen; beyond that the copy waits for the next LIST.
SEEN_LIMIT = 200_000


# What planning reads of a container's status (`k8s.pods.to_instance`).
_CONTAINER_STATUS_KEYS = ("name", "image", "ready", "restartCount", "state", "lastState")


def slim(pod: Obj) -> Obj:
    """What planning reads of a pod: metadata without managedFields (often half the object),
    the containers' names and images, the node, the phase, the conditions and the containers'
    states; not addresses, ids or resources. At 10,000 pods the copy is most of the operator's
    memory."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
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
        "status": {
            "phase": status.get("phase"),
            "conditions": status.get("conditions"),
            "containerStatuses": [
                {k: c[k] for k in _CONTAINER_STATUS_KEYS if k in c}
                for c in status.get("containerStatuses") or []
                if isinstance(c, dict)
            ],
        },
    }


_Parsed = tuple[tuple[Any, ...], Instance | None, Obj]


class Snapshot(NamedTuple):
    pods: list[Obj]
    caught_up: bool
    # While the copy lacks writes of ours: how long ago the last of our writes was answered
    # (0 when caught up; infinite while the watch reconnects, as the copy may lag by anything).
    since_write: float = 0.0


class PodCache:
    """Per scale set, its pods as the watch last reported them (slimmed) and the instances
    parsed from them. Thread-safe: the pod watch's thread writes, the workers' threads read.
    `pods` answers None when the copy is not to be trusted (never listed, or listed longer
    ago than `trusted_for`), and the caller lists instead."""

    def __init__(
        self,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
        live: Callable[[], bool] = lambda: True,
        spread: float = DEFAULT_SPREAD,
    ) -> None:
        self.max_age = max_age
        self.spread = spread
        self._clock = clock
        # Whether the watch feeding the copy streams now; set once the watch exists.
        self.live = live
        self._lock = threading.Lock()
        self._pods: dict[Hashable, dict[str, Obj]] = {}
        self._seeded_at: dict[Hashable, float] = {}
        # Per scale set with a LIST in flight: the events since its mark (None: too many).
        self._replay: dict[Hashable, list[tuple[str, Obj]] | None] = {}
        # Per scale set: pod name -> (what its instance was parsed from, the instance, the pod
        # object), and what the last parse read besides the pods.
        self._parsed: dict[Hashable, dict[str, _Parsed]] = {}
        self._contexts: dict[Hashable, tuple[Any, ...]] = {}
        # Per scale set: health verdicts of the instances above, kept as long as they are.
        self._verdicts: dict[Hashable, VerdictMemo] = {}
        # Per scale set, since its last LIST: the resourceVersions the watch reported, and our
        # own writes it has not reported yet (resourceVersion -> pod name).
        self._seen: dict[Hashable, set[str]] = {}
        self._expected: dict[Hashable, dict[str, str]] = {}
        # Per scale set: when the last write of ours was answered.
        self._written_at: dict[Hashable, float] = {}

    def observe(self, key: Hashable, event_type: str, pod: Obj) -> None:
        """A watch event for a pod of `key`."""
        small = slim(pod)
        meta = small["metadata"]
        with self._lock:
            _apply(self._pods.setdefault(key, {}), event_type, small)
            self._confirm(key, event_type, str(meta.get("name", "")), meta.get("resourceVersion"))
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

    def seed(self, key: Hashable, pods: list[Obj]) -> list[Obj]:
        """The LIST's answer becomes the copy; returns it slimmed, for the pass to plan on (the
        whole objects are not kept: the parsed instances hold on to the pods they came from)."""
        with self._lock:
            fresh = {str(p["metadata"]["name"]): slim(p) for p in pods}
            listed = list(fresh.values())
            log = self._replay.pop(key, None)
            self._pods[key] = fresh
            # The LIST began after every write of ours so far had been answered.
            self._seen.pop(key, None)
            self._expected.pop(key, None)
            if log is None:
                # Too many events to replay, or no mark: which copy is newer is unknown.
                self._seeded_at.pop(key, None)
                return listed
            for event_type, small in log:
                _apply(fresh, event_type, small)
            self._seeded_at[key] = self._clock()
            return listed

    def expect(self, key: Hashable, written: Obj) -> None:
        """Our write of a pod of `key` was answered with `written`: the copy is behind until
        the watch reports that version."""
        meta = written.get("metadata") or {}
        version = meta.get("resourceVersion")
        with self._lock:
            if not version:
                self._seeded_at.pop(key, None)
            elif str(version) not in self._seen.get(key, ()):
                self._expected.setdefault(key, {})[str(version)] = str(meta.get("name", ""))
                self._written_at[key] = self._clock()

    def writing(self, key: Hashable) -> None:
        """Call before a pass's pod writes: versions the watch reported before them cannot be
        theirs, so only what comes after is remembered for `expect`."""
        with self._lock:
            seen = self._seen.get(key)
            if seen:
                seen.clear()

    def distrust(self, key: Hashable) -> None:
        """A write lost a race: the next pass lists the pods."""
        with self._lock:
            self._seeded_at.pop(key, None)

    def _confirm(self, key: Hashable, event_type: str, name: str, version: object | None) -> None:
        seen = self._seen.setdefault(key, set())
        if len(seen) >= SEEN_LIMIT:
            seen.clear()
            self._seeded_at.pop(key, None)
        expected = self._expected.get(key)
        if version:
            seen.add(str(version))
            if expected:
                expected.pop(str(version), None)
        if expected and event_type == "DELETED":
            for gone in [v for v, n in expected.items() if n == name]:
                del expected[gone]

    def unready(self, key: Hashable, names: frozenset[str]) -> set[str]:
        """Of these pods, those the copy holds and does not show Ready on their spec's
        images."""
        with self._lock:
            pods = self._pods.get(key, {})
            return {n for n in names if n in pods and not ready_on_spec(pods[n])}

    def pods(self, key: Hashable) -> list[Obj] | None:
        """The watch's copy, or None when it is not to be trusted."""
        taken = self.snapshot(key)
        return None if taken is None else taken.pods

    def snapshot(self, key: Hashable) -> Snapshot | None:
        """The watch's copy (None when it is not to be trusted) and whether it holds every
        write of ours since the last LIST, both as of one instant. Asked apart, the watch
        could report our last write in between, and a copy taken before it would pass for
        caught up. While a failed watch reconnects, changes reach the copy late: not caught
        up either."""
        live = self.live()
        with self._lock:
            seeded = self._seeded_at.get(key)
            if seeded is None or self._clock() - seeded > self.trusted_for(key):
                return None
            pods = list(self._pods.get(key, {}).values())
            if not live:
                return Snapshot(pods, False, math.inf)
            if not self._expected.get(key):
                return Snapshot(pods, True)
            return Snapshot(pods, False, self._clock() - self._written_at.get(key, -math.inf))

    def trusted_for(self, key: Hashable) -> float:
        """How long after its LIST the copy of `key` is trusted: `max_age`, longer by a share
        of `spread` that depends on the key alone (the same in every process)."""
        share = zlib.crc32(repr(key).encode()) / 2**32
        return self.max_age * (1 + self.spread * share)

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
        # What parsing reads besides the pods, all of it alike: a pod object seen by the last
        # call under the same context gives the same instance, found without looking into it.
        endpoints = None if ready_endpoints is None else frozenset(ready_endpoints)
        context = (os_name, gate, dict(zones), endpoints)
        same_context = self._contexts.get(key) == context
        self._contexts[key] = context
        parsed: dict[str, _Parsed] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            name = str(meta.get("name", ""))
            known = before.get(name)
            if same_context and known is not None and known[2] is pod:
                parsed[name] = known
                continue
            node = (pod.get("spec") or {}).get("nodeName")
            source = (
                meta.get("uid"),
                meta.get("resourceVersion"),
                os_name,
                gate,
                zones.get(node) if node else None,
                None if ready_endpoints is None else name in ready_endpoints,
            )
            if known is not None and known[0] == source and source[1] is not None:
                parsed[name] = (source, known[1], pod)
            else:
                parsed[name] = (source, to_instance(pod, spec, zones, ready_endpoints), pod)
        self._parsed[key] = parsed
        found = tuple(i for _, i, _ in parsed.values() if i is not None)
        self._verdicts.setdefault(key, VerdictMemo()).keep_only(found)
        return found

    def verdicts(self, key: Hashable) -> VerdictMemo:
        """The verdicts kept for the instances the last `instances` call returned."""
        return self._verdicts.setdefault(key, VerdictMemo())

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._parsed.pop(key, None)
            self._contexts.pop(key, None)
            self._verdicts.pop(key, None)
            self._seen.pop(key, None)
            self._expected.pop(key, None)
            self._written_at.pop(key, None)
            self._pods.pop(key, None)
            self._seeded_at.pop(key, None)
            self._replay.pop(key, None)


def _apply(pods: dict[str, Obj], event_type: str, small: Obj) -> None:
    name = str(small["metadata"].get("name", ""))
    if event_type == "DELETED":
        pods.pop(name, None)
    else:
        pods[name] = small
