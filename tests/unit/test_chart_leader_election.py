"""The chart's leader-election switch: several replicas only with an elected leader."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from scaleset_operator.localcluster import find_binary
from tests.e2e.support import REPO

CHART = REPO / "charts" / "scaleset-operator"


def _template(*sets: str) -> subprocess.CompletedProcess[str]:
    helm = find_binary("helm")
    if helm is None:
        pytest.fail("helm not found: run hack/testbin.sh (make setup builds it)")
    args = [str(helm), "template", "t", str(CHART), "--namespace", "ops"]
    for value in sets:
        args += ["--set", value]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def test_two_replicas_need_leader_election() -> None:
    result = _template("replicaCount=2")
    assert result.returncode != 0
    assert "needs leaderElection.enabled" in result.stderr


def test_leader_election_renders_flags_and_a_lease_role() -> None:
    result = _template("replicaCount=2", "leaderElection.enabled=true")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" in args
    assert "--lease-namespace=ops" in args
    role = next(d for d in docs if d["kind"] == "Role" and "leader" in d["metadata"]["name"])
    assert role["metadata"]["namespace"] == "ops"
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["scaleset-operator"],
            "verbs": ["get", "update"],
        }
    ]


def test_default_is_one_replica_recreated_without_election() -> None:
    result = _template()
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not [d for d in docs if "leader" in d["metadata"]["name"]]
