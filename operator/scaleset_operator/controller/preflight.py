"""Checks made before kopf starts, for starts that cannot succeed: a port taken, the CRDs not
installed, no permission to list what the operator watches. Inside kopf each of these is a
failure retried forever by a process that looks alive; here each becomes one line to act on.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.crds import missing_resources
from scaleset_operator.k8s.errors import ForbiddenError, UnavailableError
from scaleset_operator.models.imageversion import PLURAL as IV_PLURAL
from scaleset_operator.models.scaleset import GROUP, PLURAL, VERSION
from scaleset_operator.models.upgradewave import PLURAL as WAVE_PLURAL

INSTALL_CRDS = "scaleset-operator crds | kubectl apply --server-side -f -"


class StartupError(Exception):
    """The operator cannot start as configured; the message says what to change."""


@dataclass(frozen=True)
class Listener:
    """A port the operator will listen on, and the option that chooses it."""

    port: int
    purpose: str
    option: str


def check_ports(listeners: Sequence[Listener]) -> None:
    """Fails when a port is taken (or two listeners share one). Port 0 means "off"."""
    enabled = [listener for listener in listeners if listener.port]
    chosen: dict[int, Listener] = {}
    for listener in enabled:
        other = chosen.setdefault(listener.port, listener)
        if other is not listener:
            raise StartupError(
                f"{other.option} and {listener.option} are both {listener.port}; "
                "give them different ports"
            )
    for listener in enabled:
        _probe(listener)


def _probe(listener: Listener) -> None:
    # The servers bind 0.0.0.0 with SO_REUSEADDR (prometheus-client's and aiohttp's); doing
    # the same means a port merely in TIME_WAIT does not count as taken.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", listener.port))
        except OSError as exc:
            state = "in use" if exc.errno == errno.EADDRINUSE else "not available"
            raise StartupError(
                f"port {listener.port} ({listener.purpose}) is {state}: {exc.strerror}; "
                f"pass {listener.option} with a free port (0 turns it off)"
            ) from None


class CrdsMissingError(StartupError):
    """The API server does not serve (all of) our CRDs."""


def check_api(
    kube: KubeClient, namespaces: Sequence[str], *, wait: float = 10.0, crd_grace: float = 3.0
) -> None:
    """Fails when the CRDs are missing or the identity may not list what the operator
    watches. An unreachable API server is waited for up to `wait` seconds (a pod may start a
    moment before its network), missing CRDs for `crd_grace` (discovery follows a CRD that
    has just been established a moment later)."""
    started = time.monotonic()
    with _quiet_retries():
        while True:
            waited = time.monotonic() - started
            try:
                _check_api_once(kube, namespaces)
                return
            except UnavailableError as exc:
                if waited >= wait:
                    raise StartupError(f"cannot reach the API server: {exc}") from None
            except CrdsMissingError:
                if waited >= crd_grace:
                    raise
            time.sleep(0.5)


def check_crds(kube: KubeClient, group_version: str, plurals: Sequence[str]) -> None:
    missing = missing_resources(kube, group_version, plurals)
    if missing:
        names = ", ".join(f"{p}.{group_version.split('/')[0]}" for p in missing)
        raise CrdsMissingError(
            f"the CRDs are not installed: the API server serves no {names}; "
            f"install them with `{INSTALL_CRDS}` (or the Helm chart)"
        )


def _check_api_once(kube: KubeClient, namespaces: Sequence[str]) -> None:
    check_crds(kube, f"{GROUP}/{VERSION}", (PLURAL, IV_PLURAL, WAVE_PLURAL))
    for resource, path, where in _watched(namespaces):
        try:
            kube.request("GET", path, query=[("limit", "1")])
        except ForbiddenError as exc:
            raise StartupError(
                f"not allowed to list {resource} {where}: {exc}; grant the operator "
                "the chart's ClusterRole (or Roles for --namespace) or run it as another user"
            ) from None


def _watched(namespaces: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """(resource, list path, where) for everything the operator lists and watches."""
    base = f"/apis/{GROUP}/{VERSION}"
    scope = [(f"/namespaces/{ns}", f'in namespace "{ns}"') for ns in namespaces] or [
        ("", "in all namespaces")
    ]
    for prefix, where in scope:
        yield f"{PLURAL}.{GROUP}", f"{base}{prefix}/{PLURAL}", where
    yield f"{IV_PLURAL}.{GROUP}", f"{base}/{IV_PLURAL}", "(cluster-scoped)"
    yield f"{WAVE_PLURAL}.{GROUP}", f"{base}/{WAVE_PLURAL}", "(cluster-scoped)"
    for prefix, where in scope:
        yield "pods", f"/api/v1{prefix}/pods", where


@contextmanager
def _quiet_retries() -> Iterator[None]:
    # urllib3 logs each retried connection as a warning; before logging is configured Python
    # prints those to stderr, burying the one line this module exists to print.
    logger = logging.getLogger("urllib3")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
