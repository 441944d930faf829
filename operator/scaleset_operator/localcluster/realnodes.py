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
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from scaleset_operator.localcluster import processes
from scaleset_operator.localcluster.binaries import (
    K8S_VERSION,
    BinaryNotFoundError,
    build_testbin,
    cache_root,
    env_var_for,
    repo_root,
)
from scaleset_operator.localcluster.kubeapi import ApiError, Obj
from scaleset_operator.localcluster.pki import MAX_REAL_NODES, real_node_name

if TYPE_CHECKING:
    from scaleset_operator.localcluster.cluster import LocalCluster

CNI_VERSION = os.environ.get("CNI_VERSION", "1.10.0")
CRANE_VERSION = os.environ.get("CRANE_VERSION", "0.22.1")

NODE_TYPE_LABEL = "real"
TAINT_KEY = "scaleset.dev/real-node"
SERVICE_IP = "10.96.0.1"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_BRIDGE = "sssvc0"
REGISTRY_PORT = 5000
_DEBIAN_PACKAGES = {"containerd": "containerd", "runc": "runc", "busybox": "busybox-static"}
_CGROUP_ROOT = "/sys/fs/cgroup"
_OWNER_FILE = "real-nodes.owner"
_RUN_ROOT = "/run/scaleset-operator"


class RealNodeError(RuntimeError):
    """Real nodes could not be set up, started or stopped."""


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    cni_dir: Path
    crane: Path
    containerd: Path
    shim: Path
    runc: Path


@dataclass(frozen=True)
class RealNode:
    index: int
    zone: str
    folder: Path
    # Sockets live apart from the folder: a unix socket path may not exceed 104 bytes.
    run_dir: Path

    @property
    def name(self) -> str:
        return real_node_name(self.index)

    @property
    def bridge(self) -> str:
        return f"ssbr{self.index}"

    @property
    def gateway(self) -> str:
        return f"10.250.{self.index}.1"

    @property
    def subnet(self) -> str:
        return f"10.250.{self.index}.0/24"

    @property
    def socket(self) -> Path:
        return self.run_dir / self.name / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        return f"scaleset-{self.name}"

    @property
    def kubelet_dir(self) -> Path:
        # The kubelet serves sockets under its root folder (pod resources, device plugins).
        return self.run_dir / self.name / "kubelet"


def nodebin_dir() -> Path:
    """The folder ``hack/testbin.sh node`` builds into (same naming rule as the script)."""
    return cache_root() / f"nodebin-k8s{K8S_VERSION}-cni{CNI_VERSION}-crane{CRANE_VERSION}"


def _lookup(name: str, cached: Path) -> Path | None:
    explicit = os.environ.get(env_var_for(name))
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise BinaryNotFoundError(f"{env_var_for(name)}={explicit} is not an executable file")
        return Path(explicit)
    candidates = []
    if assets := os.environ.get("KUBEBUILDER_ASSETS"):
        candidates.append(Path(assets) / name)
    candidates.append(cached)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    return Path(found) if found else None


def _cni_dir() -> Path | None:
    explicit = os.environ.get("CNI_BIN_DIR")
    for folder in (
        Path(explicit) if explicit else None,
        nodebin_dir() / "cni",
        Path("/opt/cni/bin"),
    ):
        if folder is not None and all((folder / p).is_file() for p in ("bridge", "host-local")):
            return folder
    return None


def install_packages() -> None:
    """Installs containerd, runc and busybox-static from Debian when missing (needs root)."""
    missing = [pkg for cmd, pkg in _DEBIAN_PACKAGES.items() if shutil.which(cmd) is None]
    if not missing:
        return
    root = repo_root()
    script = root / "hack" / "install-node-packages.sh" if root else None
    if script is None or not script.is_file():
        raise RealNodeError(
            f"real nodes need the Debian packages {', '.join(missing)}: install them "
            f"(apt-get install {' '.join(missing)})"
        )
    result = subprocess.run(["bash", str(script)], check=False)
    if result.returncode != 0:
        raise RealNodeError(f"{script} failed (exit code {result.returncode})")


def resolve_node_binaries(*, build_missing: bool = True) -> NodeBinaries:
    """kubelet, CNI plugins and crane (built from Go modules), containerd and runc (Debian)."""
    if os.geteuid() != 0:
        raise RealNodeError(
            "real nodes need root: the kubelet and containerd mount file systems, create "
            "network namespaces and bridges, and manage cgroups"
        )
    install_packages()
    cached = nodebin_dir()

    def find() -> tuple[Path | None, Path | None, Path | None]:
        return (
            _lookup("kubelet", cached / "kubelet"),
            _lookup("crane", cached / "crane"),
            _cni_dir(),
        )

    kubelet, crane, cni = find()
    if (kubelet is None or crane is None or cni is None) and build_missing:
        build_testbin(["node"])
        kubelet, crane, cni = find()
    if kubelet is None or crane is None or cni is None:
        raise BinaryNotFoundError(
            "kubelet, crane or the CNI plugins are missing: run `hack/testbin.sh node`, or set "
            "TEST_ASSET_KUBELET, TEST_ASSET_CRANE and CNI_BIN_DIR"
        )
    system = {
        name: shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        for name in ("containerd", "containerd-shim-runc-v2", "runc")
    }
    if any(p is None for p in system.values()):
        raise RealNodeError(f"not found after installing the Debian packages: {system}")
    return NodeBinaries(
        kubelet=kubelet,
        cni_dir=cni,
        crane=crane,
        containerd=Path(str(system["containerd"])),
        shim=Path(str(system["containerd-shim-runc-v2"])),
        runc=Path(str(system["runc"])),
    )


def pod_spec(image: str, *, probe_port: int = 8080) -> dict[str, Any]:
    """A pod spec for the real nodes running one of the test images: the node selector and
    toleration that let it there, and an HTTP readiness probe on the image's /ready."""
    return {
        "nodeSelector": {"type": NODE_TYPE_LABEL},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        # The test server stops at once on SIGTERM; 2 s bounds an image switch all the same.
        "terminationGracePeriodSeconds": 2,
        "containers": [
            {
                "name": "os",
                "image": image,
                "ports": [{"containerPort": probe_port, "name": "http"}],
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": probe_port},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                    "timeoutSeconds": 1,
                },
            }
        ],
    }


# -- network ------------------------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RealNodeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def link_exists(name: str) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


def _ensure_bridge(name: str, address: str) -> None:
    if not link_exists(name):
        _ip("link", "add", name, "type", "bridge")
    if address.split("/")[0] not in _ip("-o", "addr", "show", "dev", name).stdout:
        _ip("addr", "add", address, "dev", name)
    _ip("link", "set", name, "up")


def our_bridges() -> list[str]:
    out = _ip("-o", "link", "show", "type", "bridge", check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n == SERVICE_BRIDGE or n.startswith("ssbr")]


# -- configuration files ------------------------------------------------------------------------


def _containerd_config(node: RealNode, bins: NodeBinaries, registry: str) -> str:
    base = node.folder / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join(
        [
            "version = 2",
            f'root = "{base / "root"}"',
            f'state = "{base / "state"}"',
            'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", '
            '"io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", '
            '"io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]',
            "[grpc]",
            f'  address = "{node.socket}"',
            "[ttrpc]",
            f'  address = "{node.socket}.ttrpc"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{base / "opt"}"',
            f"[{cri}]",
            f'  sandbox_image = "{registry}/pause:local"',
            '  stream_server_address = "127.0.0.1"',
            '  stream_server_port = "0"',
            "  netns_mounts_under_state_dir = true",
            f"[{cri}.cni]",
            f'  bin_dir = "{bins.cni_dir}"',
            f'  conf_dir = "{node.folder / "cni"}"',
            f"[{cri}.containerd]",
            '  default_runtime_name = "runc"',
            '  snapshotter = "overlayfs"',
            f"[{cri}.containerd.runtimes.runc]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{cri}.containerd.runtimes.runc.options]",
            f'  BinaryName = "{node.folder / "runc-wrapper"}"',
            "  SystemdCgroup = false",
            f'[{cri}.registry.mirrors."{registry}"]',
            f'  endpoint = ["http://{registry}"]',
            "",
        ]
    )


def _runc_wrapper(runc: Path) -> str:
    # The kubelet asks for oom_score_adj -998 (sandboxes) and -997 (Guaranteed pods); root here
    # may not lower it, and runc would fail the container. Raise negative values to 0 in the
    # bundle's config.json (containerd writes it compact) before runc reads it.
    return (
        "#!/bin/sh\n"
        'bundle=""\n'
        'prev=""\n'
        'for arg in "$@"; do\n'
        '  if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then bundle="$arg"; fi\n'
        '  prev="$arg"\n'
        "done\n"
        'if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then\n'
        '  sed -i \'s/"oomScoreAdj":-[0-9]*/"oomScoreAdj":0/\' "$bundle/config.json"\n'
        "fi\n"
        f'exec {runc} "$@"\n'
    )


def _cni_config(node: RealNode) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": f"scaleset-{node.name}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": True,
                # Both need iptables, and pods need no way out of this machine.
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.subnet, "gateway": node.gateway}]],
                    # A route to the service network only (the API relay lives there): a pod
                    # has no default route, so nothing it sends can leave this machine.
                    "routes": [{"dst": SERVICE_CIDR}],
                    "dataDir": str(node.folder / "ipam"),
                },
            }
        ],
    }


def _kubelet_config(node: RealNode) -> dict[str, Any]:
    low = {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Bound to the node's own gateway address: unique per node, reachable from the API
        # server (logs, exec) and from nothing beyond this machine.
        "address": node.gateway,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": node.gateway,
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{node.cgroup_root}",
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        "evictionHard": low,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "volumePluginDir": str(node.folder / "volume-plugins"),
        "podLogsDir": str(node.folder / "pod-logs"),
        "shutdownGracePeriod": "0s",
        "nodeStatusUpdateFrequency": "4s",
        "nodeStatusReportFrequency": "1m",
    }


def _kubeconfig(cluster: LocalCluster, node: RealNode) -> dict[str, Any]:
    config = cluster.kubeconfig_for(node.name, f"system:node:{node.name}")
    return config


# -- cgroups ------------------------------------------------------------------------------------


def _controllers() -> list[Path]:
    root = Path(_CGROUP_ROOT)
    if (root / "cgroup.controllers").exists():
        return [root]  # cgroup v2: one hierarchy
    return [p for p in root.iterdir() if p.is_dir() and p.name != "unified" and not p.is_symlink()]


def _make_cgroup_root(name: str) -> None:
    for hierarchy in _controllers():
        folder = hierarchy / name
        folder.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            # A new v1 cpuset has no CPUs and no memory nodes; a task cannot join it so.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if not (folder / knob).read_text().strip():
                    (folder / knob).write_text((hierarchy / knob).read_text())


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in _controllers():
        for procs in (
            (hierarchy / name).rglob("cgroup.procs") if (hierarchy / name).exists() else ()
        ):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def _remove_cgroup_root(name: str) -> None:
    # Every hierarchy, the hybrid layout's unified one too: runc creates the cgroup there as well.
    root = Path(_CGROUP_ROOT)
    hierarchies = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
    for hierarchy in hierarchies:
        top = hierarchy / name
        if not top.exists():
            continue
        folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for folder in [*folders, top]:
            with contextlib.suppress(OSError):
                folder.rmdir()


# -- processes ----------------------------------------------------------------------------------


def _pids_with_arg(fragment: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if fragment.encode() in cmdline:
            found.append(int(entry))
    return found


def _kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _mounts_under(prefixes: Iterable[Path]) -> list[str]:
    wanted = [str(p) for p in prefixes]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == w or point.startswith(w + "/") for w in wanted):
            points.append(point)
    return points


def _unmount_all(prefixes: Iterable[Path]) -> None:
    prefixes = list(prefixes)
    for _ in range(5):
        points = _mounts_under(prefixes)
        if not points:
            return
        for point in sorted(points, key=lambda p: -len(p)):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


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
        _ensure_bridge(SERVICE_BRIDGE, f"{SERVICE_IP}/32")
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
        _ensure_bridge(node.bridge, f"{node.gateway}/24")
        _make_cgroup_root(node.cgroup_root)
        wrapper = node.folder / "runc-wrapper"
        wrapper.write_text(_runc_wrapper(bins.runc))
        wrapper.chmod(0o755)
        (node.folder / "containerd" / "config.toml").write_text(
            _containerd_config(node, bins, registry)
        )
        (node.folder / "cni" / "10-bridge.conflist").write_text(
            json.dumps(_cni_config(node), indent=2)
        )
        (node.folder / "kubelet.yaml").write_text(yaml.safe_dump(_kubelet_config(node)))
        kubeconfig = node.folder / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(_kubeconfig(self.cluster, node)))
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
        count = max(int(self.cluster.read_state().get("real_nodes", 0)), MAX_REAL_NODES)
        nodes = [self.node(i, 1) for i in range(count)]
        _stop_containers(nodes)
        processes.stop_all(containerds, timeout)
        processes.stop_all(others, timeout)
        _unmount_all([self.folder, self.run_dir])
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for node in nodes:
            _remove_cgroup_root(node.cgroup_root)
        for bridge in our_bridges():
            _ip("link", "del", bridge, check=False)
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
        pids = {p for n in nodes for p in _cgroup_pids(n.cgroup_root)}
        pids.update(p for n in nodes for p in _pids_with_arg(str(n.socket)))
        pids.discard(os.getpid())
        if not pids:
            return
        _kill(pids)
        time.sleep(0.1)


def stop_leftovers() -> None:
    """Clean-up after a cluster that died without ``down``: shims, containers, bridges."""
    nodes = [RealNode(i, "", Path("/nonexistent"), Path(_RUN_ROOT)) for i in range(MAX_REAL_NODES)]
    for node in nodes:
        _kill(_cgroup_pids(node.cgroup_root))
        _remove_cgroup_root(node.cgroup_root)
    # Shims of our containerds only: their -address names a socket under our run folder.
    _kill(_pids_with_arg(_RUN_ROOT))
    for bridge in our_bridges():
        _ip("link", "del", bridge, check=False)


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


def pods_on(cluster_api: Any, node: str) -> list[Obj]:
    items: list[Obj] = cluster_api.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")[
        "items"
    ]
    return items
