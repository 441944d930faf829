"""The main job as a user runs it: `scaleset-operator demo` from a cluster folder that does not
exist yet (the first run on a machine), on simulated nodes and on real nodes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaleset_operator.localcluster import LocalCluster
from scaleset_operator.localcluster.realnodes import RealNodes, our_bridges
from tests.conftest import REAL_NODES
from tests.e2e.support import REPO


def _demo(directory: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    env.pop("KUBECONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "operator"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "scaleset_operator", "demo", "--dir", str(directory), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_demo_from_a_cold_cluster_folder(tmp_path: Path) -> None:
    directory = tmp_path / "fresh" / ".cluster"
    result = _demo(directory, "--capacity", "5", timeout=400)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "upgrade Completed: all instances on 1.1.0" in out
    assert "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade" in out
    assert "stopped the operator and the local cluster" in out
    assert not LocalCluster(directory).status().running


@pytest.mark.realnodes
def test_demo_on_real_nodes_with_the_operator_from_its_chart(
    real_nodes: LocalCluster, tmp_path: Path
) -> None:
    # Real nodes use machine-wide names: lend the session's slot to the demo's cluster.
    RealNodes(real_nodes, lambda _: None).stop()
    try:
        result = _demo(tmp_path / ".cluster", "--real-nodes", "--capacity", "4", timeout=600)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-4000:]
        assert "is Ready on a real node" in out
        assert "upgrade Completed: all instances on 1.1.0" in out
        assert "same pods, same IPs" in out
        assert "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade" in out
        assert "ErrImagePull" in out or "ImagePullBackOff" in out
        assert our_bridges() == []
    finally:
        # A demo that died half-way leaves its cluster, which holds the real-node slot.
        LocalCluster(tmp_path / ".cluster").down()
        real_nodes.add_real_nodes(REAL_NODES)
