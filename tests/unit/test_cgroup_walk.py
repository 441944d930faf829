"""Walking a real node's cgroups while containers exit: a folder that vanishes mid-walk is
passed over, not an error that stops the clean-up (seen once as FileNotFoundError from rglob)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from scaleset_operator.localcluster import nodehost


def test_pids_are_gathered_across_the_tree_and_a_vanishing_folder_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = tmp_path / "memory"
    pod = memory / "node-0" / "kubepods" / "pod-a"
    (pod / "c1").mkdir(parents=True)
    (pod / "c2").mkdir()
    (memory / "node-0" / "cgroup.procs").write_text("")
    (pod / "c1" / "cgroup.procs").write_text("101\n102\n")
    (pod / "c2" / "cgroup.procs").write_text("103\n")
    monkeypatch.setattr(nodehost, "controllers", lambda: [memory])
    assert nodehost.cgroup_pids("node-0") == {101, 102, 103}
    assert nodehost.cgroup_pids("node-9") == set()

    real_scandir = os.scandir

    def vanishing(path: Any) -> Any:
        # c2's container exits between the walk listing pod-a and entering c2.
        if Path(path).name == "c2":
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", vanishing)
    assert nodehost.cgroup_pids("node-0") == {101, 102}
