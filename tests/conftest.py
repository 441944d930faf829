"""Session-wide fixtures: one local control plane per test session, fresh namespaces per test.

Set ``SCALESET_TEST_KUBECONFIG`` to the kubeconfig of a cluster started with ``cluster up`` to
reuse it instead (it is then neither started nor stopped by the tests).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from scaleset_operator.localcluster import LocalCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    existing = os.environ.get("SCALESET_TEST_KUBECONFIG")
    if existing:
        directory = Path(existing).resolve().parent
        if not (directory / "state.json").is_file():
            raise pytest.UsageError(
                f"SCALESET_TEST_KUBECONFIG={existing} is not in a folder made by `cluster up`"
            )
        reused = LocalCluster(directory)
        if not reused.is_up():
            raise pytest.UsageError(f"the cluster in {directory} is not running")
        yield reused
        return
    # Components die with the test process even if it is killed before teardown.
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), die_with_parent=True)
    local.up()
    try:
        yield local
    finally:
        local.down()


REAL_NODES = 2


@pytest.fixture(scope="session")
def real_nodes(cluster: LocalCluster) -> LocalCluster:
    """The session's cluster with real nodes (kubelet + containerd) and their image registry,
    added the first time a test asks for them."""
    if cluster.real_node_count() < REAL_NODES or cluster.registry is None:
        cluster.add_real_nodes(REAL_NODES)
    return cluster


@pytest.fixture(scope="session")
def kubeconfig(cluster: LocalCluster) -> Path:
    return cluster.kubeconfig_path


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()  # type: ignore[attr-defined]  # present at runtime, missing from the stubs


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (in the background) afterwards."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{stem}-{secrets.token_hex(3)}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")
