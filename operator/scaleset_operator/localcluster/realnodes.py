"""Real nodes next to the simulated ones: per node a kubelet with a containerd of its own.

Each node has its own folder (``DIR/nodes/<name>/``) holding containerd's root, state and socket,
the kubelet's root and certificates, and its CNI configuration; a bridge of its own (``ssbr<i>``)
with a /24 pod network; and a cgroup root of its own, so that no kubelet mistakes another's pods
for orphans. Every node pulls from one registry on 127.0.0.1. Real nodes carry the label
``type=real`` and the taint ``scaleset.dev/real-node=true:NoSchedule``: only pods that ask for them
(a toleration and a node selector) run there, and everything else stays on the kwok nodes.

Pods find the API server through the ``kubernetes`` Service: its cluster IP lives on a bridge of
its own and a relay process (see serviceproxy) forwards it to the API server. Nothing here is
routed beyond this machine: IP forwarding stays off, so a pod reaches the host's own addresses
(the API relay, the registry is not needed by pods) and the host reaches pods over their bridge.

Two traps of this kind of machine are handled here: root may not lower ``oom_score_adj`` (the
kubelet asks -998 for every sandbox), so containerd gets a runc wrapper that raises negative
values to 0; and containerd must not be managed by kwok, which only manages nodes annotated as
its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from scaleset_operator.localcluster import processes
from scaleset_operator.localcluster.binaries import (
    cache_root,
    resolve_node_binaries,
)
from scaleset_operator.localcluster.kubeapi import ApiError
from scaleset_operator.localcluster.nodeconfig import (
    NODE_TYPE_LABEL,
    SERVICE_BRIDGE,
    SERVICE_IP,
    TAINT_KEY,
    NodeBinaries,
    RealNode,
    RealNodeError,
    cni_config,
    containerd_config,
    kubelet_config,
    pod_spec,
    runc_wrapper,
)
from scaleset_operator.localcluster.nodehost import (
    bridges,
    cgroup_pids,
    ensure_bridge,
    ip,
    kill,
    make_cgroup_root,
    remove_cgroup_root,
    unmount_all,
)
from scaleset_operator.localcluster.pki import MAX_REAL_NODES, real_node_name
from scaleset_operator.localcluster.procfs import pids_with_arg

__all__ = [
    "NODE_TYPE_LABEL",
    "TAINT_KEY",
    "RealNodeError",
    "RealNodes",
    "our_bridges",
    "pod_spec",
    "resolve_node_binaries",
]

if TYPE_CHECKING:
    from scaleset_operator.localcluster.cluster import LocalCluster

REGISTRY_PORT = 5000
_OWNER_FILE = "real-nodes.owner"
_RUN_ROOT = "/run/scaleset-operator"
# Fixed in the kubelet, whatever --root-dir says.
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")


def _socket_identity() -> tuple[int, int] | None:
    """The device-plugin socket's inode and change time: a kubelet that binds makes it anew."""
    try:
        stat = DEVICE_PLUGIN_SOCKET.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_ctime_ns


def our_bridges() -> list[str]:
    """The bridges real nodes make: one per node and the service bridge."""
    return [n for n in bridges() if n == SERVICE_BRIDGE or n.startswith("ssbr")]


# -- the nodes ----------------------------------------------------------------------------------


class RealNodes:
    """Starts, checks and stops the real nodes (and the registry) of one local cluster."""

    def __init__(self, cluster: LocalCluster, log: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.log = log
        self.folder = cluster.directory / "nodes"

    @property
    def run_dir(self) -> Path:
        digest = hashlib.sha256(str(self.cluster.directory).encode()).hexdigest()[:12]
        return Path(_RUN_ROOT) / digest

    def node(self, index: int, zones: int) -> RealNode:
        folder = self.folder / real_node_name(index)
        return RealNode(index, f"zone-{index % zones + 1}", folder, self.run_dir)

    @property
    def owner_file(self) -> Path:
        return cache_root() / _OWNER_FILE

    def _claim(self) -> None:
        """One cluster with real nodes per machine: the bridges and the service IP are global."""
        if self.owner_file.exists():
            other = Path(self.owner_file.read_text().strip())
            if other != self.cluster.directory and _has_live(other):
                raise RealNodeError(
                    f"the cluster in {other} already runs real nodes on this machine; stop it "
                    f"first (scaleset-operator cluster down --dir {other})"
                )
            if other != self.cluster.directory:
                self.log(f"cleaning up real-node leftovers of {other}")
                stop_leftovers()
        self.owner_file.parent.mkdir(parents=True, exist_ok=True)
        self.owner_file.write_text(str(self.cluster.directory))

    def start(self, count: int, zones: int, deadline: float) -> None:
        if count > MAX_REAL_NODES:
            raise RealNodeError(f"at most {MAX_REAL_NODES} real nodes (asked for {count})")
        bins = resolve_node_binaries(build_missing=self.cluster.build_missing)
        self._claim()
        registry = self._start_registry(bins)
        self._start_service_relay()
        self._bind_node_role()
        from scaleset_operator.localcluster.images import Registry, build_test_images

        self.log(f"building the test images into {registry}")
        build_test_images(bins.crane, Registry(registry), self.cluster.directory / "images")
        state = self.cluster.read_state()
        have = int(state.get("real_nodes", 0))
        nodes = [self.node(i, zones) for i in range(max(have, count))]
        for node in nodes:
            self._start_node(node, bins, registry)
        state = self.cluster.read_state()
        state["real_nodes"] = len(nodes)
        self.cluster.write_state(state)
        self.log(f"waiting for {len(nodes)} real node(s) to be Ready")
        self.cluster.wait_for(
            "real nodes Ready", lambda: self._ready([n.name for n in nodes]), deadline, 0.5
        )

    def _start_registry(self, bins: NodeBinaries) -> str:
        state = self.cluster.read_state()
        port = int(state.get("ports", {}).get("registry", 0))
        if not port:
            port = REGISTRY_PORT if _port_free(REGISTRY_PORT) else _any_free_port()
            state["ports"]["registry"] = port
            self.cluster.write_state(state)
        address = f"127.0.0.1:{port}"
        if not self.cluster.running("registry"):
            disk = self.cluster.directory / "registry"
            disk.mkdir(parents=True, exist_ok=True)
            self.log(f"starting the image registry on {address}")
            self.cluster.start_process(
                "registry",
                [str(bins.crane), "registry", "serve", f"--address={address}", f"--disk={disk}"],
            )
            self.cluster.wait_for(
                "registry", lambda: _http_ok(f"http://{address}/v2/"), time.monotonic() + 20
            )
        return address

    def _start_service_relay(self) -> None:
        ensure_bridge(SERVICE_BRIDGE, f"{SERVICE_IP}/32")
        if self.cluster.running("service-relay"):
            return
        port = self.cluster.ports()["apiserver"]
        self.cluster.start_process(
            "service-relay",
            [
                *self.cluster.python_command("scaleset_operator.localcluster.serviceproxy"),
                "--listen",
                f"{SERVICE_IP}:443",
                "--to",
                f"127.0.0.1:{port}",
            ],
        )

    def _bind_node_role(self) -> None:
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "scaleset-local:nodes"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:node",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}
            ],
        }
        with contextlib.suppress(ApiError):
            self.cluster.api().create(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding
            )

    def _start_node(self, node: RealNode, bins: NodeBinaries, registry: str) -> None:
        containerd_name, kubelet_name = f"containerd-{node.name}", f"kubelet-{node.name}"
        for sub in ("containerd", "cni", "ipam", "volume-plugins", "pod-logs"):
            (node.folder / sub).mkdir(parents=True, exist_ok=True)
        node.kubelet_dir.mkdir(parents=True, exist_ok=True)
        ensure_bridge(node.bridge, f"{node.gateway}/24")
        make_cgroup_root(node.cgroup_root)
        wrapper = node.folder / "runc-wrapper"
        wrapper.write_text(runc_wrapper(bins.runc))
        wrapper.chmod(0o755)
        (node.folder / "containerd" / "config.toml").write_text(
            containerd_config(node, bins, registry)
        )
        (node.folder / "cni" / "10-bridge.conflist").write_text(
            json.dumps(cni_config(node), indent=2)
        )
        (node.folder / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(node)))
        kubeconfig = node.folder / "kubeconfig"
        identity = self.cluster.kubeconfig_for(node.name, f"system:node:{node.name}")
        kubeconfig.write_text(yaml.safe_dump(identity))
        kubeconfig.chmod(0o600)
        if not self.cluster.running(containerd_name):
            self.log(f"starting containerd of {node.name}")
            self.cluster.start_process(
                containerd_name,
                [str(bins.containerd), f"--config={node.folder / 'containerd' / 'config.toml'}"],
                env_path=str(bins.shim.parent),
            )
            self.cluster.wait_for(
                f"containerd of {node.name}", node.socket.exists, time.monotonic() + 30
            )
        if not self.cluster.running(kubelet_name):
            self.log(f"starting kubelet of {node.name} ({node.zone}, pods on {node.subnet})")
            before = _socket_identity()
            labels = ",".join(
                [
                    f"type={NODE_TYPE_LABEL}",
                    f"topology.kubernetes.io/zone={node.zone}",
                    "topology.kubernetes.io/region=local",
                    "node.kubernetes.io/instance-type=real.local",
                ]
            )
            self.cluster.start_process(
                kubelet_name,
                [
                    str(bins.kubelet),
                    f"--config={node.folder / 'kubelet.yaml'}",
                    f"--kubeconfig={kubeconfig}",
                    f"--hostname-override={node.name}",
                    f"--node-ip={node.gateway}",
                    f"--root-dir={node.kubelet_dir}",
                    f"--cert-dir={node.folder / 'pki'}",
                    f"--node-labels={labels}",
                    "--v=1",
                ],
                env_path=str(bins.shim.parent),
            )
            self._await_device_socket(node, before)

    def _await_device_socket(self, node: RealNode, before: tuple[int, int] | None) -> None:
        """All kubelets of a machine serve device plugins on one fixed socket; a kubelet clears
        its folder, then binds. Two at once collide (`address already in use`) and one exits."""

        def bound() -> bool:
            now = _socket_identity()
            return now is not None and now != before

        self.cluster.wait_for(
            f"kubelet of {node.name} serving its device-plugin socket",
            bound,
            time.monotonic() + 60,
        )

    def _ready(self, names: list[str]) -> bool:
        ready = set()
        for item in self.cluster.api().get("/api/v1/nodes?labelSelector=type%3Dreal")["items"]:
            conds = (item.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                ready.add(item["metadata"]["name"])
        return set(names) <= ready

    def stop(self, timeout: float = 20.0) -> None:
        """Stops kubelets, every container and shim, containerds, the registry and the relay,
        then removes mounts, cgroups and bridges; nothing of the real nodes is left running."""
        records = self.cluster.records()
        kubelets = [r for n, r in records.items() if n.startswith("kubelet-")]
        containerds = [r for n, r in records.items() if n.startswith("containerd-")]
        others = [r for n, r in records.items() if n in ("registry", "service-relay")]
        if not (kubelets or containerds or others or self.folder.exists()):
            return
        processes.stop_all(kubelets, timeout)
        # Every possible node, not only those recorded: a start that died half-way leaves some.
        nodes = [self.node(i, 1) for i in range(MAX_REAL_NODES)]
        _stop_containers(nodes)
        processes.stop_all(containerds, timeout)
        processes.stop_all(others, timeout)
        unmount_all([self.folder, self.run_dir])
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for node in nodes:
            remove_cgroup_root(node.cgroup_root)
        for bridge in our_bridges():
            ip("link", "del", bridge, check=False)
        state = self.cluster.read_state()
        for rec in kubelets + containerds + others:
            state.get("processes", {}).pop(rec.name, None)
        state["real_nodes"] = 0
        self.cluster.write_state(state)
        with contextlib.suppress(OSError):
            if Path(self.owner_file.read_text().strip()) == self.cluster.directory:
                self.owner_file.unlink()


def _stop_containers(nodes: Iterable[RealNode]) -> None:
    """Kills every container (all processes in the nodes' cgroups) and every shim of ours."""
    nodes = list(nodes)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = {p for n in nodes for p in cgroup_pids(n.cgroup_root)}
        pids.update(p for n in nodes for p in pids_with_arg(str(n.socket)))
        pids.discard(os.getpid())
        if not pids:
            return
        kill(pids)
        time.sleep(0.1)


def stop_leftovers() -> None:
    """Clean-up after a cluster that died without ``down``: shims, containers, bridges."""
    nodes = [RealNode(i, "", Path("/nonexistent"), Path(_RUN_ROOT)) for i in range(MAX_REAL_NODES)]
    for node in nodes:
        kill(cgroup_pids(node.cgroup_root))
        remove_cgroup_root(node.cgroup_root)
    # Shims of our containerds only: their -address names a socket under our run folder.
    kill(pids_with_arg(_RUN_ROOT))
    for bridge in our_bridges():
        ip("link", "del", bridge, check=False)


def _has_live(directory: Path) -> bool:
    try:
        state = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return False
    for name, raw in state.get("processes", {}).items():
        if name.startswith(("kubelet-", "containerd-")) and processes.is_running(
            processes.ProcessRecord.from_json(raw)
        ):
            return True
    return False


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False
