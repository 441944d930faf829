"""`scaleset-operator run`: configure kopf and the controller from the command line, check
that the operator can start, then run it until interrupted."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import click

_LOG_FORMATS = ("text", "json")


@click.command("run")
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (in a pod: none).")
@click.option("--context", default=None, help="Kubeconfig context.")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    envvar="SCALESET_OPERATOR_NAMESPACES",
    help="Watch only this namespace (repeatable); default: all namespaces.",
)
@click.option(
    "--upgrade-delay",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    envvar="SCALESET_OPERATOR_UPGRADE_DELAY",
    help="Seconds between a newer image version appearing and the platform upgrade starting.",
)
@click.option(
    "--status-interval",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    envvar="SCALESET_OPERATOR_STATUS_INTERVAL",
    help="Least seconds between two status writes of a scale set that only record progress "
    "(readyInstances, the Ready condition, progress counters, instances upgraded); batches "
    "starting or ending, failures and rollbacks are always written at once.",
)
@click.option(
    "--gather-while-settling",
    type=click.FloatRange(min=0, max=5),
    default=1.0,
    show_default=True,
    envvar="SCALESET_OPERATOR_GATHER_WHILE_SETTLING",
    help="Seconds a scale set's next pass waits for more pod events while its batch has "
    "several instances still to settle (each of them settling only moves progress); fewer "
    "passes, less CPU. Once every member the batch waits for is seen Ready on its new image, "
    "the pass that closes the batch runs at once. 0 turns it off.",
)
@click.option(
    "--fail-fast/--no-fail-fast",
    default=True,
    show_default=True,
    envvar="SCALESET_OPERATOR_FAIL_FAST",
    help="Fail an instance at once on ImagePullBackOff/CrashLoopBackOff (or a new container "
    "that has exited twice) instead of waiting out the health timeout.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    envvar="SCALESET_OPERATOR_METRICS_PORT",
    help="Port of the Prometheus /metrics endpoint (0 disables it).",
)
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    default=8081,
    show_default=True,
    envvar="SCALESET_OPERATOR_HEALTH_PORT",
    help="Port of the liveness endpoint /healthz (0 disables it).",
)
@click.option(
    "--log-format",
    type=click.Choice(_LOG_FORMATS),
    default="text",
    show_default=True,
    envvar="SCALESET_OPERATOR_LOG_FORMAT",
)
@click.option("--verbose", is_flag=True, help="Log every reconcile pass.")
@click.option(
    "--leader-elect/--no-leader-elect",
    default=False,
    show_default=True,
    envvar="SCALESET_OPERATOR_LEADER_ELECT",
    help="Run several replicas safely: only the holder of a coordination.k8s.io Lease acts; "
    "the others take over when it stops renewing.",
)
@click.option(
    "--lease-namespace",
    default=lambda: os.environ.get("POD_NAMESPACE", "default"),
    show_default="$POD_NAMESPACE or default",
    envvar="SCALESET_OPERATOR_LEASE_NAMESPACE",
    help="Namespace of the leader-election Lease.",
)
@click.option(
    "--lease-duration",
    type=click.FloatRange(min=1),
    default=15.0,
    show_default=True,
    envvar="SCALESET_OPERATOR_LEASE_DURATION",
    help="Seconds a leader's lease stays valid without renewal (takeover time after a crash).",
)
@click.option(
    "--notify-url",
    "notify_urls",
    multiple=True,
    help="Send CloudEvents about OS upgrades (started, completed, faulted, cancelled, "
    "instance rolled back, version quarantined) to this webhook (repeatable).",
)
@click.option(
    "--notify-secret-file",
    "notify_secret_files",
    multiple=True,
    help="File holding the HMAC-SHA256 key that signs the webhook requests "
    "(header X-Scaleset-Signature: sha256=<hex>); one per --notify-url in the same order "
    "(an empty path: unsigned), or one for all. Without it the key comes from "
    "$SCALESET_OPERATOR_NOTIFY_SECRET, if set.",
)
@click.option(
    "--notify-backoff-cap",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Longest wait, in seconds, between two tries of a failing webhook.",
)
def run(
    kubeconfig: str | None,
    context: str | None,
    namespaces: tuple[str, ...],
    upgrade_delay: float,
    status_interval: float,
    gather_while_settling: float,
    fail_fast: bool,
    metrics_port: int,
    health_port: int,
    log_format: str,
    verbose: bool,
    leader_elect: bool,
    lease_namespace: str,
    lease_duration: float,
    notify_urls: tuple[str, ...],
    notify_secret_files: tuple[str, ...],
    notify_backoff_cap: float,
) -> None:
    """Run the operator until interrupted.

    \b
    Examples:
      scaleset-operator run                      # all namespaces, kubeconfig from $KUBECONFIG
      scaleset-operator run -n team-a -n team-b  # only these namespaces
      scaleset-operator run --upgrade-delay 0 --log-format json
    """
    import kopf

    from scaleset_operator.controller.config import CONFIG
    from scaleset_operator.notifications.sinks import SinkConfigError, sinks_from
    from scaleset_operator.planner.observed import PlannerSettings

    try:
        CONFIG.notify_sinks = tuple(sinks_from(notify_urls, notify_secret_files))
    except SinkConfigError as exc:
        raise click.ClickException(str(exc)) from None
    CONFIG.notify_backoff_cap = notify_backoff_cap
    _check_credentials(kubeconfig, context)
    _check_start(kubeconfig, context, namespaces, metrics_port, health_port)
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
    CONFIG.kubeconfig = kubeconfig
    CONFIG.context = context
    CONFIG.namespaces = namespaces
    CONFIG.metrics_port = metrics_port or None
    CONFIG.status_interval = status_interval
    CONFIG.gather_while_settling = gather_while_settling
    CONFIG.leader_elect = leader_elect
    CONFIG.lease_namespace = lease_namespace
    CONFIG.lease_seconds = lease_duration
    CONFIG.planner = PlannerSettings(
        automatic_upgrade_delay=timedelta(seconds=upgrade_delay), fail_fast=fail_fast
    )
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    if not verbose:
        # kopf reports every watch event it hands to us; at fleet scale that is noise.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    import scaleset_operator.controller  # noqa: F401  (registers the handlers)
    from scaleset_operator.controller.gc_tuning import tune_for_operator
    from scaleset_operator.controller.malloc_arenas import limit_malloc_arenas

    tune_for_operator()
    limit_malloc_arenas()

    # Several replicas coordinate through the Lease (--leader-elect), so kopf's own peering
    # stays off.
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
    )


def _check_credentials(kubeconfig: str | None, context: str | None) -> None:
    """Fail at once, in one line, when there is no cluster to talk to: kopf would otherwise
    print a traceback and keep retrying its start-up."""
    from scaleset_operator.k8s.client import make_api_client
    from scaleset_operator.k8s.errors import CredentialsError

    try:
        make_api_client(kubeconfig, context)
    except CredentialsError as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise click.ClickException(
            f"no usable cluster credentials (kubeconfig {where}): {exc}. "
            "Set KUBECONFIG or --kubeconfig, or run inside a pod; "
            "`scaleset-operator cluster up` starts a local cluster."
        ) from exc


def _check_start(
    kubeconfig: str | None,
    context: str | None,
    namespaces: tuple[str, ...],
    metrics_port: int,
    health_port: int,
) -> None:
    """Ports, CRDs and permissions, before kopf starts: kopf would retry each of these
    failures forever in a process that looks alive."""
    from scaleset_operator.controller.preflight import (
        Listener,
        StartupError,
        check_api,
        check_ports,
    )
    from scaleset_operator.k8s.client import KubeClient, make_api_client

    try:
        check_ports(
            [
                Listener(metrics_port, "metrics", "--metrics-port"),
                Listener(health_port, "health", "--health-port"),
            ]
        )
        check_api(KubeClient(make_api_client(kubeconfig, context)), namespaces)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
