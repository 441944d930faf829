"""Our CustomResourceDefinitions on a cluster: installing them, waiting until they are served,
and telling which are missing. The CRD documents themselves come from `models.crd`.

A CRD read right after its creation has no conditions yet (`status.conditions: null`), so
nothing here assumes that any field of it is present.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from scaleset_operator.k8s.client import KubeClient, condition
from scaleset_operator.k8s.errors import NotFoundError, UnavailableError
from scaleset_operator.polling import PollTimeoutError, poll

Obj = dict[str, Any]
_CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_FIELD_MANAGER = "scaleset-operator"


class NotEstablishedError(UnavailableError):
    """A CRD was applied but the API server did not start serving it in time."""


def is_established(crd: Obj) -> bool:
    return condition(crd, "Established") == "True"


def apply_crds(kube: KubeClient, documents: Iterable[Obj]) -> None:
    """Server-side apply, as `kubectl apply --server-side` does: one idempotent request per
    CRD whether or not it exists, instead of a create-or-replace that can race."""
    for crd in documents:
        kube.request(
            "PATCH",
            f"{_CRDS}/{crd['metadata']['name']}",
            query=[("fieldManager", _FIELD_MANAGER), ("force", "true")],
            body=crd,
            content_type="application/apply-patch+yaml",
        )


def wait_established(
    kube: KubeClient, names: Sequence[str], timeout: float = 30.0, interval: float = 0.2
) -> None:
    """Returns once every named CRD is Established; raises `NotEstablishedError` after
    `timeout` seconds. A CRD not found yet counts as not established (a create may still be
    on its way through an aggregated or slow API server)."""
    waiting = list(names)

    def all_established() -> bool:
        waiting[:] = [name for name in waiting if not _established_now(kube, name)]
        return not waiting

    try:
        poll(all_established, what="CRDs established", timeout=timeout, interval=interval)
    except PollTimeoutError:
        raise NotEstablishedError(
            f"CRD {', '.join(waiting)} not established after {timeout:g}s"
        ) from None


def _established_now(kube: KubeClient, name: str) -> bool:
    try:
        return is_established(kube.request("GET", f"{_CRDS}/{name}"))
    except NotFoundError:
        return False


def missing_resources(kube: KubeClient, group_version: str, plurals: Iterable[str]) -> list[str]:
    """Which of these resources the API server does not serve, by API discovery. Discovery
    needs no RBAC grant (every authenticated user may read it), unlike reading the CRDs."""
    try:
        listing = kube.request("GET", f"/apis/{group_version}")
    except NotFoundError:
        return list(plurals)
    served = {str(r.get("name")) for r in listing.get("resources") or [] if isinstance(r, dict)}
    return [plural for plural in plurals if plural not in served]
