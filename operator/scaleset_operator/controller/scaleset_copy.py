"""The ScaleSets as the watch last delivered them, so that a pass need not GET its own.

A pass may plan on the watch's object when that object is the very version this operator last
read or wrote: as far as the watch has told, nobody has changed the ScaleSet since. The watch
may still be a moment behind a change it has not delivered yet, so the copy is only trusted for
what cannot go wrong on a stale object: a status write is conditional on the version it read
(a stale one is refused, and the copy is then distrusted); a pass that acts on pods writes its
status first, or reads the ScaleSet afresh when it has no status to write
(`reconcile.confirm_before_acting`). Most passes of an upgrade watch their members settle and
write nothing but progress; those are the GETs this saves.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import orjson

Obj = dict[str, Any]


def _version(obj: Obj) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


class ScaleSetCopy:
    """Per scale set: the object the watch delivered last, and the version this operator knows
    to have been the latest (from its own GET or status write). Thread-safe: the watch's
    handler writes on the event loop, passes read in worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Kept encoded: a few kilobytes each, where the decoded objects of thousands of scale
        # sets would be tens of megabytes; decoding one costs a pass far less than a GET.
        self._watched: dict[Hashable, tuple[str | None, bytes]] = {}
        self._known: dict[Hashable, str] = {}
        # The version our last status write of progress alone produced: its watch event is our
        # own echo, with nothing in it to plan on.
        self._idle_echo: dict[Hashable, str] = {}

    def observe(self, key: Hashable, obj: Obj) -> None:
        """The watch delivered `obj` (encoded at once: the caller may change it afterwards)."""
        encoded = orjson.dumps(obj)
        with self._lock:
            self._watched[key] = (_version(obj), encoded)

    def known(self, key: Hashable, obj: Obj) -> None:
        """A GET or a status write of ours returned `obj`: its version was the latest."""
        version = _version(obj)
        with self._lock:
            if version is None:
                self._known.pop(key, None)
            else:
                self._known[key] = version

    def wrote_progress(self, key: Hashable, version: str) -> None:
        """Our status write recording progress alone produced `version`."""
        with self._lock:
            self._idle_echo[key] = version

    def is_idle_echo(self, key: Hashable, version: object) -> bool:
        with self._lock:
            return version is not None and self._idle_echo.get(key) == version

    def distrust(self, key: Hashable) -> None:
        """A write was refused as stale: the next pass reads afresh."""
        with self._lock:
            self._known.pop(key, None)

    def get(self, key: Hashable) -> Obj | None:
        """The watch's object when it is the version last read or written, else None."""
        with self._lock:
            watched = self._watched.get(key)
            known = self._known.get(key)
        if watched is None or known is None or watched[0] != known:
            return None
        return dict(orjson.loads(watched[1]))

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._watched.pop(key, None)
            self._known.pop(key, None)
            self._idle_echo.pop(key, None)
