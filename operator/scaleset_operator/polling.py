"""Polling with a deadline: the one loop used wherever a watch would be more than the job needs
(a process becoming healthy, a CRD becoming established, a request being taken up)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PollTimeoutError(TimeoutError):
    """The probe never answered in time; ``last_error`` is the last exception it raised."""

    def __init__(self, what: str, seconds: float, last_error: BaseException | None) -> None:
        detail = f" (last error: {last_error})" if last_error is not None else ""
        super().__init__(f"{what}: not after {seconds:g}s{detail}")
        self.what = what
        self.last_error = last_error


def poll(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float | None = None,
    deadline: float | None = None,
    interval: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Calls ``probe`` until it returns something truthy and returns that. Exceptions of the
    ``retry_on`` types count as "not yet". Stops with `PollTimeoutError` at ``deadline`` (a
    `time.monotonic()` value) or after ``timeout`` seconds; the probe always runs at least
    once, and once more at the deadline, so a slow machine gets its last chance."""
    start = time.monotonic()
    if deadline is None:
        if timeout is None:
            raise ValueError("poll needs a timeout or a deadline")
        deadline = start + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except retry_on as exc:
            last_error = exc
        else:
            if value:
                return value
        now = time.monotonic()
        if now >= deadline:
            raise PollTimeoutError(what, round(now - start, 1), last_error)
        time.sleep(min(interval, max(0.0, deadline - now)))
