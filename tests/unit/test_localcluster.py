"""The local cluster's plumbing that needs no control plane: binaries, kwok config, processes."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest
import yaml

from scaleset_operator.localcluster import LocalCluster, binaries, kwokconfig, processes


def _fake_binary(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_env_var_names_follow_envtest() -> None:
    assert binaries.env_var_for("kube-apiserver") == "TEST_ASSET_KUBE_APISERVER"
    assert binaries.env_var_for("kube-controller-manager") == "TEST_ASSET_KUBE_CONTROLLER_MANAGER"
    assert binaries.env_var_for("etcd") == "TEST_ASSET_ETCD"


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALESET_OPERATOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.delenv("TEST_ASSET_KWOK", raising=False)
    on_path = _fake_binary(tmp_path / "path", "kwok")
    assert binaries.find_binary("kwok") == on_path
    cached = _fake_binary(binaries.testbin_dir(), "kwok")
    assert binaries.find_binary("kwok") == cached
    assets = _fake_binary(tmp_path / "assets", "kwok")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "assets"))
    assert binaries.find_binary("kwok") == assets
    explicit = _fake_binary(tmp_path / "explicit", "my-kwok")
    monkeypatch.setenv("TEST_ASSET_KWOK", str(explicit))
    assert binaries.find_binary("kwok") == explicit


def test_explicit_asset_that_is_missing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ASSET_ETCD", "/nonexistent/etcd")
    with pytest.raises(binaries.BinaryNotFoundError, match="TEST_ASSET_ETCD"):
        binaries.find_binary("etcd")


def test_missing_binary_without_build_names_the_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCALESET_OPERATOR_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.delenv("TEST_ASSET_KWOK", raising=False)
    with pytest.raises(binaries.BinaryNotFoundError, match=r"hack/testbin\.sh.*KUBEBUILDER_ASSETS"):
        binaries.resolve_binaries(["kwok"], build_missing=False)


def test_kwok_config_has_node_and_pod_stages() -> None:
    docs = [d for d in yaml.safe_load_all(kwokconfig.render()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "KwokConfiguration"
    stages = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Stage"}
    assert {"node-initialize", "node-heartbeat-with-lease"} <= set(stages)
    assert {
        "pod-container-restart",
        "pod-container-create",
        "pod-container-start",
        "pod-ready-sync",
        "pod-crash-loop",
        "pod-delete",
    } <= set(stages)
    for stage in stages.values():
        assert stage["spec"]["selector"]["matchExpressions"]


def test_pod_start_delay_is_configurable() -> None:
    docs = [d for d in yaml.safe_load_all(kwokconfig.render(pod_start_delay=2.5)) if d]
    stages = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Stage"}
    for name in ("pod-container-create", "pod-container-restart"):
        assert '$delay := "2500ms"' in kwokconfig.status_templates(stages[name])[0]
    assert stages[kwokconfig.START_STAGE]["spec"]["delay"]["durationMilliseconds"] == 2500


def test_every_pod_status_write_is_conditional_on_the_copy_it_was_planned_on() -> None:
    # When kwok falls behind it can play a stage from a copy older than the pod (see stages.yaml);
    # the copy's resourceVersion in the patch turns such a write into a conflict instead of
    # putting the pod back into an earlier state.
    docs = [d for d in yaml.safe_load_all(kwokconfig.render()) if d]
    pod_stages = [
        d for d in docs if d["kind"] == "Stage" and d["spec"]["resourceRef"]["kind"] == "Pod"
    ]
    writing = [d for d in pod_stages if not d["spec"]["next"].get("delete")]
    assert len(writing) >= 6
    for stage in writing:
        assert "statusTemplate" not in stage["spec"]["next"], stage["metadata"]["name"]
        for patch in stage["spec"]["next"]["patches"]:
            assert patch.get("root", "") == ""
            assert patch["template"].startswith(kwokconfig.RESOURCE_VERSION_GUARD + "status:\n"), (
                stage["metadata"]["name"]
            )


@pytest.mark.parametrize("die_with_parent", [False, True])
def test_stop_all_ends_the_whole_process_group(tmp_path: Path, die_with_parent: bool) -> None:
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    record = processes.start(
        "sleeper",
        [sys.executable, "-c", script],
        tmp_path / "s.log",
        die_with_parent=die_with_parent,
    )
    assert processes.is_running(record)
    # Wait until the grandchild exists, so the test covers the group, not only the leader.
    deadline = time.monotonic() + 10
    while len(processes.group_members(record)) < 2:
        assert time.monotonic() < deadline, "grandchild never started"
        time.sleep(0.05)
    assert processes.stop_all([record], timeout=5) == []
    assert not processes.is_running(record)
    assert processes.group_members(record) == []


def test_status_of_an_empty_directory(tmp_path: Path) -> None:
    st = LocalCluster(tmp_path).status()
    assert st.components == {}
    assert not st.running
    assert st.server is None
