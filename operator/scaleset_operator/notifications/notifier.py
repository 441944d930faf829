"""The notifier the reconcile passes (of scale sets and of waves) hand each persisted status to:
it derives the facts, puts the ones no sink has had yet into each sink's queue, and returns at
once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.models.upgradewave import UpgradeWaveStatus
from scaleset_operator.notifications import ledger
from scaleset_operator.notifications.delivery import (
    Alarm,
    Backoff,
    BoundedQueue,
    DeliveryMetrics,
    NoMetrics,
    Outgoing,
    Send,
    Sink,
    SinkWorker,
    Warn,
    post,
)
from scaleset_operator.notifications.facts import (
    Fact,
    Position,
    after,
    facts_of,
    last_position,
    wave_facts,
)
from scaleset_operator.notifications.wire import Ref, ScaleSetRef, WaveRef

Obj = dict[str, Any]
log = logging.getLogger("scaleset_operator.notifications")


class Notifier:
    """Thread-safe; `offer()` is called from the reconcile threads, delivery runs in one
    thread per sink and the annotation writes in one more."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        write_cursor: ledger.WriteCursor,
        warn: Warn,
        metrics: DeliveryMetrics | None = None,
        *,
        capacity: int = 1000,
        backoff: Backoff | None = None,
        alarm: Alarm | None = None,
        send: Send = post,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger.Ledger(write_cursor)
        self._metrics = metrics or NoMetrics()
        self.workers = [
            SinkWorker(
                sink,
                BoundedQueue(capacity),
                self._delivered,
                warn,
                self._metrics,
                backoff=backoff or Backoff(),
                alarm=alarm or Alarm(),
                send=send,
                clock=clock,
            )
            for sink in sinks
        ]
        # The last fact put into each sink's queue, so that a pass does not queue it again
        # (nor one the bound dropped: that one waits for a restart to be re-sent).
        self._queued: dict[tuple[ledger.Key, str], Position] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self.ledger.start()
        for worker in self.workers:
            worker.start()
            log.info("notifications to %s", worker.sink.label)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.ledger.stop()

    def offer(self, obj: Obj, status: ScaleSetStatus) -> None:
        """Queue what `status`, as persisted in `obj`, holds beyond each sink's cursor."""
        meta = obj["metadata"]
        ref = ScaleSetRef(str(meta["namespace"]), str(meta["name"]), str(meta.get("uid") or ""))
        self._offer(ref, meta, facts_of(status))

    def offer_wave(self, obj: Obj, status: UpgradeWaveStatus) -> None:
        """The same for an UpgradeWave: its facts, its cursors in its own annotation."""
        meta = obj["metadata"]
        ref = WaveRef(str(meta["name"]), str(meta.get("uid") or ""))
        self._offer(ref, meta, wave_facts(status))

    def _offer(self, ref: Ref, meta: Obj, facts: list[Fact]) -> None:
        key = ref.key
        self.ledger.seed(key, ledger.parse((meta.get("annotations") or {}).get(ledger.ANNOTATION)))
        with self._lock:
            for worker in self.workers:
                self._offer_to(worker, key, ref, facts)

    def _offer_to(self, worker: SinkWorker, key: ledger.Key, ref: Ref, facts: list[Fact]) -> None:
        sink = worker.sink.id
        known = (self.ledger.cursor(key, sink), self._queued.get((key, sink)))
        cursors = [c for c in known if c is not None]
        if not cursors:
            # First sight of this scale set or wave by this sink: its past is not news. The
            # baseline is recorded like any acknowledgement, so a restart does not take a new
            # one.
            baseline = last_position(facts)
            self.ledger.advance(key, sink, baseline)
            self._queued[(key, sink)] = baseline
            return
        for fact in after(facts, max(cursors)):
            dropped = worker.queue.put(Outgoing(ref, fact))
            if dropped:
                self._metrics.dropped(worker.sink.label, dropped)
            self._queued[(key, sink)] = fact.position
        self._metrics.queued(worker.sink.label, len(worker.queue))

    def forget(self, namespace: str, name: str) -> None:
        """A deleted scale set (or, with namespace "", wave): its record went with it."""
        key = (namespace, name)
        self.ledger.forget(key)
        for worker in self.workers:
            self._queued.pop((key, worker.sink.id), None)

    def _delivered(self, sink: Sink, ref: Ref, position: Position) -> None:
        self.ledger.advance(ref.key, sink.id, position)
