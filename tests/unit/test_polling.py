"""The shared poll-with-deadline loop."""

from __future__ import annotations

import time

import pytest

from scaleset_operator.polling import PollTimeoutError, poll


def test_returns_the_first_truthy_answer() -> None:
    answers = iter([None, 0, "", "ready"])
    assert poll(lambda: next(answers), what="x", timeout=5, interval=0.001) == "ready"


def test_retries_the_named_errors_and_reports_the_last_one() -> None:
    def probe() -> bool:
        raise ConnectionError("refused")

    started = time.monotonic()
    with pytest.raises(PollTimeoutError) as caught:
        poll(probe, what="apiserver", timeout=0.2, interval=0.05, retry_on=(ConnectionError,))
    assert 0.2 <= time.monotonic() - started < 2
    assert isinstance(caught.value.last_error, ConnectionError)
    assert "apiserver: not after" in str(caught.value)
    assert "refused" in str(caught.value)


def test_other_errors_propagate_at_once() -> None:
    def probe() -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        poll(probe, what="x", timeout=5, retry_on=(ConnectionError,))


def test_a_passed_deadline_still_probes_once() -> None:
    assert poll(lambda: 1, what="x", deadline=time.monotonic() - 1) == 1
    with pytest.raises(PollTimeoutError):
        poll(lambda: None, what="x", deadline=time.monotonic() - 1)


def test_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="timeout or a deadline"):
        poll(lambda: 1, what="x")
