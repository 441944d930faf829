"""User requests to the operator (start, cancel, update-instances): written as a ScaleSet
annotation carrying a unique id, then, when the command waits, observed through the status.

The plugin never changes status itself; the operator records each handled request id in
`status.handledRequests`, which is how a waiting command knows its request was seen.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scaleset_operator.cli.plugin.context import LoadedScaleSet, parse_scaleset, settings
from scaleset_operator.models.instance import Request
from scaleset_operator.models.scaleset import KIND
from scaleset_operator.planner.timefmt import stamp
from scaleset_operator.polling import PollTimeoutError, poll

POLL_SECONDS = 0.5


def new_request(action: str, instance_ids: list[str], now: datetime) -> Request:
    return Request(id=uuid.uuid4().hex, action=action, at=stamp(now), instance_ids=instance_ids)


def submit(name: str, annotation: str, request: Request) -> None:
    """Merge-patches only this annotation, so concurrent edits of the spec are kept."""
    value = json.dumps(request.wire(), sort_keys=True)
    settings().api().patch_scaleset(name, {"metadata": {"annotations": {annotation: value}}})


def wait_for(
    name: str, done: Callable[[LoadedScaleSet], bool], timeout: float
) -> tuple[LoadedScaleSet, bool]:
    """Polls the scale set until `done` or the deadline; returns the last state seen and
    whether `done` held."""
    last: list[LoadedScaleSet] = []

    def probe() -> bool:
        last[:] = [parse_scaleset(settings().api().get_scaleset(name))]
        return done(last[0])

    try:
        poll(probe, what=f"scale set {name}", timeout=timeout, interval=POLL_SECONDS)
    except PollTimeoutError:
        return last[0], False
    return last[0], True


def handled(request: Request) -> Callable[[LoadedScaleSet], bool]:
    return lambda loaded: request.id in loaded.status.handled_requests


def operator_said(name: str, since: str) -> list[str]:
    """Warning events about the scale set since `since`: why a request changed nothing."""
    start = datetime.fromisoformat(since.replace("Z", "+00:00"))
    said = []
    for event in settings().api().events_about(name, KIND):
        moment: Any = event["time"]
        if event["type"] != "Warning" or not isinstance(moment, datetime):
            continue
        if moment.astimezone(UTC) >= start:
            said.append(f"{event['reason']}: {event['message']}")
    return said


def not_observed(what: str, timeout: float) -> str:
    return (
        f"{what} was not observed within {timeout:g}s; the operator may not be running. "
        "The request stays recorded and is handled when it runs."
    )
