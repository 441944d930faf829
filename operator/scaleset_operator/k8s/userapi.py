"""Every Kubernetes call the kubectl plugin makes, the few errors they can end in, and the
options that name the cluster (shared by every plugin command, the dashboard included).

The plugin never imports `kubernetes`: it gets plain dicts for custom objects, model
`Instance` views of pods, and one of the exception classes below when a call fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from scaleset_operator.k8s.client import kubeconfig_files, load_api_client
from scaleset_operator.k8s.errors import (
    CredentialsError,
    ForbiddenError,
    InvalidError,
    KubeApiError,
    NotFoundError,
    UnavailableError,
    classify,
)
from scaleset_operator.k8s.pods import to_instance
from scaleset_operator.models.imageversion import PLURAL as IMAGEVERSIONS
from scaleset_operator.models.instance import LABEL_SCALESET, Instance
from scaleset_operator.models.scaleset import GROUP, PLURAL, VERSION, HealthSource, ScaleSetSpec
from scaleset_operator.models.upgradewave import PLURAL as WAVES

Obj = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
_TIMEOUT = 15
_ZONE_LABEL = "topology.kubernetes.io/zone"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NoConfigError(UnavailableError):
    """No kubeconfig (or in-cluster identity) to reach a cluster with."""


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


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """The shared error classes (`k8s.errors`), with messages written for a person at a
    terminal: what was not found, or the API server's own validation text."""
    try:
        yield
    except ApiException as exc:
        kind = type(classify(exc))
        if kind is NotFoundError:
            raise NotFoundError(f"{what} not found") from None
        if kind is ForbiddenError:
            raise ForbiddenError(f"not allowed to access {what}: {_server_message(exc)}") from None
        if kind is InvalidError:
            raise InvalidError(_server_message(exc)) from None
        if (exc.status or 0) == 0:
            raise UnavailableError(f"cannot reach the cluster: {_short(exc)}") from None
        raise kind(f"{what}: {_server_message(exc)}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise UnavailableError(f"cannot reach the cluster: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return " ".join(str(reason or exc).split())


@dataclass
class Connection:
    """Where to talk: kubeconfig file(s), context and namespace, as the user gave them with
    `cluster_options`, on the plugin's group or on the command itself (the later one wins).
    The click context's object carries it; the plugin's settings extend it, so the dashboard
    reads the same values without importing the CLI."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


def cluster_options(
    holder: type[Connection] = Connection, *, namespace_help: str
) -> Callable[[F], F]:
    """`-n`, `--kubeconfig` and `--context`, stored in the click context's `holder` (found up
    the command chain, so a value given before the command name counts) rather than passed
    to the command. Every plugin command, the dashboard included, declares them through here.
    """

    def store(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
        def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
            if value is not None:
                setattr(ctx.ensure_object(holder), field, value)

        return callback

    options = [
        click.option(
            "-n",
            "--namespace",
            expose_value=False,
            callback=store("namespace"),
            help=namespace_help,
        ),
        click.option(
            "--kubeconfig",
            expose_value=False,
            callback=store("kubeconfig"),
            help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in a pod "
            "its service account).",
        ),
        click.option(
            "--context",
            expose_value=False,
            callback=store("context"),
            help="Kubeconfig context to use (default: the current context).",
        ),
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def user_api_client(conn: Connection, *, retries: int = 1) -> tuple[client.ApiClient, str | None]:
    """The API client `k8s.client.load_api_client` resolves (kubectl's order; an explicit
    --kubeconfig or --context wins over a pod's service account), and the kubeconfig file(s)
    it read, None for the service account. One retry: a person is waiting, so say quickly
    that the cluster is unreachable."""
    try:
        return load_api_client(conn.kubeconfig, conn.context, retries=retries)
    except CredentialsError as exc:
        files = kubeconfig_files(conn.kubeconfig)
        raise NoConfigError(f"no usable kubeconfig ({files}): {exc}") from None


def _context_namespace(files: str, context: str | None) -> str:
    contexts, current = config.list_kube_config_contexts(config_file=files)
    entries: list[dict[str, Any]] = [dict(c) for c in contexts]
    chosen = next((c for c in entries if c.get("name") == context), None)
    if context is None:
        chosen = dict(current) if current else None
    ns = ((chosen or {}).get("context") or {}).get("namespace")
    return str(ns) if ns else "default"


def connect(conn: Connection) -> UserApi:
    """The plugin's calls, in the namespace the user gave, else the kubeconfig context's (the
    pod's own with the service account)."""
    api, files = user_api_client(conn)
    if conn.namespace:
        return UserApi(api, conn.namespace)
    if files is None:
        return UserApi(api, _incluster_namespace())
    try:
        return UserApi(api, _context_namespace(files, conn.context))
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise NoConfigError(f"no usable kubeconfig ({files}): {_short(exc)}") from None


def _incluster_namespace() -> str:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path) as handle:
            return handle.read().strip() or "default"
    except OSError:
        return "default"


class UserApi:
    """The plugin's calls, in one namespace. Custom objects come back as plain dicts."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._api = api
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._discovery = client.DiscoveryV1Api(api)

    # ScaleSets
    def get_scaleset(self, name: str) -> Obj:
        with _translated(f'scale set "{name}" in namespace "{self.namespace}"'):
            obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=_TIMEOUT
            )
        return dict(obj)

    def patch_scaleset(self, name: str, patch: Obj) -> Obj:
        """A JSON merge patch (RFC 7386): `None` values remove keys."""
        with _translated(f'scale set "{name}" in namespace "{self.namespace}"'):
            obj = self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, patch, _request_timeout=_TIMEOUT
            )
        return dict(obj)

    # ImageVersions (cluster-scoped)
    def list_imageversions(self) -> list[Obj]:
        with _translated("image versions"):
            answer = self._custom.list_cluster_custom_object(
                GROUP, VERSION, IMAGEVERSIONS, _request_timeout=_TIMEOUT
            )
        return [dict(item) for item in answer.get("items") or []]

    def create_imageversion(self, name: str, spec: Obj) -> Obj:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ImageVersion",
            "metadata": {"name": name},
            "spec": spec,
        }
        with _translated(f'image version "{name}"'):
            # The stubs declare no return value; the client returns the created object.
            created: object = self._custom.create_cluster_custom_object(  # type: ignore[func-returns-value]
                GROUP, VERSION, IMAGEVERSIONS, body, _request_timeout=_TIMEOUT
            )
        return dict(created) if isinstance(created, dict) else body

    # UpgradeWaves (cluster-scoped)
    def get_upgradewave(self, name: str) -> Obj:
        with _translated(f'upgrade wave "{name}"'):
            obj = self._custom.get_cluster_custom_object(
                GROUP, VERSION, WAVES, name, _request_timeout=_TIMEOUT
            )
        return dict(obj)

    def list_upgradewaves(self) -> list[Obj]:
        """Every UpgradeWave; a cluster without their CRD has none to list (exit code 3)."""
        try:
            with _translated("upgrade waves"):
                answer = self._custom.list_cluster_custom_object(
                    GROUP, VERSION, WAVES, _request_timeout=_TIMEOUT
                )
        except NotFoundError:
            raise NotFoundError(
                "the UpgradeWave resource is not installed in this cluster (its CRD is in crds/)"
            ) from None
        return [dict(item) for item in answer.get("items") or []]

    # Instances (pods)
    def list_instances(self, name: str, spec: ScaleSetSpec) -> list[Instance]:
        """The scale set's pods as model instances, zones and health signals included."""
        with _translated(f'pods of scale set "{name}"'):
            pods = self._core.list_namespaced_pod(
                self.namespace, label_selector=f"{LABEL_SCALESET}={name}", _request_timeout=_TIMEOUT
            ).items
        zones = self._zones()
        endpoints = self._ready_endpoints(spec)
        # The controller's reader works on JSON dicts; give it the same shape.
        found = (
            to_instance(self._api.sanitize_for_serialization(pod), spec, zones, endpoints)
            for pod in pods
        )
        return sorted((i for i in found if i is not None), key=lambda i: i.instance_id)

    def _zones(self) -> dict[str, str]:
        """Node name to zone; empty when the user may not list nodes (zones are only shown)."""
        try:
            with _translated("nodes"):
                nodes = self._core.list_node(_request_timeout=_TIMEOUT).items
        except KubeApiError:
            return {}
        zones: dict[str, str] = {}
        for node in nodes:
            meta = node.metadata
            zone = (meta.labels or {}).get(_ZONE_LABEL) if meta else None
            if meta and meta.name and zone:
                zones[meta.name] = zone
        return zones

    def instances_in_zones(
        self, name: str, spec: ScaleSetSpec, zones: dict[str, str]
    ) -> list[Instance]:
        """The scale set's pods as instances, placed by the caller's node-to-zone map (see
        `node_zones`). Reads pods only, no endpoints: a view needs no health signals, and a
        user who may list pods can then see it."""
        with _translated(f'pods of scale set "{name}"'):
            listed = self._core.list_namespaced_pod(
                self.namespace, label_selector=f"{LABEL_SCALESET}={name}", _request_timeout=_TIMEOUT
            )
        raw = [self._api.sanitize_for_serialization(pod) for pod in listed.items]
        found = [to_instance(pod, spec, zones, None) for pod in raw]
        return sorted((i for i in found if i is not None), key=lambda i: i.instance_id)

    def node_zones(self) -> dict[str, str]:
        """Node name to zone, for the nodes that carry the zone label; unlike the instance
        listing's own lookup this raises `ForbiddenError`, so a caller can say zones are
        unknown rather than show every instance in none."""
        with _translated("nodes"):
            nodes = self._core.list_node(_request_timeout=_TIMEOUT).items
        named = (
            (n.metadata.name, (n.metadata.labels or {}).get(_ZONE_LABEL))
            for n in nodes
            if n.metadata
        )
        return {node: zone for node, zone in named if node and zone}

    def _ready_endpoints(self, spec: ScaleSetSpec) -> set[str] | None:
        """Pod names the load balancer's Service lists as ready (LoadBalancer health only)."""
        probe = spec.health_probe
        if probe.source is not HealthSource.LOAD_BALANCER or not probe.service_name:
            return None
        selector = f"kubernetes.io/service-name={probe.service_name}"
        with _translated(f'endpoints of service "{probe.service_name}"'):
            slices = self._discovery.list_namespaced_endpoint_slice(
                self.namespace, label_selector=selector, _request_timeout=_TIMEOUT
            ).items
        return {
            ep.target_ref.name
            for s in slices
            for ep in s.endpoints or []
            if ep.target_ref and ep.target_ref.name and ep.conditions and ep.conditions.ready
        }

    def annotate_pod(self, pod: str, annotations: dict[str, str | None]) -> None:
        """Sets annotations on a pod; `None` removes one."""
        patch = {"metadata": {"annotations": annotations}}
        with _translated(f'pod "{pod}" in namespace "{self.namespace}"'):
            self._core.patch_namespaced_pod(pod, self.namespace, patch, _request_timeout=_TIMEOUT)

    def events_about(self, name: str, kind: str) -> list[Obj]:
        """Events whose involved object is this scale set, oldest first."""
        selector = f"involvedObject.name={name},involvedObject.kind={kind}"
        with _translated(f'events of "{name}"'):
            events = self._core.list_namespaced_event(
                self.namespace, field_selector=selector, _request_timeout=_TIMEOUT
            ).items
        found = [
            {
                "type": e.type,
                "reason": e.reason,
                "message": e.message,
                "time": e.last_timestamp or e.event_time or e.first_timestamp,
            }
            for e in events
        ]
        return sorted(found, key=lambda e: e["time"] or _EPOCH)
