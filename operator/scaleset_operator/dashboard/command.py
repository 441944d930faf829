"""`kubectl scaleset dashboard`: serve the live dashboard until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import webbrowser
from concurrent.futures import ThreadPoolExecutor

import click

from scaleset_operator.dashboard.security import (
    Guard,
    RefusedAddressError,
    check_address,
    new_token,
)
from scaleset_operator.dashboard.server import Settings, bind, make_app, serve
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.userapi import (
    Connection,
    NoConfigError,
    cluster_options,
    user_api_client,
)

DEFAULT_PORT = 8090
# Threads for the requests' blocking calls (node zones, actions) and aiohttp's name lookups;
# with the three watches they stay within the API client's connection pool.
REQUEST_THREADS = 16


def _cluster(chosen: Connection) -> KubeClient:
    """The cluster the way every plugin command finds it (`k8s.userapi.user_api_client`)."""
    try:
        api, _files = user_api_client(chosen, retries=2)
    except NoConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return KubeClient(api)


async def _run(
    kube: KubeClient, settings: Settings, sock: socket.socket, open_browser: bool
) -> None:
    guard = settings.guard
    # Bounded so that the watches and these threads never need more connections than the
    # client's pool keeps (k8s.client.POOL_SIZE).
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="dashboard-request")
    )
    ready = asyncio.Event()
    server = asyncio.create_task(serve(make_app(kube, settings), sock, ready))
    await ready.wait()
    click.echo(f"Dashboard: {guard.url()}")
    click.echo("Keep this URL to yourself: it carries the access token. Ctrl-C stops.", err=True)
    if open_browser:
        webbrowser.open(guard.url())
    await server


@click.command("dashboard")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to serve on; 0 picks a free one.",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve on; a loopback address unless --allow-remote.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --address. The page and its token then travel unencrypted "
    "over the network; prefer an SSH tunnel to a loopback address.",
)
@click.option(
    "--prometheus",
    metavar="URL",
    help="Prometheus to draw upgrade graphs from (the Grafana dashboard's queries), such "
    "as http://127.0.0.1:9090.",
)
@cluster_options(
    namespace_help="Show the scale sets of this namespace only (default: all namespaces)."
)
@click.option(
    "--open/--no-open",
    "open_browser",
    default=False,
    show_default=True,
    help="Open the page in the default browser.",
)
def dashboard(
    port: int,
    address: str,
    allow_remote: bool,
    prometheus: str | None,
    open_browser: bool,
) -> None:
    """Serve a live web dashboard of scale sets and their OS upgrades.

    The page lists every scale set and shows one live: its instances by zone,
    coloured by upgrade state, the batch in flight, progress, a timeline of the
    run, recent history and the image catalog with quarantined versions. It can
    start or cancel a rolling upgrade and clear a quarantined version, with
    your own Kubernetes permissions. The printed URL carries a token that
    the page needs; other web pages cannot use the dashboard.

    \b
    Examples:
      kubectl scaleset dashboard
      kubectl scaleset dashboard --port 0 --open
      kubectl scaleset dashboard --prometheus http://127.0.0.1:9090 -n shop
    """
    try:
        check_address(address, allow_remote)
    except RefusedAddressError as exc:
        raise click.UsageError(str(exc)) from None
    # -n, --kubeconfig and --context, given before or after `dashboard` (`cluster_options`).
    chosen = click.get_current_context().ensure_object(Connection)
    kube = _cluster(chosen)
    try:
        sock = bind(address, port)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {address}:{port}: {exc}") from None
    settings = Settings(
        guard=Guard(address, int(sock.getsockname()[1]), new_token()),
        namespace=chosen.namespace,
        prometheus=prometheus.rstrip("/") if prometheus else None,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(kube, settings, sock, open_browser))
