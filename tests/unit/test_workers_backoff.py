"""A scale set whose passes keep failing is retried with a growing, capped delay and one log
line per failure; the first success forgets its failures."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from scaleset_operator.controller.reconcile import Outcome
from scaleset_operator.controller.workers import ErrorBackoff, Workers

KEY = ("ns", "web")


def test_delays_double_up_to_the_cap_and_reset_after_success() -> None:
    backoff = ErrorBackoff(first=0.5, cap=3.0)
    delays = [backoff.failed(KEY)[1] for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.failures(KEY) == 5
    assert backoff.failed(("ns", "other")) == (1, 0.5), "each scale set has its own count"
    backoff.succeeded(KEY)
    assert backoff.failed(KEY) == (1, 0.5)


def test_failing_passes_back_off_log_one_line_each_and_recover(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []
    done = asyncio.Event()
    loop_holder: list[asyncio.AbstractEventLoop] = []

    def run_pass(namespace: str, name: str) -> Outcome:
        calls.append(time.monotonic())
        if len(calls) <= 4:
            raise ConnectionError("apiserver unreachable")
        loop_holder[0].call_soon_threadsafe(done.set)
        return Outcome(None)

    workers = Workers(run_pass, debounce=0.0, backoff=ErrorBackoff(first=0.05, cap=0.2))

    async def main() -> None:
        loop_holder.append(asyncio.get_running_loop())
        workers.poke(KEY)
        # Wake-ups during the back-off must not cut it short.
        for _ in range(20):
            await asyncio.sleep(0.01)
            workers.poke(KEY)
        await asyncio.wait_for(done.wait(), 10)
        # The pass signals from its thread before the worker has recorded its success; stopping
        # right away could cancel the worker in between.
        for _ in range(1000):
            if not workers.backoff.failures(KEY):
                break
            await asyncio.sleep(0.01)
        await workers.stop_all()

    with caplog.at_level(logging.WARNING, logger="scaleset_operator.workers"):
        asyncio.run(main())

    # Wake-ups still arriving after the success (a loaded machine) may add passes; the first
    # five tell the story.
    assert len(calls) >= 5
    gaps = [b - a for a, b in itertools.pairwise(calls[:5])]
    for gap, least in zip(gaps, [0.05, 0.1, 0.2, 0.2], strict=True):
        assert gap >= least * 0.9, gaps
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 4
    assert "(1 in a row)" in failures[0].getMessage()
    assert "ConnectionError: apiserver unreachable" in failures[3].getMessage()
    assert failures[0].exc_info is not None, "the first failure shows its traceback"
    assert all(r.exc_info is None for r in failures[1:]), "later ones are one line each"
    assert workers.backoff.failures(KEY) == 0, "a success forgets the failures"
