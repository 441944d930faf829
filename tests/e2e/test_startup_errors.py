"""`scaleset-operator run` that cannot start ends within seconds, non-zero, with one line on
stderr saying what to fix, instead of idling in kopf's retries: a port already taken, the CRDs
missing, no permission to list ScaleSets."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3
import yaml
from kubernetes import client, config

from scaleset_operator.controller.preflight import INSTALL_CRDS, CrdsMissingError, check_crds
from scaleset_operator.k8s.client import KubeClient
from tests.e2e.support import GROUP, VERSION, OperatorProcess

pytestmark = pytest.mark.e2e

# Python and kopf take a few seconds to start on a busy two-core machine; a start that idles
# in retries would run on for ever.
LIMIT = 15.0


@dataclass(frozen=True)
class Ended:
    code: int
    err: str
    seconds: float

    def line(self) -> str:
        """The one line on stderr, with nothing else around it."""
        assert self.err.count("\n") == 1, self.err
        assert "Traceback" not in self.err, self.err
        return self.err.strip()


def run_operator(
    kubeconfig: Path, logs: Path, *flags: str, metrics_port: int | None = None
) -> Ended:
    """`scaleset-operator run` the way the session's operator is started, to its end."""
    operator = OperatorProcess(kubeconfig, logs, *flags)
    if metrics_port is not None:
        operator.metrics_port = metrics_port
    started = time.monotonic()
    try:
        done = subprocess.run(
            operator.command(),
            env=operator.environment(),
            capture_output=True,
            text=True,
            timeout=LIMIT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"still running after {LIMIT:g}s; stderr so far: {exc.stderr!r}")
    return Ended(done.returncode, done.stderr, time.monotonic() - started)


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_metrics_port_in_use(
    kubeconfig: Path, crds_installed: None, tmp_path: Path, held_port: int
) -> None:
    ended = run_operator(kubeconfig, tmp_path, metrics_port=held_port)

    assert ended.code != 0
    assert ended.seconds < LIMIT
    line = ended.line()
    assert line.startswith(f"Error: port {held_port} (metrics) is in use: ")
    assert "pass --metrics-port" in line


def test_health_port_in_use(
    kubeconfig: Path, crds_installed: None, tmp_path: Path, held_port: int
) -> None:
    ended = run_operator(kubeconfig, tmp_path, "--health-port", str(held_port))

    assert ended.code != 0
    assert ended.seconds < LIMIT
    line = ended.line()
    assert line.startswith(f"Error: port {held_port} (health) is in use: ")
    assert "pass --health-port" in line


def test_no_permission_to_list_scalesets(
    kubeconfig: Path,
    crds_installed: None,
    kube_api: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    core = client.CoreV1Api(kube_api)
    account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    core.create_namespaced_service_account(namespace, account)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token = core.create_namespaced_service_account_token("nobody", namespace, request)
    assert token.status is not None
    as_nobody = yaml.safe_load(kubeconfig.read_text())
    for user in as_nobody["users"]:
        user["user"] = {"token": token.status.token}
    nobody_kubeconfig = tmp_path / "nobody.kubeconfig"
    nobody_kubeconfig.write_text(yaml.safe_dump(as_nobody))

    ended = run_operator(nobody_kubeconfig, tmp_path)

    assert ended.code != 0
    assert ended.seconds < LIMIT
    line = ended.line()
    assert line.startswith("Error: not allowed to list scalesets.scaleset.dev in all namespaces: ")
    assert f"system:serviceaccount:{namespace}:nobody" in line
    assert "ClusterRole" in line


def test_missing_crds_are_named(api_client: client.ApiClient, crds_installed: None) -> None:
    # The session's CRDs are shared by every test, so the check is pointed at kinds that
    # were never installed rather than the real ones removed.
    cluster = KubeClient(api_client)

    with pytest.raises(CrdsMissingError) as unknown_kind:
        check_crds(cluster, f"{GROUP}/{VERSION}", ["scalesets", "nosuchthings"])
    with pytest.raises(CrdsMissingError) as unknown_group:
        check_crds(cluster, "nosuch.scaleset.dev/v1", ["scalesets"])

    assert "serves no nosuchthings.scaleset.dev;" in str(unknown_kind.value)
    assert "serves no scalesets.nosuch.scaleset.dev;" in str(unknown_group.value)
    assert "kubectl apply --server-side" in str(unknown_group.value)
    check_crds(cluster, f"{GROUP}/{VERSION}", ["scalesets", "imageversions"])


# A group that no CRD of the session's cluster defines: the API server answers for it as it
# answers for ours on a cluster where the CRDs were never installed.
NOT_INSTALLED = f"not-installed.{GROUP}"


@dataclass(frozen=True)
class ClusterView:
    kubeconfig: Path
    # (path asked by the operator, status the API server answered) for every request.
    asked: list[tuple[str, int]]


def _without_our_group(upstream: client.Configuration, asked: list[tuple[str, int]]) -> type:
    """A handler that forwards each GET to the session's API server as the session's user,
    except that a path under our group asks about NOT_INSTALLED instead. Nothing is made up:
    every answer, the discovery 404 included, is the real API server's."""
    ca = upstream.ssl_ca_cert  # type: ignore[attr-defined]  # present at runtime, not in the stubs
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca)
    token = upstream.api_key["BearerToken"]

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.replace(f"/apis/{GROUP}/", f"/apis/{NOT_INSTALLED}/", 1)
            if path.split("?")[0] == f"/apis/{GROUP}":
                path = path.replace(GROUP, NOT_INSTALLED, 1)
            accept = self.headers.get("Accept") or "application/json"
            answer = pool.request(
                "GET",
                f"{upstream.host}{path}",
                headers={"Authorization": token, "Accept": accept},
                redirect=False,
            )
            asked.append((self.path, answer.status))
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "text/plain"))
            self.send_header("Content-Length", str(len(answer.data)))
            self.end_headers()
            self.wfile.write(answer.data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Forward


@pytest.fixture
def crds_not_served(kubeconfig: Path, tmp_path: Path) -> Iterator[ClusterView]:
    """A kubeconfig for the session's API server as a cluster without our CRDs shows it,
    through a forwarding proxy; the session's CRDs stay installed for the other tests."""
    upstream = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=upstream)
    assert upstream.api_key.get("BearerToken", "").startswith("Bearer "), "token auth expected"
    asked: list[tuple[str, int]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _without_our_group(upstream, asked))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = "without-crds"
    view = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
        ],
        "users": [{"name": name, "user": {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(view))
    try:
        yield ClusterView(path, asked)
    finally:
        server.shutdown()
        server.server_close()


def test_crds_not_served(
    crds_installed: None, crds_not_served: ClusterView, tmp_path: Path
) -> None:
    ended = run_operator(crds_not_served.kubeconfig, tmp_path)

    assert ended.code != 0
    assert ended.seconds < LIMIT
    line = ended.line()
    assert line.startswith(
        f"Error: the CRDs are not installed: the API server serves no scalesets.{GROUP}, "
    )
    assert f"imageversions.{GROUP}" in line
    assert line.endswith(f"install them with `{INSTALL_CRDS}` (or the Helm chart)")
    # The real API server said it does not serve the group version, and the process believed
    # it (not a connection or permission failure).
    assert (f"/apis/{GROUP}/{VERSION}", 404) in crds_not_served.asked
