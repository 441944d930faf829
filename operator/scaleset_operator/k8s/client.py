"""Kubernetes client set-up and the raw reads and writes the operator makes.

Objects travel as plain JSON dicts (`_preload_content=False`): decoding a thousand pods into
client model classes costs more than the whole planning pass.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from kubernetes import client, config
from urllib3.exceptions import HTTPError, ProtocolError

from scaleset_operator.k8s.errors import (
    AlreadyExistsError,
    CredentialsError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
    call,
)
from scaleset_operator.k8s.transport import Transport
from scaleset_operator.models.imageversion import PLURAL as IV_PLURAL
from scaleset_operator.models.scaleset import GROUP, KIND, PLURAL, VERSION
from scaleset_operator.models.upgradewave import KIND as WAVE_KIND
from scaleset_operator.models.upgradewave import PLURAL as WAVE_PLURAL

Obj = dict[str, Any]


# Connections kept per API server. The operator's pod watches and worker threads, and the
# dashboard's three watches beside its request threads (`dashboard.command.REQUEST_THREADS`), each
# hold one while a request is open; past this number urllib3 opens extra ones and discards them.
POOL_SIZE = 32
# The EndpointSlice controller labels each slice with the name of its Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def kubeconfig_files(kubeconfig: str | None = None) -> str:
    """The kubeconfig file(s) to read, as kubectl picks them: the flag, else $KUBECONFIG
    (several files joined by the path separator are merged), else ~/.kube/config. Read at call
    time, not import time, so KUBECONFIG set by a caller (or a test) counts."""
    return kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def _any_exists(files: str) -> bool:
    return any(os.path.exists(os.path.expanduser(f)) for f in files.split(os.pathsep) if f)


def _in_pod() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ


def load_api_client(
    kubeconfig: str | None = None, context: str | None = None, *, retries: int = 2
) -> tuple[client.ApiClient, str | None]:
    """The one way every program here finds its cluster, and the file(s) it read (None: the
    pod's service account). kubectl's order: an explicit --kubeconfig or --context, else
    $KUBECONFIG or ~/.kube/config when one exists, and only without any of them, inside a
    pod, the in-cluster service account. A flag the user gave is never silently ignored."""
    files = kubeconfig_files(kubeconfig)
    cfg = client.Configuration()
    explicit = kubeconfig is not None or context is not None
    source: str | None = files
    try:
        if not explicit and not _any_exists(files) and _in_pod():
            config.load_incluster_config(client_configuration=cfg)
            source = None
        else:
            config.load_kube_config(config_file=files, context=context, client_configuration=cfg)
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise CredentialsError(" ".join(str(exc).split()).rstrip(".")) from exc
    cfg.connection_pool_maxsize = POOL_SIZE  # type: ignore[attr-defined]
    cfg.retries = retries
    return client.ApiClient(cfg), source


def make_api_client(
    kubeconfig: str | None = None, context: str | None = None, *, retries: int = 2
) -> client.ApiClient:
    """An API client for the cluster `load_api_client` finds."""
    return load_api_client(kubeconfig, context, retries=retries)[0]


_CRD_BASE = f"/apis/{GROUP}/{VERSION}"


def condition(obj: Obj, type_: str) -> str | None:
    """The status ("True", "False", "Unknown") of one condition of any API object; None
    while it has no such condition. Objects fresh from a create often carry
    `status: null` or `conditions: null`, so neither is assumed present."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            status = cond.get("status")
            return str(status) if status is not None else None
    return None


class SharedListing:
    """A list shared by every pass, re-read at most every `ttl` seconds and at once after
    `invalidate` (which the watch of that resource calls).

    A read that was under way when `invalidate` came may predate the change that caused it: it
    serves the pass that made it, but is not kept for the next ones (otherwise a scale set
    created just after an ImageVersion could plan on a catalog without it for `ttl` seconds,
    and nothing would wake it afterwards)."""

    def __init__(self, ttl: float) -> None:
        self._items: list[Obj] = []
        self._at: float | None = None
        self._ttl = ttl
        self._lock = threading.Lock()
        self._generation = 0

    def invalidate(self) -> None:
        with self._lock:
            self._at = None
            self._generation += 1

    def get(self, fetch: Callable[[], list[Obj]]) -> list[Obj]:
        with self._lock:
            if self._at is not None and time.monotonic() - self._at < self._ttl:
                return self._items
            generation = self._generation
        items = fetch()
        with self._lock:
            if self._generation == generation:
                self._items, self._at = items, time.monotonic()
        return items


class KubeClient:
    """The API as the operator and the kubectl plugin (`k8s.userapi.UserApi`) see it: a few
    calls, each one request, JSON in and out. `transport="client"` sends them through the
    ``kubernetes`` client's own transport even where `k8s.wire` could (see `Transport`)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        catalog_ttl: float = 5.0,
        request_timeout: float = 30.0,
        transport: str = "wire",
    ) -> None:
        self.api = api
        self.request_timeout = request_timeout
        self._wire = transport == "wire"
        self._catalog = SharedListing(catalog_ttl)
        self._waves = SharedListing(catalog_ttl)
        self._zones: dict[str, str] = {}
        self._zones_at = float("-inf")  # never listed, whatever the monotonic clock says
        self._lock = threading.Lock()

    @functools.cached_property
    def _transport(self) -> Transport:
        return Transport(self.api, pool_size=POOL_SIZE, wire=self._wire)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        answer = self._transport.open(
            method, path, query or [], body, content_type, self.request_timeout
        )
        data = call(answer.read)
        return cast(Obj, orjson.loads(data)) if data else {}

    def stream_lines(
        self,
        path: str,
        query: list[tuple[str, str]],
        *,
        read_timeout: float,
        opened: Callable[[], None] | None = None,
    ) -> Iterator[bytes]:
        """A watch: the lines of a streamed GET as they come (one JSON event each). A watch
        that cannot start raises like `request`; 410 Gone raises `ExpiredError`. `opened` is
        called once the server has accepted the watch."""
        answer = self._transport.open(
            "GET", path, query, None, "application/json", (10, read_timeout)
        )
        if opened is not None:
            opened()
        try:
            for line in answer.lines():
                if line.strip():
                    yield line
        except (OSError, HTTPError, ProtocolError) as exc:
            raise UnavailableError(str(exc)) from exc
        finally:
            answer.close()

    # --- reads ---------------------------------------------------------------------------

    def get_scaleset(self, namespace: str, name: str) -> Obj:
        return self.request("GET", f"{_CRD_BASE}/namespaces/{namespace}/{PLURAL}/{name}")

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        body = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)]
        )
        return cast(list[Obj], body.get("items") or [])

    def list_disruption_budgets(self, namespace: str) -> list[Obj]:
        """The namespace's policy/v1 PodDisruptionBudgets, status included."""
        body = self.request("GET", f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets")
        return cast(list[Obj], body.get("items") or [])

    def invalidate_catalog(self) -> None:
        self._catalog.invalidate()

    def list_catalog(self) -> list[Obj]:
        """All ImageVersions; shared by every scale set and re-listed at most every TTL."""
        return self._catalog.get(lambda: self._items(f"{_CRD_BASE}/{IV_PLURAL}"))

    def invalidate_waves(self) -> None:
        self._waves.invalidate()

    def list_waves(self) -> list[Obj]:
        """All UpgradeWaves, shared like the catalog. Without their CRD there are none (an
        operator upgraded before its CRDs): nothing then orders any upgrade."""

        def fetch() -> list[Obj]:
            try:
                return self._items(f"{_CRD_BASE}/{WAVE_PLURAL}")
            except NotFoundError:
                return []

        return self._waves.get(fetch)

    def get_wave(self, name: str) -> Obj:
        return self.request("GET", f"{_CRD_BASE}/{WAVE_PLURAL}/{name}")

    def list_scalesets(self, namespaces: Sequence[str]) -> list[Obj]:
        """Every ScaleSet in these namespaces, or in all of them when none are given."""
        if not namespaces:
            return self._items(f"{_CRD_BASE}/{PLURAL}")
        return [
            o for ns in namespaces for o in self._items(f"{_CRD_BASE}/namespaces/{ns}/{PLURAL}")
        ]

    def _items(self, path: str) -> list[Obj]:
        return cast(list[Obj], self.request("GET", path).get("items") or [])

    def node_zones(self, wanted: set[str], *, raise_forbidden: bool = False) -> dict[str, str]:
        """Node name -> `topology.kubernetes.io/zone` ("" for a node without the label),
        re-listed when a node is unknown or the list is a minute old. Empty when nodes may not
        be listed, or with `raise_forbidden` the `ForbiddenError`, so that a person can be
        told zones are unknown."""
        with self._lock:
            fresh = time.monotonic() - self._zones_at < 60
            if fresh and wanted <= self._zones.keys():
                return self._zones
        try:
            items = self.request("GET", "/api/v1/nodes").get("items") or []
        except ForbiddenError:
            if raise_forbidden:
                raise
            return {}
        zones = {
            n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(
                "topology.kubernetes.io/zone", ""
            )
            for n in items
        }
        with self._lock:
            self._zones, self._zones_at = zones, time.monotonic()
        return zones

    def ready_endpoints(self, namespace: str, service: str) -> set[str] | None:
        """Pod names the Service's EndpointSlices list as ready; None when there are none."""
        slices = (
            self.request(
                "GET",
                f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                query=[("labelSelector", f"{SERVICE_NAME_LABEL}={service}")],
            ).get("items")
            or []
        )
        if not slices:
            return None
        ready: set[str] = set()
        for piece in slices:
            for ep in piece.get("endpoints") or []:
                target = ep.get("targetRef") or {}
                if target.get("kind") == "Pod" and (ep.get("conditions") or {}).get("ready"):
                    ready.add(str(target.get("name")))
        return ready

    # --- writes --------------------------------------------------------------------------

    def replace_status(self, obj: Obj, status: Obj) -> Obj:
        """Whole-status write guarded by resourceVersion: a 409 means re-observe first."""
        meta = obj["metadata"]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": obj.get("spec") or {},
            "status": status,
        }
        path = f"{_CRD_BASE}/namespaces/{meta['namespace']}/{PLURAL}/{meta['name']}/status"
        return self.request("PUT", path, body=body)

    def replace_wave_status(self, obj: Obj, status: Obj) -> Obj:
        """An UpgradeWave's whole status, guarded by resourceVersion like a ScaleSet's."""
        meta = obj["metadata"]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": WAVE_KIND,
            "metadata": {"name": meta["name"], "resourceVersion": meta["resourceVersion"]},
            "spec": obj.get("spec") or {},
            "status": status,
        }
        return self.request("PUT", f"{_CRD_BASE}/{WAVE_PLURAL}/{meta['name']}/status", body=body)

    def create_pod(self, namespace: str, body: Obj) -> Obj:
        """The pod as created; `AlreadyExistsError` when one of that name exists already."""
        return self.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=body)

    def ensure_pvc(self, namespace: str, body: Obj) -> None:
        with contextlib.suppress(AlreadyExistsError):
            self.request(
                "POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", body=body
            )

    def delete_pod(self, namespace: str, name: str, uid: str) -> Obj | None:
        """The pod as the deletion left it (terminating, or gone); None when it was gone."""
        body: Obj = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        with contextlib.suppress(NotFoundError):
            return self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body=body)
        return None

    def json_patch_pod(self, namespace: str, name: str, ops: list[Obj]) -> Obj:
        return self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            body=ops,
            content_type="application/json-patch+json",
        )

    def post_event(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "scaleset-operator"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=body)
