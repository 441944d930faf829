"""Who may talk to the dashboard: the checks every request passes, as pure functions.

The dashboard acts with the user's own Kubernetes credentials, so any web page the user
visits must be kept from using it. Three checks do that:
- Host must be the address the dashboard serves (a DNS-rebinding page sends its own name);
- API reads and writes carry the per-run token, which only the printed URL knows;
- writes must also come with an Origin equal to the dashboard's own (a cross-site form or
  fetch sends the attacker's origin, and a token in a header cannot be set cross-site
  without a CORS preflight, which the dashboard never answers).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

TOKEN_HEADER = "X-Dashboard-Token"
TOKEN_QUERY = "token"  # EventSource cannot send headers: the stream alone takes it here


class RefusedAddressError(ValueError):
    """An address the dashboard will not listen on."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_address(address: str, allow_remote: bool) -> None:
    """Loopback only, unless the user asks otherwise; then a concrete address, because the
    Host check needs to know the one name clients use."""
    if is_loopback(address):
        return
    if not allow_remote:
        raise RefusedAddressError(
            f"{address} is not a loopback address: anyone who can reach it could watch your "
            "scale sets with your credentials; pass --allow-remote if that is what you want"
        )
    try:
        unspecified = ipaddress.ip_address(address).is_unspecified
    except ValueError:
        unspecified = False
    if unspecified:
        raise RefusedAddressError(
            f"{address} listens on every interface; give the one address clients will use"
        )


def host_port(address: str, port: int) -> str:
    """The `Host` header (and origin authority) clients send for this address."""
    if ":" in address:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


@dataclass(frozen=True)
class Guard:
    """The checks of one dashboard run: where it is served and its token."""

    address: str
    port: int
    token: str

    @property
    def authority(self) -> str:
        return host_port(self.address, self.port)

    @property
    def origin(self) -> str:
        return f"http://{self.authority}"

    def url(self) -> str:
        # In the fragment: browsers never send it, so it stays out of logs and Referer.
        return f"{self.origin}/#token={self.token}"

    def refuse_host(self, headers: Mapping[str, str]) -> str | None:
        host = headers.get("Host", "")
        if host.lower() != self.authority.lower():
            return f"Host {host!r} is not {self.authority!r}"
        return None

    def _token_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def refuse_read(
        self, headers: Mapping[str, str], query: Mapping[str, str], *, stream: bool = False
    ) -> str | None:
        """Why a read (JSON or the event stream) is refused, or None to serve it."""
        refused = self.refuse_host(headers)
        if refused:
            return refused
        given = headers.get(TOKEN_HEADER)
        if given is None and stream:
            given = query.get(TOKEN_QUERY)
        if not self._token_matches(given):
            return "missing or wrong dashboard token"
        return None

    def refuse_action(self, headers: Mapping[str, str]) -> str | None:
        """Why a write is refused, or None to carry it out."""
        refused = self.refuse_host(headers)
        if refused:
            return refused
        origin = headers.get("Origin")
        if origin != self.origin:
            return f"Origin {origin!r} is not {self.origin!r}"
        if not self._token_matches(headers.get(TOKEN_HEADER)):
            return f"missing or wrong {TOKEN_HEADER} header"
        return None
