"""One asyncio worker per scale set, woken by watch events or by its own requeue timer.

kopf's daemons would do the same but put a finalizer on every ScaleSet; a plain task keyed by
the object needs none, and the watch's initial listing starts a worker for every existing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from scaleset_operator.controller.reconcile import Outcome

Key = tuple[str, str]
Pass = Callable[[str, str], Outcome]
# Of these pods of a scale set, the ones its pod copy does not show Ready on their spec's images.
Unready = Callable[[Key, frozenset[str]], set[str]]
log = logging.getLogger("scaleset_operator.workers")


class ErrorBackoff:
    """Delays before retrying a scale set whose passes keep failing: doubling from ``first`` up
    to ``cap``, per scale set, and forgotten after the first pass that succeeds."""

    def __init__(self, first: float = 0.5, cap: float = 60.0) -> None:
        self.first = first
        self.cap = cap
        self._failures: dict[Key, int] = {}

    def failed(self, key: Key) -> tuple[int, float]:
        """Records a failure; returns how many in a row and how long to wait."""
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        return count, min(self.cap, self.first * 2 ** (count - 1))

    def succeeded(self, key: Key) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Key) -> int:
        return self._failures.get(key, 0)


class PodChanges:
    """Hands pod changes from the pod watch's thread to the workers on the event loop, many
    at a time: one wake-up of the loop per burst rather than one per event (a thousand pods
    rolling make three thousand events)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, workers: Workers) -> None:
        self._loop = loop
        self._workers = workers
        self._lock = threading.Lock()
        self._pending: list[tuple[Key, str, bool]] = []

    def add(self, key: Key, name: str, ready: bool) -> None:
        """From any thread: `Workers.pod_changed` soon, on the loop."""
        with self._lock:
            first = not self._pending
            self._pending.append((key, name, ready))
        if first:
            with contextlib.suppress(RuntimeError):  # the loop closes at shutdown
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for key, name, ready in pending:
            self._workers.pod_changed(key, name, ready)


class Workers:
    """The scale sets' workers: at most one pass per scale set at a time, wake-ups coalesced,
    and only while this replica is active (the leader, when there are several)."""

    def __init__(
        self,
        run_pass: Pass,
        *,
        debounce: float = 0.05,
        backoff: ErrorBackoff | None = None,
        active: bool = True,
        kind: str = "scaleset",
        unready: Unready | None = None,
    ) -> None:
        self._run_pass = run_pass
        self._unready = unready
        # Per scale set: the batch members its last pass found open that the watch has not
        # reported Ready since, and what is set once it has reported them all.
        self._awaiting: dict[Key, set[str]] = {}
        self._all_ready: dict[Key, asyncio.Event] = {}
        self._kind = kind
        self._debounce = debounce
        self.backoff = backoff or ErrorBackoff()
        self._wakeups: dict[Key, asyncio.Event] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._known: set[Key] = set()
        self._active = active

    def keys(self) -> list[Key]:
        return sorted(self._known)

    @property
    def active(self) -> bool:
        return self._active

    def poke(self, key: Key) -> None:
        """Wake the worker of `key`, starting it when there is none (only while active:
        a replica that is not the leader remembers the key and does nothing)."""
        self._known.add(key)
        if not self._active:
            return
        if key not in self._tasks or self._tasks[key].done():
            self._wakeups[key] = asyncio.Event()
            self._tasks[key] = asyncio.create_task(
                self._loop(key), name=f"{self._kind} {key[0]}/{key[1]}"
            )
        self._wakeups[key].set()

    def pod_changed(self, key: Key, name: str, ready: bool) -> None:
        """A pod of `key` changed (`ready`: Ready on its spec's images, or gone). The last
        awaited member turning Ready lets the next pass start without gathering."""
        waiting = self._awaiting.get(key)
        if ready and waiting and name in waiting:
            waiting.discard(name)
            if not waiting:
                self._all_ready[key].set()
        self.poke(key)

    def endpoints_changed(self, key: Key) -> None:
        """The endpoints `key`'s health is judged by changed. Once the watch shows every
        member the last pass waited for Ready, an endpoint turning ready is what the batch
        waits for: the next pass gathers nothing."""
        if key in self._awaiting and not self._awaiting[key]:
            self._all_ready[key].set()
        self.poke(key)

    def awaiting(self, key: Key) -> frozenset[str]:
        """The members of `key`'s batch whose Ready the worker still waits to hear of."""
        return frozenset(self._awaiting.get(key, ()))

    def _await(self, key: Key, names: frozenset[str], woken: bool) -> None:
        ready = asyncio.Event()
        left = set(names)
        if left and self._unready is not None:
            # Members may have turned Ready while the pass ran; when all have and events came
            # meanwhile, the pass saw them too late.
            left = self._unready(key, names)
            if not left and woken:
                ready.set()
        self._awaiting[key] = left
        self._all_ready[key] = ready

    def poke_all(self) -> None:
        for key in list(self._known):
            self.poke(key)

    def activate(self) -> None:
        self._active = True
        self.poke_all()

    async def deactivate(self) -> None:
        self._active = False
        for key in list(self._tasks):
            await self._cancel(key)

    def forget(self, key: Key) -> None:
        self._known.discard(key)

    async def stop(self, key: Key) -> None:
        self.forget(key)
        await self._cancel(key)

    async def _cancel(self, key: Key) -> None:
        task = self._tasks.pop(key, None)
        self._wakeups.pop(key, None)
        self._awaiting.pop(key, None)
        self._all_ready.pop(key, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _back_off(self, key: Key, exc: Exception) -> None:
        count, delay = self.backoff.failed(key)
        # One line per failure; the traceback only the first time, so that a scale set that
        # cannot be reconciled for hours does not flood the log.
        log.warning(
            "reconcile of %s %s/%s failed (%d in a row), retrying in %.0fs: %s: %s",
            self._kind,
            *key,
            count,
            delay,
            type(exc).__name__,
            exc,
            exc_info=exc if count == 1 else None,
        )
        # Watch events that arrive meanwhile are not let through: they would undo the back-off.
        await asyncio.sleep(delay)

    async def _gather(self, key: Key, delay: float) -> None:
        ready = self._all_ready.get(key)
        if ready is None:
            await asyncio.sleep(delay)
        elif not ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), timeout=delay)

    async def stop_all(self) -> None:
        for key in list(self._tasks):
            await self.stop(key)

    async def _loop(self, key: Key) -> None:
        wakeup = self._wakeups[key]
        gather = 0.0
        while True:
            await wakeup.wait()
            # Events arrive in bursts (a batch of pods changing together): take them as one,
            # and more of them when the last pass said that only progress was moving; but not
            # once every member the batch waited for is Ready (its closing pass is due).
            await self._gather(key, max(self._debounce, gather))
            wakeup.clear()
            try:
                outcome = await asyncio.to_thread(self._run_pass, *key)
            except Exception as exc:
                await self._back_off(key, exc)
                wakeup.set()
                continue
            self.backoff.succeeded(key)
            gather = outcome.gather
            if outcome.gone:
                self._known.discard(key)
                self._tasks.pop(key, None)
                self._wakeups.pop(key, None)
                self._awaiting.pop(key, None)
                self._all_ready.pop(key, None)
                return
            self._await(key, outcome.awaiting, wakeup.is_set())
            if outcome.requeue_after is not None:
                try:
                    await asyncio.wait_for(wakeup.wait(), timeout=outcome.requeue_after)
                except TimeoutError:
                    gather = 0.0  # a wake-up the planner asked for is kept to the time
                wakeup.set()
