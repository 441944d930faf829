"""Starts that cannot succeed end before kopf starts, with one line that says what to fix."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from scaleset_operator.controller.preflight import (
    CrdsMissingError,
    Listener,
    StartupError,
    check_api,
    check_ports,
)
from scaleset_operator.k8s.errors import ForbiddenError, NotFoundError, UnavailableError

DISCOVERY = "/apis/scaleset.dev/v1alpha1"
SERVED = {
    "resources": [
        {"name": "scalesets"},
        {"name": "scalesets/status"},
        {"name": "imageversions"},
        {"name": "upgradewaves"},
        {"name": "upgradewaves/status"},
    ]
}


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_a_taken_metrics_port_names_the_option_to_change(held_port: int) -> None:
    with pytest.raises(StartupError) as failed:
        check_ports([Listener(held_port, "metrics", "--metrics-port")])

    message = str(failed.value)
    assert message.startswith(f"port {held_port} (metrics) is in use: ")
    assert "pass --metrics-port" in message
    assert "\n" not in message


def test_a_taken_health_port_is_found_after_a_free_metrics_port(held_port: int) -> None:
    with pytest.raises(StartupError, match=rf"port {held_port} \(health\) is in use"):
        check_ports(
            [
                Listener(0, "metrics", "--metrics-port"),
                Listener(held_port, "health", "--health-port"),
            ]
        )


def test_two_listeners_on_one_port() -> None:
    with pytest.raises(StartupError, match="--metrics-port and --health-port are both 1"):
        check_ports(
            [Listener(1, "metrics", "--metrics-port"), Listener(1, "health", "--health-port")]
        )


def test_free_and_disabled_ports_pass() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = int(s.getsockname()[1])
    check_ports(
        [Listener(free, "metrics", "--metrics-port"), Listener(0, "health", "--health-port")]
    )


class FakeApi:
    """GET answers by path; an exception instance is raised instead of answered."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.paths: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.paths.append(path)
        answer = self.answers.get(path, {"items": []})
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def test_missing_crds_say_how_to_install_them() -> None:
    api = FakeApi({DISCOVERY: NotFoundError("404 Not Found")})

    with pytest.raises(CrdsMissingError) as failed:
        check_api(api, (), crd_grace=0)  # type: ignore[arg-type]

    message = str(failed.value)
    assert (
        "serves no scalesets.scaleset.dev, imageversions.scaleset.dev, upgradewaves.scaleset.dev"
        in message
    )
    assert "scaleset-operator crds | kubectl apply --server-side -f -" in message


def test_one_missing_crd_is_named_alone() -> None:
    api = FakeApi({DISCOVERY: {"resources": [{"name": "scalesets"}, {"name": "upgradewaves"}]}})

    with pytest.raises(CrdsMissingError, match=r"serves no imageversions\.scaleset\.dev;"):
        check_api(api, (), crd_grace=0)  # type: ignore[arg-type]


def test_no_permission_to_list_scalesets_cluster_wide() -> None:
    forbidden = ForbiddenError('403 Forbidden: User "x" cannot list resource "scalesets"')
    api = FakeApi({DISCOVERY: SERVED, f"{DISCOVERY}/scalesets": forbidden})

    with pytest.raises(StartupError) as failed:
        check_api(api, ())  # type: ignore[arg-type]

    assert str(failed.value).startswith(
        'not allowed to list scalesets.scaleset.dev in all namespaces: 403 Forbidden: User "x"'
    )


def test_watched_namespaces_are_checked_one_by_one() -> None:
    forbidden = ForbiddenError("403 Forbidden")
    api = FakeApi({DISCOVERY: SERVED, "/api/v1/namespaces/b/pods": forbidden})

    with pytest.raises(StartupError, match='not allowed to list pods in namespace "b"'):
        check_api(api, ("a", "b"))  # type: ignore[arg-type]

    assert f"{DISCOVERY}/namespaces/a/scalesets" in api.paths
    assert f"{DISCOVERY}/scalesets" not in api.paths


def test_everything_allowed_passes() -> None:
    api = FakeApi({DISCOVERY: SERVED})
    check_api(api, ())  # type: ignore[arg-type]
    assert "/api/v1/pods" in api.paths


def test_an_unreachable_api_server_is_given_up_on() -> None:
    api = FakeApi({DISCOVERY: UnavailableError("connection refused")})

    with pytest.raises(StartupError, match="cannot reach the API server: connection refused"):
        check_api(api, (), wait=0)  # type: ignore[arg-type]
