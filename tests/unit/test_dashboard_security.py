"""Who may use the dashboard: its address, the Host and Origin checks and the token."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scaleset_operator.dashboard.command import dashboard
from scaleset_operator.dashboard.security import (
    TOKEN_HEADER,
    Guard,
    RefusedAddressError,
    check_address,
    new_token,
)

GUARD = Guard("127.0.0.1", 8090, "s3cret-token")
OWN = {"Host": "127.0.0.1:8090", "Origin": "http://127.0.0.1:8090", TOKEN_HEADER: "s3cret-token"}


def test_the_url_carries_the_token_in_the_fragment() -> None:
    assert GUARD.url() == "http://127.0.0.1:8090/#token=s3cret-token"
    assert Guard("::1", 9000, "t").origin == "http://[::1]:9000"


def test_tokens_are_random_and_long() -> None:
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(t) >= 32 for t in tokens)


def test_the_dashboards_own_page_may_act() -> None:
    assert GUARD.refuse_action(OWN) is None
    assert GUARD.refuse_read(OWN, {}) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Origin": "http://evil.example"}, "Origin"),
        ({"Origin": "http://127.0.0.1:8091"}, "Origin"),
        ({"Origin": "null"}, "Origin"),
        ({"Origin": None}, "Origin"),
        ({TOKEN_HEADER: None}, "X-Dashboard-Token"),
        ({TOKEN_HEADER: "s3cret-tokem"}, "X-Dashboard-Token"),
        ({"Host": "evil.example:8090"}, "Host"),  # DNS rebinding: the attacker's name
        ({"Host": "127.0.0.1:80"}, "Host"),
    ],
)
def test_actions_are_refused_without_the_token_or_from_another_origin(
    change: dict[str, str | None], reason: str
) -> None:
    headers = {k: v for k, v in (OWN | change).items() if v is not None}
    why = GUARD.refuse_action(headers)
    assert why is not None
    assert reason in why


def test_reads_need_the_token_and_the_stream_may_carry_it_in_the_query() -> None:
    bare = {"Host": "127.0.0.1:8090"}
    assert GUARD.refuse_read(bare, {}) is not None
    assert GUARD.refuse_read(bare, {"token": "s3cret-token"}) is not None
    assert GUARD.refuse_read(bare, {"token": "s3cret-token"}, stream=True) is None
    assert GUARD.refuse_read(bare, {"token": "nope"}, stream=True) is not None
    assert GUARD.refuse_read(
        {"Host": "rebound.example:8090"}, {"token": "s3cret-token"}, stream=True
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_served(address: str) -> None:
    check_address(address, allow_remote=False)


@pytest.mark.parametrize("address", ["0.0.0.0", "10.0.0.5", "::", "example.com"])
def test_other_addresses_need_allow_remote(address: str) -> None:
    with pytest.raises(RefusedAddressError, match="--allow-remote"):
        check_address(address, allow_remote=False)


def test_remote_serving_needs_the_address_clients_use() -> None:
    check_address("10.0.0.5", allow_remote=True)
    with pytest.raises(RefusedAddressError, match="every interface"):
        check_address("0.0.0.0", allow_remote=True)


def test_the_command_refuses_a_remote_address_before_touching_the_cluster() -> None:
    result = CliRunner().invoke(dashboard, ["--address", "0.0.0.0", "--kubeconfig", "/nowhere"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output
