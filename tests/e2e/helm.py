"""Helm as the tests run it: the chart of this repository, a private Helm home, our kubeconfig."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from scaleset_operator.localcluster import find_binary
from tests.e2e.support import REPO

CHART = REPO / "charts" / "scaleset-operator"


class Helm:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        binary = find_binary("helm")
        assert binary is not None, "helm not found (hack/testbin.sh builds it)"
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = {
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "PATH": "/usr/bin:/bin",
        }
        self.home = home

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=180,
        )
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
        return result

    def values_file(self, name: str, values: dict[str, Any]) -> str:
        path = self.home / f"{name}.yaml"
        path.write_text(yaml.safe_dump(values))
        return str(path)

    def template(self, *args: str) -> list[dict[str, Any]]:
        out = self("template", "rel", str(CHART), "--namespace", "ops", *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]
