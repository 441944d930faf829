"""A local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok (simulated nodes and kubelets) and a small PVC provisioner.

Everything lives in one folder: PKI, etcd data, kubeconfigs, logs and ``state.json`` (pids and
ports), so that ``down``/``status`` work from another process than the one that ran ``up``.
"""

# Long module: one lifecycle (start, wait, stop) whose steps all read the same folder, ports
# and state; the command lines and readiness checks of the components are kept next to it.

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from scaleset_operator.localcluster import kwokconfig, processes, procfs
from scaleset_operator.localcluster.binaries import CONTROL_PLANE, resolve_binaries
from scaleset_operator.localcluster.kubeapi import ApiError, Obj, PlainKubeClient
from scaleset_operator.localcluster.pki import FRONT_PROXY_CN, Pki, ensure_pki
from scaleset_operator.localcluster.processes import ProcessRecord
from scaleset_operator.polling import PollTimeoutError, poll

STORAGE_CLASS = "standard"
PROVISIONER_NAME = "scaleset.dev/local-sim"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Stop order: consumers first, storage last.
COMPONENTS = (
    "provisioner",
    "kwok",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)
_PORTS = ("etcd-client", "etcd-peer", "apiserver", "controller-manager", "scheduler")


class LocalClusterError(RuntimeError):
    """The local cluster could not be started, stopped or reached."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    running: bool
    rss_bytes: int
    log: str


@dataclass(frozen=True)
class ClusterStatus:
    directory: Path
    kubeconfig: Path
    server: str | None
    api_ready: bool
    components: dict[str, ComponentStatus] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return bool(self.components) and all(c.running for c in self.components.values())

    @property
    def rss_bytes(self) -> int:
        return sum(c.rss_bytes for c in self.components.values())


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _noop(_: str) -> None:
    pass


class LocalCluster:
    """The control plane in ``directory``; see the module docstring.

    ``die_with_parent`` ties the components to the lifetime of the calling thread (for test
    sessions); leave it False for a cluster that must outlive the process running ``up``.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        nodes: int = 6,
        zones: int = 3,
        pod_start_delay: float | None = None,
        kwok_config: str | None = None,
        real_nodes: int = 0,
        binaries: Mapping[str, Path] | None = None,
        build_missing: bool = True,
        die_with_parent: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = Path(directory).absolute()
        self.nodes = nodes
        self.zones = zones
        self.pod_start_delay = pod_start_delay
        # Another kwok configuration than the project's stages (benchmarks compare variants).
        self.kwok_config = kwok_config
        self.real_nodes = real_nodes
        self._binaries = dict(binaries) if binaries is not None else None
        self.build_missing = build_missing
        self.die_with_parent = die_with_parent
        self.log = log or _noop
        self.pki = Pki(self.directory / "pki")

    # -- paths and state ------------------------------------------------------------------------

    @property
    def kubeconfig_path(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    def read_state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {"ports": {}, "processes": {}}
        return data

    def write_state(self, state: Mapping[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def records(self) -> dict[str, ProcessRecord]:
        return {
            name: ProcessRecord.from_json(rec)
            for name, rec in self.read_state().get("processes", {}).items()
        }

    def ports(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.read_state().get("ports", {}).items()}

    @property
    def server(self) -> str:
        port = self.ports().get("apiserver")
        if port is None:
            raise LocalClusterError(f"no cluster state in {self.directory}")
        return f"https://127.0.0.1:{port}"

    @property
    def admin_token(self) -> str:
        return self.pki.tokens()["admin"]

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_cert

    def api(self, identity: str = "admin") -> PlainKubeClient:
        """A minimal API client (see kubeapi) for ``identity`` (a key of pki.IDENTITIES)."""
        return PlainKubeClient(
            "127.0.0.1", self.ports()["apiserver"], self.pki.tokens()[identity], self.pki.ca_cert
        )

    # -- public operations ----------------------------------------------------------------------

    def status(self) -> ClusterStatus:
        records = self.records()
        stats = procfs.all_stats()
        comps: dict[str, ComponentStatus] = {}
        for name, rec in records.items():
            running = processes.is_running(rec)
            rss = sum(m.rss_bytes for m in processes.group_members(rec, stats)) if running else 0
            comps[name] = ComponentStatus(name, rec.pid, running, rss, rec.log)
        server = None
        ready = False
        if "apiserver" in self.ports():
            server = self.server
            with contextlib.suppress(OSError, KeyError, ValueError, http.client.HTTPException):
                ready = self.api().raw_get("/readyz", timeout=2.0)[0] == 200
        return ClusterStatus(self.directory, self.kubeconfig_path, server, ready, comps)

    def is_up(self) -> bool:
        st = self.status()
        return st.running and st.api_ready and set(COMPONENTS) <= set(st.components)

    def running(self, name: str) -> bool:
        """Whether the component ``name`` (e.g. ``kubelet-real-node-0``) is running."""
        record = self.records().get(name)
        return record is not None and processes.is_running(record)

    def real_node_count(self) -> int:
        return int(self.read_state().get("real_nodes", 0))

    def up(self, timeout: float = 180.0) -> None:
        """Starts every component and waits until nodes are Ready; reuses a running cluster."""
        deadline = time.monotonic() + timeout
        if self.is_up():
            self.log(f"cluster in {self.directory} is already running")
            if self.real_nodes > self.real_node_count():
                self.add_real_nodes(self.real_nodes, timeout=deadline - time.monotonic())
            return
        if self.records():
            self.log("cleaning up leftovers of a previous run")
            self._stop_all()
        started = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        gitignore = self.directory / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("*\n")
        bins = self._resolve()
        self.log("preparing certificates and configuration")
        ensure_pki(self.pki.folder)
        ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
        self.write_state({"ports": ports, "processes": {}})
        self._write_kubeconfigs()
        if self.kwok_config is None:
            kwokconfig.write(self.directory / "kwok.yaml", self.pod_start_delay)
        else:
            (self.directory / "kwok.yaml").write_text(self.kwok_config)
        try:
            self._start_etcd_and_apiserver(bins, deadline)
            # kwok takes a new identity on each start and would wait for the node leases of its
            # previous run to expire (40 s) before it manages those nodes and their pods again.
            since = datetime.now(UTC) - timedelta(seconds=1)
            self._delete_node_leases()
            self.log("starting kube-controller-manager, kube-scheduler, kwok, provisioner")
            self._start("kube-controller-manager", self._kcm_args(bins))
            self._start("kube-scheduler", self._scheduler_args(bins))
            self._start("kwok", self._kwok_args(bins))
            self._start("provisioner", self._provisioner_args())
            self._bootstrap_objects()
            self.log(f"waiting for {self.nodes} nodes and the default service account")
            self.wait_for("nodes Ready and untainted", self._nodes_ready, deadline)
            self.wait_for("kwok renewing node leases", lambda: self._leases_fresh(since), deadline)
            self.wait_for("default service account", self._default_sa_exists, deadline)
            self.wait_for("controller-manager and scheduler health", self._healthy, deadline)
            if self.real_nodes:
                self.add_real_nodes(self.real_nodes, timeout=deadline - time.monotonic())
        except BaseException:
            self._stop_all()
            raise
        self.log(f"cluster up in {time.monotonic() - started:.1f}s")

    def add_real_nodes(self, count: int, timeout: float = 300.0) -> None:
        """Brings the number of real nodes (kubelet + containerd each) up to ``count``, with the
        image registry they pull from; see realnodes."""
        from scaleset_operator.localcluster.realnodes import RealNodes

        RealNodes(self, self.log).start(count, self.zones, time.monotonic() + timeout)

    @property
    def registry(self) -> str | None:
        """``127.0.0.1:PORT`` of the image registry of the real nodes, if they run."""
        port = self.ports().get("registry")
        return f"127.0.0.1:{port}" if port and self.running("registry") else None

    def down(self, timeout: float = 20.0, *, purge: bool = False) -> None:
        """Stops all components (whole process groups) and checks that none is left."""
        self._stop_all(timeout)
        if purge and self.directory.exists():
            shutil.rmtree(self.directory)

    def _stop_all(self, timeout: float = 20.0) -> None:
        from scaleset_operator.localcluster.realnodes import RealNodes

        # Real nodes first: their kubelets and containers are clients of everything else.
        RealNodes(self, self.log).stop(timeout)
        self._stop(COMPONENTS, timeout)

    def restart_apiserver_and_etcd(self, timeout: float = 90.0) -> None:
        """Stops kube-apiserver and etcd and starts them again on the same ports and data."""
        deadline = time.monotonic() + timeout
        self._stop(("kube-apiserver", "etcd"))
        self._start_etcd_and_apiserver(self._resolve(), deadline)

    def __enter__(self) -> LocalCluster:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # -- processes ------------------------------------------------------------------------------

    def _resolve(self) -> dict[str, Path]:
        if self._binaries is None:
            self._binaries = resolve_binaries(CONTROL_PLANE, build_missing=self.build_missing)
        return self._binaries

    def python_command(self, module: str) -> list[str]:
        """The command line that runs one of our modules as a component process."""
        return [sys.executable, "-m", module]

    def start_process(self, name: str, args: list[str], env_path: str | None = None) -> None:
        """Starts a component recorded in the state (stopped by ``down``); ``env_path`` is put
        first on its PATH."""
        self._start(name, args, env_path)

    def _start(self, name: str, args: list[str], env_path: str | None = None) -> ProcessRecord:
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        if env_path:
            env["PATH"] = os.pathsep.join(p for p in (env_path, env.get("PATH")) if p)
        if args[:2] == [sys.executable, "-m"]:
            package_root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (package_root, env.get("PYTHONPATH")) if p
            )
        record = processes.start(
            name,
            args,
            self.logs_dir / f"{name}.log",
            env=env,
            die_with_parent=self.die_with_parent,
        )
        state = self.read_state()
        state["processes"][name] = record.to_json()
        self.write_state(state)
        return record

    def _stop(self, names: tuple[str, ...], timeout: float = 20.0) -> None:
        state = self.read_state()
        recs = [
            ProcessRecord.from_json(state["processes"][n])
            for n in names
            if n in state.get("processes", {})
        ]
        # Clients before the apiserver before etcd, so nothing logs errors about lost backends.
        phases = (
            [r for r in recs if r.name not in ("kube-apiserver", "etcd")],
            [r for r in recs if r.name == "kube-apiserver"],
            [r for r in recs if r.name == "etcd"],
        )
        left = [p for phase in phases if phase for p in processes.stop_all(phase, timeout)]
        if left:
            raise LocalClusterError(
                "processes still alive after SIGKILL: " + ", ".join(str(p.pid) for p in left)
            )
        for rec in recs:
            del state["processes"][rec.name]
        if self.state_path.exists():
            self.write_state(state)

    def _check_alive(self) -> None:
        for name, rec in self.records().items():
            if not processes.is_running(rec):
                raise LocalClusterError(
                    f"{name} exited during startup; last lines of {rec.log}:\n"
                    + processes.tail(rec.log)
                )

    def wait_for(
        self, what: str, predicate: Callable[[], bool], deadline: float, interval: float = 0.1
    ) -> None:
        def probe() -> bool:
            self._check_alive()
            return predicate()

        try:
            poll(
                probe,
                what=what,
                deadline=deadline,
                interval=interval,
                retry_on=(OSError, ApiError, http.client.HTTPException, ValueError),
            )
        except PollTimeoutError as exc:
            logs = "\n".join(
                f"--- {name} ---\n{processes.tail(rec.log, 15)}"
                for name, rec in self.records().items()
            )
            raise LocalClusterError(
                f"timed out waiting for {what} (last error: {exc.last_error})\n{logs}"
            ) from None

    def _start_etcd_and_apiserver(self, bins: Mapping[str, Path], deadline: float) -> None:
        self.log("starting etcd")
        self._start("etcd", self._etcd_args(bins))
        self.wait_for("etcd health", self._etcd_healthy, deadline)
        self.log("starting kube-apiserver")
        self._start("kube-apiserver", self._apiserver_args(bins))
        self.wait_for("kube-apiserver /readyz", self._apiserver_ready, deadline, 0.2)

    # -- component command lines ----------------------------------------------------------------

    def _etcd_args(self, bins: Mapping[str, Path]) -> list[str]:
        p = self.ports()
        client = f"http://127.0.0.1:{p['etcd-client']}"
        peer = f"http://127.0.0.1:{p['etcd-peer']}"
        return [
            str(bins["etcd"]),
            "--name=local",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            "--initial-cluster-state=new",
            # Test data: durability across power loss is not needed, speed is.
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=4294967296",
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=5m",
            "--log-level=warn",
        ]

    def _apiserver_args(self, bins: Mapping[str, Path]) -> list[str]:
        p = self.ports()
        pki = self.pki
        return [
            str(bins["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{p['etcd-client']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p['apiserver']}",
            f"--cert-dir={pki.folder}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={pki.token_file}",
            f"--requestheader-client-ca-file={pki.ca_cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_CN}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.proxy_cert}",
            f"--proxy-client-key-file={pki.proxy_key}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            # A loopback address cannot be published as the endpoint of the kubernetes service.
            "--endpoint-reconciler-type=none",
            # Real nodes' names resolve nowhere; their InternalIP is their bridge's address.
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false",
            # Close watches at shutdown instead of waiting (60 s) for connected clients to leave.
            "--shutdown-watch-termination-grace-period=2s",
        ]

    def _component_common(self, name: str, port_key: str) -> list[str]:
        kubeconfig = self.directory / "kubeconfigs" / f"{name}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports()[port_key]}",
            f"--cert-dir={self.directory / 'pki' / name}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--leader-elect=false",
        ]

    def _kcm_args(self, bins: Mapping[str, Path]) -> list[str]:
        pki = self.pki
        return [
            str(bins["kube-controller-manager"]),
            *self._component_common("kube-controller-manager", "controller-manager"),
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--root-ca-file={pki.ca_cert}",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ]

    def _scheduler_args(self, bins: Mapping[str, Path]) -> list[str]:
        return [
            str(bins["kube-scheduler"]),
            *self._component_common("kube-scheduler", "scheduler"),
        ]

    def _kwok_args(self, bins: Mapping[str, Path]) -> list[str]:
        return [
            str(bins["kwok"]),
            f"--kubeconfig={self.directory / 'kubeconfigs' / 'kwok.kubeconfig'}",
            f"--config={self.directory / 'kwok.yaml'}",
            # Only the simulated nodes: a real node's kubelet owns its node and pods.
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        ]

    def _provisioner_args(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "scaleset_operator.localcluster.provisioner",
            "--dir",
            str(self.directory),
            "--storage-class",
            STORAGE_CLASS,
            "--provisioner-name",
            PROVISIONER_NAME,
        ]

    # -- kubeconfigs ----------------------------------------------------------------------------

    def kubeconfig_for(self, identity: str, user: str) -> dict[str, Any]:
        ca = base64.b64encode(self.pki.ca_cert.read_bytes()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.server, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": user, "user": {"token": self.pki.tokens()[identity]}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        }

    def _write_kubeconfigs(self) -> None:
        folder = self.directory / "kubeconfigs"
        folder.mkdir(parents=True, exist_ok=True)
        for identity in ("kube-controller-manager", "kube-scheduler", "kwok", "provisioner"):
            path = folder / f"{identity}.kubeconfig"
            path.write_text(yaml.safe_dump(self.kubeconfig_for(identity, identity)))
            path.chmod(0o600)
        self.kubeconfig_path.write_text(yaml.safe_dump(self.kubeconfig_for("admin", "admin")))
        self.kubeconfig_path.chmod(0o600)

    # -- readiness checks -----------------------------------------------------------------------

    def _etcd_healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports()["etcd-client"], timeout=2)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            return resp.status == 200 and b'"true"' in resp.read()
        finally:
            conn.close()

    def _apiserver_ready(self) -> bool:
        return self.api().raw_get("/readyz")[0] == 200

    def _healthy(self) -> bool:
        for key in ("controller-manager", "scheduler"):
            api = PlainKubeClient("127.0.0.1", self.ports()[key], "", None)
            if api.raw_get("/healthz")[0] != 200:
                return False
        return True

    def _default_sa_exists(self) -> bool:
        return (
            self.api().get_or_none("/api/v1/namespaces/default/serviceaccounts/default") is not None
        )

    def _delete_node_leases(self) -> None:
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        for lease in self.api().get(path)["items"]:
            self.api().delete(f"{path}/{lease['metadata']['name']}")

    def _leases_fresh(self, since: datetime) -> bool:
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        renewed = {
            lease["metadata"]["name"]: lease.get("spec", {}).get("renewTime")
            for lease in self.api().get(path)["items"]
        }
        for i in range(self.nodes):
            stamp = renewed.get(f"kwok-node-{i}")
            if not stamp or datetime.fromisoformat(stamp.replace("Z", "+00:00")) < since:
                return False
        return True

    def _nodes_ready(self) -> bool:
        items: list[Obj] = self.api().get("/api/v1/nodes?labelSelector=type%3Dkwok")["items"]
        if len(items) < self.nodes:
            return False
        for node in items:
            status = node.get("status") or {}
            conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            if conds.get("Ready") != "True" or (node.get("spec") or {}).get("taints"):
                return False
        return True

    # -- objects --------------------------------------------------------------------------------

    def _bootstrap_objects(self) -> None:
        api = self.api()
        api.create(
            "/apis/storage.k8s.io/v1/storageclasses",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": PROVISIONER_NAME,
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": True,
            },
        )
        for i in range(self.nodes):
            api.create("/api/v1/nodes", self._node(i))

    def _node(self, index: int) -> Obj:
        name = f"kwok-node-{index}"
        zone = f"zone-{index % self.zones + 1}"
        resources = {"cpu": "1000", "memory": "4Ti", "pods": "1000", "ephemeral-storage": "10Ti"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "sim.standard",
                    "topology.kubernetes.io/region": "local",
                    "topology.kubernetes.io/zone": zone,
                },
                "annotations": {
                    "kwok.x-k8s.io/node": "fake",
                    "node.alpha.kubernetes.io/ttl": "0",
                },
            },
            "spec": {},
            "status": {
                "allocatable": resources,
                "capacity": resources,
                # kwok gives every node the same (empty by default) address; pods' hostIP
                # comes from these.
                "addresses": [
                    {"type": "InternalIP", "address": f"10.0.1.{index + 1}"},
                    {"type": "Hostname", "address": name},
                ],
            },
        }
