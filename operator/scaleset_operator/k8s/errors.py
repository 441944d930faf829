"""A few small exception classes for API failures, classified at one boundary."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

T = TypeVar("T")


class KubeApiError(Exception):
    """The API server refused or failed a request. `status` is the HTTP status (0 when no
    answer came) and `detail` the API server's own explanation, or why no answer came."""

    def __init__(self, message: str = "", *, status: int = 0, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message


class CredentialsError(KubeApiError):
    """No usable kubeconfig or in-cluster credentials."""


class ConflictError(KubeApiError):
    """Someone else changed the object first (409); re-observe and try again."""


class NotFoundError(KubeApiError):
    """The object is gone (404)."""


class AlreadyExistsError(KubeApiError):
    """An object with that name exists already (409 on create)."""


class ForbiddenError(KubeApiError):
    """The operator's identity may not do this (401/403): an RBAC problem, not a retry."""


class InvalidError(KubeApiError):
    """The API server rejected the content (422/400); retrying will not help."""


class UnavailableError(KubeApiError):
    """The API server could not be reached or answered 5xx/429; retry later."""


class ExpiredError(KubeApiError):
    """410 Gone: a watch asked for a resourceVersion the API no longer serves; list again."""


def classify(exc: ApiException) -> KubeApiError:
    status = exc.status or 0
    text = f"{status} {exc.reason}: {_message(exc)}"
    kind: type[KubeApiError] = UnavailableError
    if status == 410:
        kind = ExpiredError
    elif status == 404:
        kind = NotFoundError
    elif status == 409:
        kind = AlreadyExistsError if "AlreadyExists" in (exc.body or "") else ConflictError
    elif status in (401, 403):
        kind = ForbiddenError
    elif status in (400, 422):
        kind = InvalidError
    return kind(text, status=status, detail=_server_message(exc) if status else short_reason(exc))


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.body or "")
    return str(body.get("message", ""))


def _server_message(exc: ApiException) -> str:
    """The API server's own explanation: its causes when it lists them, else its message."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return f"HTTP {exc.status} {exc.reason}".strip()
    if not isinstance(body, dict):
        return f"HTTP {exc.status} {exc.reason}".strip()
    causes = (body.get("details") or {}).get("causes") or []
    parts = [
        f"{c['field']}: {c.get('message', '')}" if c.get("field") else str(c.get("message", ""))
        for c in causes
        if isinstance(c, dict)
    ]
    text = "; ".join(p for p in parts if p) or str(body.get("message") or exc.reason)
    return " ".join(text.split())


def short_reason(exc: BaseException) -> str:
    """Why a connection failed, on one line (urllib3 keeps the cause in `reason`)."""
    reason = getattr(exc, "reason", None)
    return " ".join(str(reason or exc).split())


def call(fn: Callable[[], T]) -> T:
    """Runs one API call and turns client exceptions into the classes above."""
    try:
        return fn()
    except ApiException as exc:
        raise classify(exc) from exc
    except (OSError, HTTPError) as exc:
        raise UnavailableError(str(exc), detail=short_reason(exc)) from exc


def for_person(exc: KubeApiError, what: str) -> KubeApiError:
    """The same class with a message written for a person at a terminal (the kubectl plugin
    and its dashboard): what was not found, what may not be accessed, or the API server's own
    validation text; `what` names the object ('scale set "web" in namespace "shop"')."""
    kind = type(exc)
    if isinstance(exc, NotFoundError):
        message = f"{what} not found"
    elif isinstance(exc, ForbiddenError):
        message = f"not allowed to access {what}: {exc.detail}"
    elif isinstance(exc, InvalidError):
        message = exc.detail
    elif exc.status == 0:
        message = f"cannot reach the cluster: {exc.detail}"
    else:
        message = f"{what}: {exc.detail}"
    return kind(message, status=exc.status, detail=exc.detail)
