"""End-to-end fixtures: the CRDs installed once, one operator process for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.e2e.support import OperatorProcess, World, install_crds


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def crds_installed(kubeconfig: Path, api_client: client.ApiClient) -> None:
    install_crds(kubeconfig, api_client)


@pytest.fixture(scope="session")
def operator(
    kubeconfig: Path, crds_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator-logs"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def world(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> Iterator[World]:
    if not operator.alive():
        operator.start()
    w = World(api_client, namespace)
    yield w
    w.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed end-to-end test reports the cluster's state and the operator's log about its
    namespace: CI keeps only the test output, and a timeout alone says nothing of the cause."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    world, operator = funcargs.get("world"), funcargs.get("operator")
    if isinstance(world, World):
        try:
            report.sections.append(("cluster state", world.describe()))
        except Exception as exc:  # diagnostics must not hide the failure
            report.sections.append(("cluster state", f"could not be read: {exc!r}"))
        if isinstance(operator, OperatorProcess):
            report.sections.append(("operator log", operator.log_lines(world.namespace)))


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
