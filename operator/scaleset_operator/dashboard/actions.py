"""The page's actions: start or cancel a rolling upgrade, clear a quarantined version.

Each writes exactly what the kubectl plugin writes, a request annotation on the ScaleSet
(`models.instance.Request` as JSON, merge-patched alone so concurrent spec edits are kept);
the operator carries it out and records its id in `status.handledRequests`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from scaleset_operator.k8s.errors import (
    ForbiddenError,
    InvalidError,
    KubeApiError,
    NotFoundError,
)
from scaleset_operator.k8s.userapi import UserApi
from scaleset_operator.models.instance import (
    ANNOTATION_CANCEL,
    ANNOTATION_CLEAR_QUARANTINE,
    ANNOTATION_START,
    Request,
)
from scaleset_operator.models.status import RunningStatusCode, ScaleSetStatus
from scaleset_operator.models.versions import is_dotted_version
from scaleset_operator.planner.timefmt import stamp

ANNOTATIONS = {
    "start": ANNOTATION_START,
    "cancel": ANNOTATION_CANCEL,
    "clear-quarantine": ANNOTATION_CLEAR_QUARANTINE,
}


class ActionFailedError(Exception):
    """An action not carried out; `status` is the HTTP status the page gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Written:
    annotation: str
    request: Request

    @property
    def value(self) -> str:
        # The plugin's exact encoding, so the operator cannot tell who wrote it.
        return json.dumps(self.request.wire(), sort_keys=True)


def _running(status: ScaleSetStatus) -> bool:
    ru = status.rolling_upgrade
    return bool(
        ru and ru.running_status and ru.running_status.code is RunningStatusCode.ROLLING_FORWARD
    )


def prepare(action: str, versions: list[str], status: ScaleSetStatus, now: datetime) -> Written:
    """The annotation to write, or why not; the same preconditions as the plugin's commands."""
    annotation = ANNOTATIONS.get(action)
    if annotation is None:
        raise ActionFailedError(404, f"unknown action {action!r}")
    if action == "start" and _running(status):
        raise ActionFailedError(409, "a rolling upgrade is already in progress; cancel it first")
    if action == "cancel" and not _running(status):
        raise ActionFailedError(409, "no rolling upgrade is in progress to cancel")
    if action == "clear-quarantine":
        bad = [v for v in versions if not is_dotted_version(v)]
        if bad or not versions:
            raise ActionFailedError(400, "name the quarantined version to clear")
    else:
        versions = []
    request = Request(id=uuid.uuid4().hex, action=action, at=stamp(now), versions=versions)
    return Written(annotation, request)


def submit(api: UserApi, name: str, written: Written) -> None:
    """Writes the annotation; API errors become `ActionFailedError` with the server's words."""
    patch = {"metadata": {"annotations": {written.annotation: written.value}}}
    try:
        api.patch_scaleset(name, patch)
    except ForbiddenError as exc:
        raise ActionFailedError(403, str(exc)) from None
    except NotFoundError as exc:
        raise ActionFailedError(404, str(exc)) from None
    except InvalidError as exc:
        raise ActionFailedError(422, str(exc)) from None
    except KubeApiError as exc:
        raise ActionFailedError(502, str(exc)) from None
