"""`cluster down` with real nodes leaves nothing behind: no kubelet, containerd, shim, container,
registry or relay process, no bridge, no mount and no cgroup of ours.

Real nodes use machine-wide names (bridges, the service IP), so one cluster at a time runs them:
this test lends the slot from the session's cluster to a cluster of its own and gives it back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleset_operator.localcluster import LocalCluster, procfs
from scaleset_operator.localcluster.nodehost import cgroup_pids
from scaleset_operator.localcluster.realnodes import TAINT_KEY, RealNodes, our_bridges
from tests.conftest import REAL_NODES
from tests.e2e.support import eventually

pytestmark = pytest.mark.realnodes


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in procfs.pids_with_arg(text):
        stat = procfs.read_stat(pid)
        if stat is not None and stat.state != "Z":
            found.append(f"{pid}: {procfs.cmdline(pid)}")
    return found


def test_cluster_down_stops_every_process_and_removes_bridges(
    real_nodes: LocalCluster, tmp_path: Path
) -> None:
    RealNodes(real_nodes, lambda _: None).stop()
    directory = tmp_path / "cluster"
    try:
        other = LocalCluster(directory, nodes=1, real_nodes=1, die_with_parent=True)
        other.up()
        assert other.registry is not None
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "server", "namespace": "default"},
            "spec": {
                "nodeName": "real-node-0",
                "tolerations": [{"key": TAINT_KEY, "operator": "Exists"}],
                "terminationGracePeriodSeconds": 30,
                "containers": [{"name": "os", "image": f"{other.registry}/app:v1"}],
            },
        }
        other.api().create("/api/v1/namespaces/default/pods", pod)

        def running() -> bool:
            got = other.api().get("/api/v1/namespaces/default/pods/server")
            return (got.get("status") or {}).get("phase") == "Running"

        eventually(running, 60, what="a real container running")
        containers = cgroup_pids("scaleset-real-node-0")
        assert containers, "the pod's processes live in the node's own cgroup root"
        sockets = str(RealNodes(other, lambda _: None).run_dir)
        assert _processes_mentioning(str(directory))
        assert _processes_mentioning(sockets), "containerd shims name their socket"
        assert set(our_bridges()) >= {"ssbr0", "sssvc0"}

        other.down()

        assert _processes_mentioning(str(directory)) == []
        assert _processes_mentioning(sockets) == []
        assert not Path(sockets).exists()
        for pid in containers:
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        assert our_bridges() == []
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(directory) not in mounts
        assert not any(Path("/sys/fs/cgroup").glob("*/scaleset-real-node-*"))
    finally:
        real_nodes.add_real_nodes(REAL_NODES)
