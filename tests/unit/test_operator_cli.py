"""`scaleset-operator` entry point: clear errors without a cluster, help everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scaleset_operator.cli.operator.main import main


def test_run_without_credentials_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    result = CliRunner().invoke(main, ["run", "--kubeconfig", str(missing)])
    assert result.exit_code == 1
    assert "no usable cluster credentials" in result.output
    assert "cluster up" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "path", [["run"], ["crds"], ["demo"], ["cluster"], ["cluster", "up"], ["cluster", "down"]]
)
def test_every_command_has_help(path: list[str]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
