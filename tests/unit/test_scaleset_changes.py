"""ScaleSet changes from our own watch reach the workers: a set deleted and made again under
the same name gets a new worker, and an object the handler cannot read is logged, not the end
of the stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from scaleset_operator.controller import handlers
from scaleset_operator.controller.reconcile import Outcome
from scaleset_operator.controller.scaleset_copy import ScaleSetCopy
from scaleset_operator.controller.workers import Workers


def scaleset(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version}}


def test_a_set_made_again_after_its_deletion_is_followed_by_a_new_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes: list[tuple[str, str]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        passed = asyncio.Event()

        def run_pass(namespace: str, name: str) -> Outcome:
            passes.append((namespace, name))
            loop.call_soon_threadsafe(passed.set)
            return Outcome(None)

        async def next_pass() -> None:
            await asyncio.wait_for(passed.wait(), timeout=5)
            passed.clear()

        workers = Workers(run_pass, debounce=0.01)
        waves = Workers(lambda *_: Outcome(None), kind="wave")
        monkeypatch.setattr(handlers.STATE, "workers", workers)
        monkeypatch.setattr(handlers.STATE, "wave_workers", waves)
        monkeypatch.setattr(handlers.STATE, "scalesets", ScaleSetCopy())
        changes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        follower = asyncio.create_task(handlers._follow_scalesets(changes))
        changes.put_nowait(("ADDED", scaleset("web", "1")))
        await next_pass()
        # Deleted and made again before the loop looked: the deletion must not stop the worker
        # the new object starts.
        changes.put_nowait(("DELETED", scaleset("web", "2")))
        changes.put_nowait(("ADDED", {"metadata": "not an object's metadata"}))
        changes.put_nowait(("ADDED", scaleset("web", "3")))
        await next_pass()
        assert workers.keys() == [("ns", "web")]
        # The echo of our own progress write wakes nobody; the next change does.
        handlers.STATE.scalesets.wrote_progress(("ns", "web"), "4")
        changes.put_nowait(("MODIFIED", scaleset("web", "4")))
        changes.put_nowait(("MODIFIED", scaleset("web", "5")))
        await next_pass()
        follower.cancel()
        await workers.stop_all()

    asyncio.run(main())
    assert passes == [("ns", "web")] * 3
