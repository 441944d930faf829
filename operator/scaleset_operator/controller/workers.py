"""One asyncio worker per scale set, woken by watch events or by its own requeue timer.

kopf's daemons would do the same but put a finalizer on every ScaleSet; a plain task keyed by
the object needs none, and the watch's initial listing starts a worker for every existing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from scaleset_operator.controller.reconcile import Outcome

Key = tuple[str, str]
Pass = Callable[[str, str], Outcome]
log = logging.getLogger("scaleset_operator.workers")


class Workers:
    def __init__(
        self,
        run_pass: Pass,
        *,
        debounce: float = 0.05,
        error_backoff: float = 2.0,
        active: bool = True,
    ) -> None:
        self._run_pass = run_pass
        self._debounce = debounce
        self._error_backoff = error_backoff
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
                self._loop(key), name=f"scaleset {key[0]}/{key[1]}"
            )
        self._wakeups[key].set()

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
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop_all(self) -> None:
        for key in list(self._tasks):
            await self.stop(key)

    async def _loop(self, key: Key) -> None:
        wakeup = self._wakeups[key]
        while True:
            await wakeup.wait()
            # Events arrive in bursts (a batch of pods changing together): take them as one.
            await asyncio.sleep(self._debounce)
            wakeup.clear()
            try:
                outcome = await asyncio.to_thread(self._run_pass, *key)
            except Exception:
                log.exception("reconcile of %s/%s failed; retrying", *key)
                outcome = Outcome(self._error_backoff)
            if outcome.gone:
                self._known.discard(key)
                self._tasks.pop(key, None)
                self._wakeups.pop(key, None)
                return
            if outcome.requeue_after is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), timeout=outcome.requeue_after)
                wakeup.set()
