"""Polling helpers for tests: wait with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Calls ``predicate`` until it returns something truthy, and returns that value.

    Exceptions of the ``ignore`` types count as "not yet" (e.g. a 404 before an object exists);
    others propagate. Fails with AssertionError, naming ``message``, after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = predicate()
        except ignore as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message} (last: {last!r})"
            )
        time.sleep(interval)


def holds_for(
    predicate: Callable[[], object],
    duration: float,
    interval: float = 0.1,
    message: str = "condition",
) -> None:
    """Asserts that ``predicate`` stays truthy during an observation window of ``duration``."""
    deadline = time.monotonic() + duration
    while True:
        value = predicate()
        if not value:
            raise AssertionError(f"{message} stopped holding (got {value!r})")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
