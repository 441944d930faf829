"""What each sink has acknowledged, per scale set or wave, and its record in the API.

The record is the object's annotation `scaleset.dev/notified` (a ScaleSet's, or an
UpgradeWave's): a JSON object from sink id to the `Position` of the last fact that sink
acknowledged (or that counted as delivered when the sink first saw the object). A thread writes
it, coalescing bursts, so that neither the reconcile pass nor a sink's delivery waits on the
API. Keys are (namespace, name); a wave is cluster-scoped, so its namespace is "" and
`WriteCursor` writes it at the cluster-scoped path.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from scaleset_operator.notifications.facts import Position

ANNOTATION = "scaleset.dev/notified"
Key = tuple[str, str]
WriteCursor = Callable[[str, str, str], None]
log = logging.getLogger("scaleset_operator.notifications")


def parse(text: str | None) -> dict[str, Position]:
    """Sink id -> position; an unreadable record counts as none (everything is re-sent)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    found = {}
    for sink, value in raw.items():
        position = Position.parse(value) if isinstance(value, str) else None
        if position is not None:
            found[str(sink)] = position
    return found


def render(positions: dict[str, Position]) -> str:
    return json.dumps({k: positions[k].key() for k in sorted(positions)}, separators=(",", ":"))


class Ledger:
    """In-memory cursors and the thread that records them in the annotation."""

    def __init__(self, write: WriteCursor, *, retry_after: float = 2.0) -> None:
        self._write = write
        self._retry_after = retry_after
        self._cursors: dict[Key, dict[str, Position]] = {}
        self._dirty: set[Key] = set()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify ledger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Writes what is pending, then ends the thread."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout=5)

    def seed(self, key: Key, recorded: dict[str, Position]) -> None:
        """Takes in what the API has recorded (another replica or an earlier process)."""
        with self._changed:
            mine = self._cursors.setdefault(key, {})
            for sink, position in recorded.items():
                if sink not in mine or mine[sink] < position:
                    mine[sink] = position

    def cursor(self, key: Key, sink: str) -> Position | None:
        with self._changed:
            return self._cursors.get(key, {}).get(sink)

    def advance(self, key: Key, sink: str, position: Position) -> None:
        with self._changed:
            mine = self._cursors.setdefault(key, {})
            if sink in mine and position <= mine[sink]:
                return
            mine[sink] = position
            self._dirty.add(key)
            self._changed.notify_all()

    def forget(self, key: Key) -> None:
        with self._changed:
            self._cursors.pop(key, None)
            self._dirty.discard(key)

    def flush(self) -> bool:
        """Writes every changed record once; False when a write failed (kept for a retry)."""
        with self._changed:
            batch = {key: render(self._cursors[key]) for key in self._dirty}
            self._dirty.clear()
        ok = True
        for key, value in batch.items():
            try:
                self._write(key[0], key[1], value)
            except Exception as exc:  # any failure: the record is written again later
                where = "/".join(part for part in key if part)
                log.warning("cannot record notifications of %s: %s", where, exc)
                with self._changed:
                    if key in self._cursors:
                        self._dirty.add(key)
                ok = False
        return ok

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._dirty and not self._stop.is_set():
                    self._changed.wait()
            ok = self.flush()
            if self._stop.is_set():
                return
            if not ok:
                self._stop.wait(self._retry_after)
