"""Delivery to one webhook sink: a bounded queue and a thread that posts its head, retrying
with capped exponential back-off.

The reconcile pass only puts into the queue (never waits on a sink); the sink's own thread does
the HTTP. A full queue drops its oldest non-critical events, never a fault.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from scaleset_operator.notifications.facts import Fact, Position
from scaleset_operator.notifications.wire import Ref, Request, request_for

log = logging.getLogger("scaleset_operator.notifications")


@dataclass(frozen=True)
class Sink:
    """A webhook: its URL and the HMAC key its requests are signed with (None: unsigned)."""

    url: str
    key: bytes | None = None

    @property
    def id(self) -> str:
        """Short and stable; a URL may carry a token, so only its hash goes into annotations."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:10]

    @property
    def label(self) -> str:
        """For logs and metrics: the host and the id, never the path, query or credentials."""
        host = urllib.parse.urlsplit(self.url).hostname or "?"
        port = urllib.parse.urlsplit(self.url).port
        return f"{host}:{port}/{self.id}" if port else f"{host}/{self.id}"

    def __repr__(self) -> str:  # keeps the key out of every log line and traceback
        return f"Sink({self.label})"


@dataclass(frozen=True)
class Outgoing:
    ref: Ref
    fact: Fact


class DeliveryMetrics(Protocol):
    def sent(self, sink: str) -> None: ...
    def failed(self, sink: str) -> None: ...
    def dropped(self, sink: str, count: int) -> None: ...
    def queued(self, sink: str, length: int) -> None: ...


class NoMetrics:
    def sent(self, sink: str) -> None:
        pass

    def failed(self, sink: str) -> None:
        pass

    def dropped(self, sink: str, count: int) -> None:
        pass

    def queued(self, sink: str, length: int) -> None:
        pass


@dataclass(frozen=True)
class Backoff:
    """Seconds before the n-th retry: doubling from `first`, never above `cap`."""

    first: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.first * 2.0 ** max(0, failures - 1)))


class BoundedQueue:
    """FIFO of at most `capacity` events; when full, the oldest non-critical one goes.

    A critical event (a fault) is admitted even over the bound: there is at most one per
    upgrade run, and a run takes a newly published version or a user's start.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Outgoing] = deque()
        self._changed = threading.Condition()

    def __len__(self) -> int:
        with self._changed:
            return len(self._items)

    def put(self, item: Outgoing) -> int:
        """Adds `item`; returns how many events were dropped to keep the bound (0 or 1)."""
        with self._changed:
            dropped = 0
            if len(self._items) >= self.capacity:
                victim = next((i for i in self._items if not i.fact.critical), None)
                if victim is not None:
                    self._items.remove(victim)
                    dropped = 1
                elif not item.fact.critical:
                    return 1
            self._items.append(item)
            self._changed.notify_all()
            return dropped

    def head(self, timeout: float) -> Outgoing | None:
        with self._changed:
            if not self._items:
                self._changed.wait(timeout)
            return self._items[0] if self._items else None

    def remove(self, item: Outgoing) -> None:
        """Removes a delivered item, unless the bound dropped it meanwhile."""
        with self._changed:
            if self._items and self._items[0] is item:
                self._items.popleft()

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


Send = Callable[[str, Request], bool]
Delivered = Callable[[Sink, Ref, Position], None]
Warn = Callable[[Ref, str], None]


def post(url: str, request: Request, timeout: float = 10.0) -> bool:
    """One POST; True on any 2xx answer."""
    http = urllib.request.Request(url, data=request.body, headers=request.headers, method="POST")
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:
            return 200 <= int(answer.status) < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.debug("notification to %s failed: %s", urllib.parse.urlsplit(url).hostname, exc)
        return False


@dataclass(frozen=True)
class Alarm:
    """When a failing sink is reported: after `after` failures in a row, then at most once
    per `every` seconds."""

    after: int = 5
    every: float = 300.0


class SinkWorker:
    """The thread that delivers one sink's queue in order, at least once."""

    def __init__(
        self,
        sink: Sink,
        queue: BoundedQueue,
        delivered: Delivered,
        warn: Warn,
        metrics: DeliveryMetrics,
        *,
        backoff: Backoff,
        alarm: Alarm,
        send: Send = post,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink, self.queue = sink, queue
        self._delivered, self._warn, self._metrics = delivered, warn, metrics
        self._backoff, self._alarm, self._send, self._clock = backoff, alarm, send, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notify {sink.label}", daemon=True)
        self.failures = 0
        self._warned_at: float | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.wake()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self.step()
            if delay:
                self._stop.wait(delay)

    def step(self, wait: float = 1.0) -> float:
        """Tries the head of the queue once; returns how long to wait before the next try."""
        item = self.queue.head(wait)
        if item is None:
            return 0.0
        request = request_for(item.ref, item.fact, self.sink.key)
        if self._send(self.sink.url, request):
            self.queue.remove(item)
            self.failures = 0
            self._metrics.sent(self.sink.label)
            self._metrics.queued(self.sink.label, len(self.queue))
            self._delivered(self.sink, item.ref, item.fact.position)
            return 0.0
        self.failures += 1
        self._metrics.failed(self.sink.label)
        self._maybe_warn(item.ref)
        return self._backoff.delay(self.failures)

    def _maybe_warn(self, ref: Ref) -> None:
        if self.failures < self._alarm.after:
            return
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < self._alarm.every:
            return
        self._warned_at = now
        message = (
            f"notification sink {self.sink.label} failed {self.failures} times in a row; "
            f"{len(self.queue)} event(s) wait for it"
        )
        log.warning("%s", message)
        self._warn(ref, message)
