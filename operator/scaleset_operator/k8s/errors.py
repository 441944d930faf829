"""A few small exception classes for API failures, classified at one boundary."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

T = TypeVar("T")


class KubeApiError(Exception):
    """The API server refused or failed a request."""


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
    if status == 410:
        return ExpiredError(text)
    if status == 404:
        return NotFoundError(text)
    if status == 409:
        return (
            AlreadyExistsError(text) if "AlreadyExists" in (exc.body or "") else ConflictError(text)
        )
    if status in (401, 403):
        return ForbiddenError(text)
    if status in (400, 422):
        return InvalidError(text)
    return UnavailableError(text)


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.body or "")
    return str(body.get("message", ""))


def call(fn: Callable[[], T]) -> T:
    """Runs one API call and turns client exceptions into the classes above."""
    try:
        return fn()
    except ApiException as exc:
        raise classify(exc) from exc
    except (OSError, HTTPError) as exc:
        raise UnavailableError(str(exc)) from exc
