"""Which credentials every program uses (`k8s.client.load_api_client`), in kubectl's order:
an explicit --kubeconfig or --context, else $KUBECONFIG or ~/.kube/config when one exists, and
only without any of them, inside a pod, the pod's service account."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from scaleset_operator.k8s.client import POOL_SIZE, load_api_client, make_api_client
from scaleset_operator.k8s.errors import CredentialsError
from scaleset_operator.k8s.userapi import Connection, NoConfigError, connect, user_api_client

IN_CLUSTER_HOST = "https://in-cluster.invalid:443"


def write_kubeconfig(path: Path, server: str, namespace: str = "shop") -> Path:
    path.write_text(
        f"""
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{server}"}}
- name: other
  cluster: {{server: "https://other.invalid:6443"}}
users:
- name: u
  user: {{token: t0ken}}
contexts:
- name: main
  context: {{cluster: c, user: u, namespace: {namespace}}}
- name: second
  context: {{cluster: other, user: u}}
current-context: main
"""
    )
    return path


@pytest.fixture
def in_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """A pod: KUBERNETES_SERVICE_HOST set, a service account to load, no KUBECONFIG and an
    empty home. Returns the calls to the in-cluster loader."""
    calls: list[str] = []

    def load_incluster_config(client_configuration: Any = None, **_: Any) -> None:
        calls.append("in-cluster")
        client_configuration.host = IN_CLUSTER_HOST

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(config, "load_incluster_config", load_incluster_config)
    return calls


@pytest.fixture
def outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A workstation: no pod variables, no KUBECONFIG, an empty home."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def host(api: client.ApiClient) -> str:
    return str(api.configuration.host)


def test_an_explicit_kubeconfig_wins_over_the_pods_service_account(
    in_pod: list[str], tmp_path: Path
) -> None:
    path = write_kubeconfig(tmp_path / "flag.yaml", "https://flag.invalid:6443")

    api, source = load_api_client(str(path))

    assert host(api) == "https://flag.invalid:6443"
    assert source == str(path)
    assert in_pod == []


def test_an_explicit_kubeconfig_that_is_missing_fails_rather_than_use_the_pod(
    in_pod: list[str], tmp_path: Path
) -> None:
    with pytest.raises(CredentialsError):
        make_api_client(str(tmp_path / "missing.yaml"))
    assert in_pod == []


def test_an_explicit_context_without_a_kubeconfig_fails_rather_than_use_the_pod(
    in_pod: list[str],
) -> None:
    with pytest.raises(CredentialsError):
        make_api_client(None, "main")
    assert in_pod == []


def test_kubeconfig_in_the_environment_wins_over_the_pod(
    in_pod: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_kubeconfig(tmp_path / "env.yaml", "https://env.invalid:6443")
    monkeypatch.setenv("KUBECONFIG", str(path))

    assert host(make_api_client()) == "https://env.invalid:6443"
    assert in_pod == []


def test_the_home_kubeconfig_wins_over_the_pod(in_pod: list[str], tmp_path: Path) -> None:
    home = tmp_path / "home" / ".kube"
    home.mkdir(parents=True)
    write_kubeconfig(home / "config", "https://home.invalid:6443")

    assert host(make_api_client()) == "https://home.invalid:6443"
    assert in_pod == []


def test_the_pods_service_account_without_any_kubeconfig(in_pod: list[str]) -> None:
    api, source = load_api_client()

    assert host(api) == IN_CLUSTER_HOST
    assert source is None
    assert in_pod == ["in-cluster"]


def test_the_flag_wins_over_the_environment(
    outside: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = write_kubeconfig(tmp_path / "env.yaml", "https://env.invalid:6443")
    flag = write_kubeconfig(tmp_path / "flag.yaml", "https://flag.invalid:6443")
    monkeypatch.setenv("KUBECONFIG", str(env))

    assert host(make_api_client(str(flag))) == "https://flag.invalid:6443"
    assert host(make_api_client(None, "second")) == "https://other.invalid:6443"


def test_kubeconfig_is_read_when_called_and_its_files_are_merged(
    outside: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_kubeconfig(tmp_path / "first.yaml", "https://first.invalid:6443")
    missing = tmp_path / "missing.yaml"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(missing), str(first)]))

    api, source = load_api_client()

    assert host(api) == "https://first.invalid:6443"
    assert source == os.pathsep.join([str(missing), str(first)])


def test_no_kubeconfig_outside_a_pod_is_a_credentials_error(outside: None) -> None:
    with pytest.raises(CredentialsError):
        make_api_client()


def test_the_pool_is_sized_and_retries_are_the_callers(outside: None, tmp_path: Path) -> None:
    path = str(write_kubeconfig(tmp_path / "k.yaml", "https://k.invalid:6443"))

    operator_api = make_api_client(path)
    plugin_api, _ = user_api_client(Connection(path))

    assert operator_api.configuration.connection_pool_maxsize == POOL_SIZE
    assert plugin_api.configuration.connection_pool_maxsize == POOL_SIZE
    assert operator_api.configuration.retries == 2
    assert plugin_api.configuration.retries == 1


def test_the_plugin_uses_the_flag_and_its_contexts_namespace_inside_a_pod(
    in_pod: list[str], tmp_path: Path
) -> None:
    path = write_kubeconfig(tmp_path / "flag.yaml", "https://flag.invalid:6443", "shop")

    api = connect(Connection(str(path)))

    assert api.namespace == "shop"
    assert in_pod == []
    assert connect(Connection(str(path), "second")).namespace == "default"
    assert connect(Connection(str(path), namespace="web")).namespace == "web"


def test_the_plugin_with_the_service_account_uses_the_pods_namespace(in_pod: list[str]) -> None:
    api = connect(Connection())

    assert in_pod == ["in-cluster"]
    assert api.namespace  # the pod's namespace file, else "default"


def test_the_plugins_message_names_the_files_it_tried(outside: None, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"

    with pytest.raises(NoConfigError, match=f"no usable kubeconfig \\({missing}\\)"):
        connect(Connection(str(missing)))
