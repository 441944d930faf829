"""Every Kubernetes call the kubectl plugin makes, the few errors they can end in, and the
options that name the cluster (shared by every plugin command, the dashboard included).

The plugin never imports `kubernetes`: it gets plain dicts for custom objects, model
`Instance` views of pods, and one of the classes of `k8s.errors` when a call fails. Every call
is a request of the operator's own client (`k8s.client.KubeClient`), so both programs share one
request path, one error classification, and the node-zone and EndpointSlice reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import click
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from scaleset_operator.k8s.client import KubeClient, kubeconfig_files, load_api_client
from scaleset_operator.k8s.errors import (
    CredentialsError,
    KubeApiError,
    NotFoundError,
    UnavailableError,
    for_person,
    short_reason,
)
from scaleset_operator.k8s.pods import to_instance
from scaleset_operator.models.imageversion import PLURAL as IMAGEVERSIONS
from scaleset_operator.models.instance import LABEL_SCALESET, Instance
from scaleset_operator.models.scaleset import GROUP, PLURAL, VERSION, HealthSource, ScaleSetSpec
from scaleset_operator.models.upgradewave import PLURAL as WAVES

Obj = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
# A person is waiting: a request that takes longer than this has failed.
_TIMEOUT = 15.0
_CRD_BASE = f"/apis/{GROUP}/{VERSION}"
_MERGE_PATCH = "application/merge-patch+json"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NoConfigError(UnavailableError):
    """No kubeconfig (or in-cluster identity) to reach a cluster with."""


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
    kube = KubeClient(api, request_timeout=_TIMEOUT)
    if conn.namespace:
        return UserApi(kube, conn.namespace)
    if files is None:
        return UserApi(kube, _incluster_namespace())
    try:
        return UserApi(kube, _context_namespace(files, conn.context))
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise NoConfigError(f"no usable kubeconfig ({files}): {short_reason(exc)}") from None


def _incluster_namespace() -> str:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path) as handle:
            return handle.read().strip() or "default"
    except OSError:
        return "default"


def _about(what: str, read: Callable[[], T]) -> T:
    """Runs one read or write of `KubeClient` (which classifies its errors, `errors.call`)
    and words a failure for a person at a terminal (`errors.for_person`)."""
    try:
        return read()
    except KubeApiError as exc:
        raise for_person(exc, what) from None


def _event_time(event: Obj) -> datetime | None:
    """When an event last happened: `lastTimestamp`, else `eventTime` (events.k8s.io writers
    set only that), else `firstTimestamp`."""
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = event.get(key)
        if isinstance(value, str) and value:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


class UserApi:
    """The plugin's calls, in one namespace, through the operator's own client (`KubeClient`):
    one request path, one error classification, objects as plain JSON dicts. Errors carry
    messages written for a person (`errors.for_person`)."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.namespace = namespace
        self.kube = kube

    def _request(self, what: str, method: str, path: str, **options: Any) -> Obj:
        """`KubeClient.request` (query, body, content_type), its errors worded about `what`."""
        return _about(what, lambda: self.kube.request(method, path, **options))

    def _scaleset_path(self, name: str) -> str:
        return f"{_CRD_BASE}/namespaces/{self.namespace}/{PLURAL}/{name}"

    # ScaleSets
    def get_scaleset(self, name: str) -> Obj:
        what = f'scale set "{name}" in namespace "{self.namespace}"'
        return self._request(what, "GET", self._scaleset_path(name))

    def patch_scaleset(self, name: str, patch: Obj) -> Obj:
        """A JSON merge patch (RFC 7386): `None` values remove keys."""
        what = f'scale set "{name}" in namespace "{self.namespace}"'
        path = self._scaleset_path(name)
        return self._request(what, "PATCH", path, body=patch, content_type=_MERGE_PATCH)

    # ImageVersions (cluster-scoped)
    def list_imageversions(self) -> list[Obj]:
        answer = self._request("image versions", "GET", f"{_CRD_BASE}/{IMAGEVERSIONS}")
        return _items(answer)

    def create_imageversion(self, name: str, spec: Obj) -> Obj:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ImageVersion",
            "metadata": {"name": name},
            "spec": spec,
        }
        path = f"{_CRD_BASE}/{IMAGEVERSIONS}"
        return self._request(f'image version "{name}"', "POST", path, body=body) or body

    # UpgradeWaves (cluster-scoped)
    def get_upgradewave(self, name: str) -> Obj:
        return self._request(f'upgrade wave "{name}"', "GET", f"{_CRD_BASE}/{WAVES}/{name}")

    def list_upgradewaves(self) -> list[Obj]:
        """Every UpgradeWave; a cluster without their CRD has none to list (exit code 3)."""
        try:
            answer = self._request("upgrade waves", "GET", f"{_CRD_BASE}/{WAVES}")
        except NotFoundError:
            raise NotFoundError(
                "the UpgradeWave resource is not installed in this cluster (its CRD is in crds/)"
            ) from None
        return _items(answer)

    # Instances (pods)
    def _pods(self, name: str) -> list[Obj]:
        answer = self._request(
            f'pods of scale set "{name}"',
            "GET",
            f"/api/v1/namespaces/{self.namespace}/pods",
            query=[("labelSelector", f"{LABEL_SCALESET}={name}")],
        )
        return _items(answer)

    def list_instances(self, name: str, spec: ScaleSetSpec) -> list[Instance]:
        """The scale set's pods as model instances, zones and health signals included."""
        pods = self._pods(name)
        try:
            # Zones are only shown: a user who may not list nodes sees instances in none.
            zones = self.node_zones(_nodes(pods))
        except KubeApiError:
            zones = {}
        endpoints = self._ready_endpoints(spec)
        found = (to_instance(pod, spec, zones, endpoints) for pod in pods)
        return sorted((i for i in found if i is not None), key=lambda i: i.instance_id)

    def instances_in_zones(
        self, name: str, spec: ScaleSetSpec, zones: dict[str, str]
    ) -> list[Instance]:
        """The scale set's pods as instances, placed by the caller's node-to-zone map (see
        `node_zones`). Reads pods only, no endpoints: a view needs no health signals, and a
        user who may list pods can then see it."""
        found = (to_instance(pod, spec, zones, None) for pod in self._pods(name))
        return sorted((i for i in found if i is not None), key=lambda i: i.instance_id)

    def node_zones(self, wanted: Iterable[str] = ()) -> dict[str, str]:
        """Node name to zone, for the nodes that carry the zone label (the operator's own read,
        `KubeClient.node_zones`: nodes are listed again only for a node it does not know, or
        after a minute). Raises `ForbiddenError` when nodes may not be listed, so a caller can
        say zones are unknown rather than show every instance in none."""
        zones = _about("nodes", lambda: self.kube.node_zones(set(wanted), raise_forbidden=True))
        return {node: zone for node, zone in zones.items() if zone}

    def _ready_endpoints(self, spec: ScaleSetSpec) -> set[str] | None:
        """Pod names the load balancer's Service lists as ready (LoadBalancer health only);
        None when it has no EndpointSlices, as the operator judges it."""
        probe = spec.health_probe
        if probe.source is not HealthSource.LOAD_BALANCER or not probe.service_name:
            return None
        service = probe.service_name
        return _about(
            f'endpoints of service "{service}"',
            lambda: self.kube.ready_endpoints(self.namespace, service),
        )

    def annotate_pod(self, pod: str, annotations: dict[str, str | None]) -> None:
        """Sets annotations on a pod; `None` removes one."""
        self._request(
            f'pod "{pod}" in namespace "{self.namespace}"',
            "PATCH",
            f"/api/v1/namespaces/{self.namespace}/pods/{pod}",
            body={"metadata": {"annotations": annotations}},
            content_type=_MERGE_PATCH,
        )

    def events_about(self, name: str, kind: str) -> list[Obj]:
        """Events whose involved object is this scale set, oldest first; `time` is a
        datetime, or None when the event carries none."""
        selector = f"involvedObject.name={name},involvedObject.kind={kind}"
        answer = self._request(
            f'events of "{name}"',
            "GET",
            f"/api/v1/namespaces/{self.namespace}/events",
            query=[("fieldSelector", selector)],
        )
        found = [
            {
                "type": e.get("type"),
                "reason": e.get("reason"),
                "message": e.get("message"),
                "time": _event_time(e),
            }
            for e in _items(answer)
        ]
        return sorted(found, key=lambda e: e["time"] or _EPOCH)


def _items(answer: Obj) -> list[Obj]:
    return cast(list[Obj], answer.get("items") or [])


def _nodes(pods: Iterable[Obj]) -> set[str]:
    return {str(n) for p in pods if (n := (p.get("spec") or {}).get("nodeName"))}
