"""Leader election over a coordination.k8s.io Lease, so that of several replicas exactly one
acts. Expiry is judged by this process's own clock from the moment it last saw the lease
change (as client-go does), so clock skew between replicas does not matter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import (
    AlreadyExistsError,
    ConflictError,
    KubeApiError,
    NotFoundError,
)

log = logging.getLogger("scaleset_operator.leadership")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Leadership:
    """Holds, renews and gives up one Lease. ``run`` loops until cancelled, calling
    ``on_lead`` when this replica becomes the leader and ``on_lose`` when it stops being one
    (it could not renew in time, or another identity holds the lease)."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15.0,
        renew_every: float = 3.0,
    ) -> None:
        self.kube = kube
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_every = renew_every
        self.leading = False
        self.holder = ""
        self._seen: tuple[str, str] | None = None  # (holder, renewTime) last observed
        self._seen_at = 0.0
        self._renewed_at = 0.0

    def _spec(self, transitions: int, acquired: str | None = None) -> dict[str, Any]:
        now = _now()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_seconds)),
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def try_acquire(self) -> bool:
        """One round: create, renew or take over the lease. True when we hold it after."""
        try:
            lease = self.kube.request("GET", self.path)
        except NotFoundError:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name},
                "spec": self._spec(0),
            }
            try:
                self.kube.request("POST", self.collection, body=body)
            except (AlreadyExistsError, ConflictError):
                return False
            self._renewed_at = time.monotonic()
            return True
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        self.holder = holder
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._seen:
            self._seen, self._seen_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
        expired = time.monotonic() - self._seen_at > duration
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.identity:
            transitions += 1
            acquired = None
        else:
            acquired = spec.get("acquireTime")
        lease["spec"] = self._spec(transitions, acquired)
        try:
            self.kube.request("PUT", self.path, body=lease)
        except ConflictError:
            return False
        self._renewed_at = time.monotonic()
        return True

    def release(self) -> None:
        """On a clean shutdown hand over at once instead of making the others wait."""
        try:
            lease = self.kube.request("GET", self.path)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                self.kube.request("PUT", self.path, body=lease)
        except KubeApiError as exc:
            log.info("could not release the lease: %s", exc)

    async def run(
        self, on_lead: Callable[[], None], on_lose: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            try:
                held = await asyncio.to_thread(self.try_acquire)
            except KubeApiError as exc:
                log.warning("lease %s: %s", self.name, exc)
                held = False
            if self.leading and not held:
                # Someone else holds it: stop now. A failed renewal: keep acting only while
                # our last renewal is still valid for everyone else.
                taken = self.holder not in ("", self.identity)
                if taken or time.monotonic() - self._renewed_at > self.lease_seconds * 0.8:
                    log.warning("lost the lease %s; stopping all work", self.name)
                    self.leading = False
                    await on_lose()
            elif held and not self.leading:
                log.info("acquired the lease %s as %s", self.name, self.identity)
                self.leading = True
                on_lead()
            await asyncio.sleep(self.renew_every)
