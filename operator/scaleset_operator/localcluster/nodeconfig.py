"""A real node's identity and files: where its parts live, and the configuration of its
containerd, CNI network and kubelet (all written before they start)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaleset_operator.localcluster.pki import real_node_name

NODE_TYPE_LABEL = "real"
TAINT_KEY = "scaleset.dev/real-node"
SERVICE_IP = "10.96.0.1"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_BRIDGE = "sssvc0"


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


# -- configuration files ------------------------------------------------------------------------


def containerd_config(node: RealNode, bins: NodeBinaries, registry: str) -> str:
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


def runc_wrapper(runc: Path) -> str:
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


def cni_config(node: RealNode) -> dict[str, Any]:
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


def kubelet_config(node: RealNode) -> dict[str, Any]:
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
