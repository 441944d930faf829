"""The dashboard finds its cluster as every plugin command does: the shared -n, --kubeconfig
and --context options (given before or after `dashboard`) and the shared resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from kubernetes import config

from scaleset_operator.cli.plugin.main import cli
from scaleset_operator.dashboard import command
from scaleset_operator.dashboard.command import REQUEST_THREADS, dashboard
from scaleset_operator.dashboard.server import sources
from scaleset_operator.k8s.client import POOL_SIZE
from scaleset_operator.k8s.userapi import Connection
from tests.unit.test_kubeconfig_precedence import write_kubeconfig


@pytest.fixture
def chosen(monkeypatch: pytest.MonkeyPatch) -> list[Connection]:
    """What the command hands to its cluster resolution; it stops there."""
    seen: list[Connection] = []

    def cluster(options: Connection) -> Any:
        seen.append(options)
        raise click.ClickException("stopped before serving")

    monkeypatch.setattr(command, "_cluster", cluster)
    return seen


def test_the_dashboard_takes_the_options_after_its_name(chosen: list[Connection]) -> None:
    args = ["dashboard", "--kubeconfig", "/k", "--context", "c", "-n", "shop"]
    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 1, result.output
    assert (chosen[0].kubeconfig, chosen[0].context, chosen[0].namespace) == ("/k", "c", "shop")


def test_the_dashboard_takes_the_options_before_its_name(chosen: list[Connection]) -> None:
    args = ["--kubeconfig", "/k", "--context", "c", "-n", "shop", "dashboard"]
    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 1, result.output
    assert (chosen[0].kubeconfig, chosen[0].context, chosen[0].namespace) == ("/k", "c", "shop")


def test_the_later_option_wins(chosen: list[Connection]) -> None:
    args = ["--kubeconfig", "/group", "-n", "a", "dashboard", "--kubeconfig", "/command"]
    CliRunner().invoke(cli, args)

    assert chosen[0].kubeconfig == "/command"
    assert chosen[0].namespace == "a"


def test_the_dashboard_on_its_own_takes_them_too(chosen: list[Connection]) -> None:
    CliRunner().invoke(dashboard, ["--kubeconfig", "/k", "-n", "shop"])

    assert (chosen[0].kubeconfig, chosen[0].context, chosen[0].namespace) == ("/k", None, "shop")


def test_without_options_the_dashboard_shows_every_namespace(
    chosen: list[Connection],
) -> None:
    CliRunner().invoke(cli, ["dashboard"])

    assert chosen[0] == Connection()


def test_an_explicit_kubeconfig_wins_over_the_pods_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def in_cluster(**_: Any) -> None:
        raise AssertionError("the pod's service account was loaded")

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setattr(config, "load_incluster_config", in_cluster)
    path = write_kubeconfig(tmp_path / "mine.yaml", "https://mine.invalid:6443")

    cluster = command._cluster(Connection(kubeconfig=str(path)))

    assert cluster.api.configuration.host == "https://mine.invalid:6443"
    assert cluster.api.configuration.retries == 2


def test_no_usable_kubeconfig_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = tmp_path / "missing.yaml"

    result = CliRunner().invoke(dashboard, ["--kubeconfig", str(missing)])

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: no usable kubeconfig ({missing}): ")
    assert result.output.count("\n") == 1


def test_the_watches_and_request_threads_fit_the_connection_pool() -> None:
    assert len(sources(None)) + REQUEST_THREADS <= POOL_SIZE
