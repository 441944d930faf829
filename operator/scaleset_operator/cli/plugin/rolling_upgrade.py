"""`kubectl scaleset rolling-upgrade start|cancel|rollback|get-latest|watch` (Azure: `az vmss
rolling-upgrade ...`; rollback is ours). Start, cancel and rollback are requests the operator
carries out; this module writes them and reports what the status shows afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from scaleset_operator.cli.plugin.context import (
    CommandFailed,
    LoadedScaleSet,
    NotFound,
    common_options,
    load_scaleset,
    settings,
)
from scaleset_operator.cli.plugin.requests import (
    POLL_SECONDS,
    handled,
    new_request,
    not_observed,
    operator_said,
    submit,
    wait_for,
)
from scaleset_operator.cli.plugin.watch import follow, watch
from scaleset_operator.cli.views.azure import latest_info
from scaleset_operator.cli.views.output import emit
from scaleset_operator.cli.views.tables import error_text, latest_table, progress_text, waiting_text
from scaleset_operator.models.instance import (
    ANNOTATION_CANCEL,
    ANNOTATION_ROLLBACK,
    ANNOTATION_START,
    Request,
)
from scaleset_operator.models.status import RunningStatusCode
from scaleset_operator.planner.timefmt import parse_stamp, stamp
from scaleset_operator.polling import PollTimeoutError, poll

_WAIT_HELP = "Seconds to wait for the operator to act on the request."
_REASON_WAIT = 5.0


@click.group("rolling-upgrade")
def rolling_upgrade() -> None:
    """Start, cancel, roll back, inspect and follow rolling OS image upgrades.

    \b
    Examples:
      kubectl scaleset rolling-upgrade start web
      kubectl scaleset rolling-upgrade get-latest web -o json
      kubectl scaleset rolling-upgrade watch web
      kubectl scaleset rolling-upgrade cancel web
      kubectl scaleset rolling-upgrade rollback web --watch
    """


def _start_time(loaded: LoadedScaleSet) -> str | None:
    ru = loaded.status.rolling_upgrade
    return ru.running_status.start_time if ru and ru.running_status else None


def _code(loaded: LoadedScaleSet) -> RunningStatusCode | None:
    ru = loaded.status.rolling_upgrade
    return ru.running_status.code if ru and ru.running_status else None


def _show_latest(loaded: LoadedScaleSet) -> None:
    doc = latest_info(loaded.status, loaded.name, loaded.spec.location)
    ru = loaded.status.rolling_upgrade
    if doc is None or ru is None:
        raise NotFound(f'no rolling upgrade has run on scale set "{loaded.name}" yet')
    waiting = waiting_text(loaded.status)
    emit(
        doc,
        settings().output,
        lambda: latest_table(loaded.name, loaded.spec.location, ru, waiting),
    )


def _wait_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option(
        "--wait-timeout",
        type=click.FloatRange(min=0),
        default=10.0,
        show_default=True,
        help=_WAIT_HELP,
    )(func)
    return click.option("--no-wait", is_flag=True, help="Return once the request is recorded.")(
        func
    )


@rolling_upgrade.command("start")
@click.argument("name")
@_wait_options
@click.option("--watch", "then_watch", is_flag=True, help="Then follow the upgrade until it ends.")
@common_options
def start(name: str, no_wait: bool, wait_timeout: float, then_watch: bool) -> None:
    """Start a rolling OS image upgrade of scale set NAME now (startedBy: User).

    The scale set moves to its latest image version; instances already on it are
    left alone. A manually started upgrade is not rolled back automatically.
    The command waits (--wait-timeout) until the operator has started the upgrade
    and says what happened; exit code 1 when the operator refused to start it.

    \b
    Examples:
      kubectl scaleset rolling-upgrade start web
      kubectl scaleset rolling-upgrade start web --watch
      kubectl scaleset rolling-upgrade start web --no-wait -n shop
    """
    before = load_scaleset(name)
    if _code(before) is RunningStatusCode.ROLLING_FORWARD:
        raise CommandFailed(
            f'a rolling upgrade of "{name}" is already in progress (started '
            f"{_start_time(before)}); watch it or cancel it first"
        )
    request = new_request("start", [], datetime.now(UTC))
    submit(name, ANNOTATION_START, request)
    if no_wait:
        click.echo(f'Requested a rolling OS upgrade of "{name}" (request {request.id}).')
        return
    old_start = _start_time(before)

    def started(loaded: LoadedScaleSet) -> bool:
        new_start = _start_time(loaded)
        return handled(request)(loaded) or (new_start is not None and new_start != old_start)

    after, seen = wait_for(name, started, wait_timeout)
    if not seen:
        click.echo(f"warning: {not_observed('the start', wait_timeout)}", err=True)
        return
    if _start_time(after) in (None, old_start):
        _refused(name, request, "started no upgrade")
    _report_start(after)
    if then_watch:
        # Even an upgrade that already ended is reported the way watch reports it.
        follow(name, timeout=0, interval=1.0)


def _refused(name: str, request: Request, what: str) -> None:
    # Events carry whole seconds: one from the same second as the request is not older.
    since = stamp(parse_stamp(request.at).replace(microsecond=0))
    try:
        # The operator writes status before its events: the reason may arrive a moment later.
        reasons = poll(
            lambda: operator_said(name, since),
            what="the operator's reason",
            timeout=_REASON_WAIT,
            interval=POLL_SECONDS,
        )
    except PollTimeoutError:
        reasons = []
    why = "; ".join(reasons) if reasons else "see `kubectl describe vmss " + name + "`"
    raise CommandFailed(f"the operator {what}: {why}")


def _report_start(loaded: LoadedScaleSet, headline: str | None = None) -> None:
    """What the run just started shows; `headline` replaces the first line of the table."""
    ru = loaded.status.rolling_upgrade
    run = loaded.status.upgrade_run
    code = _code(loaded)
    if settings().output != "table":
        _show_latest(loaded)
    else:
        target = f" to {run.target.urn}" if run else ""
        click.echo(
            headline
            or f'Rolling OS upgrade of "{loaded.name}"{target} started at '
            f"{_start_time(loaded)}: {code.value if code else 'Unknown'}"
        )
        if ru and ru.progress:
            click.echo(f"Progress: {progress_text(ru.progress)}")
    if code in (RunningStatusCode.FAULTED, RunningStatusCode.CANCELLED):
        problem = error_text(ru.error if ru else None)
        raise CommandFailed(f"the upgrade ended {code.value}" + (f": {problem}" if problem else ""))


@rolling_upgrade.command("cancel")
@click.argument("name")
@_wait_options
@common_options
def cancel(name: str, no_wait: bool, wait_timeout: float) -> None:
    """Cancel the rolling upgrade in progress on scale set NAME.

    Instances of the batch in flight finish first; no new batch starts and the
    upgrade ends Cancelled. Exit code 1 when no upgrade is in progress.

    \b
    Examples:
      kubectl scaleset rolling-upgrade cancel web
      kubectl scaleset rolling-upgrade cancel web --no-wait
    """
    before = load_scaleset(name)
    if _code(before) is not RunningStatusCode.ROLLING_FORWARD:
        raise CommandFailed(f'no rolling upgrade of "{name}" is in progress to cancel')
    request = new_request("cancel", [], datetime.now(UTC))
    submit(name, ANNOTATION_CANCEL, request)
    if no_wait:
        click.echo(f'Requested cancellation of the rolling upgrade of "{name}".')
        return

    def cancelled(loaded: LoadedScaleSet) -> bool:
        ru = loaded.status.rolling_upgrade
        rs = ru.running_status if ru else None
        return rs is not None and (rs.last_action == "Cancel" or handled(request)(loaded))

    after, seen = wait_for(name, cancelled, wait_timeout)
    if not seen:
        click.echo(f"warning: {not_observed('the cancellation', wait_timeout)}", err=True)
        return
    ru = after.status.rolling_upgrade
    rs = ru.running_status if ru else None
    if rs is None or rs.last_action != "Cancel":
        _refused(name, request, "did not cancel the upgrade")
    if settings().output != "table":
        _show_latest(after)
        return
    code = _code(after)
    click.echo(
        f'Cancelled the rolling upgrade of "{name}" at {rs.last_action_time if rs else "?"}'
        f"; status now {code.value if code else 'Unknown'}"
        + (
            " (the batch in flight finishes first)"
            if code is RunningStatusCode.ROLLING_FORWARD
            else ""
        )
    )


@rolling_upgrade.command("rollback")
@click.argument("name")
@_wait_options
@click.option("--watch", "then_watch", is_flag=True, help="Then follow the rollback until it ends.")
@common_options
def rollback(name: str, no_wait: bool, wait_timeout: float, then_watch: bool) -> None:
    """Roll the last OS upgrade of scale set NAME back to the image before it.

    The instances go back to the previous image version batch by batch, under
    the same rolling upgrade policy as an upgrade: batch size, health checks,
    pause between batches, unhealthy limits and PodDisruptionBudgets. The
    rollback is a run of its own, started by User: history shows it with the
    previous version as its target. The version rolled back is quarantined
    (reason RolledBackByUser), so automatic upgrades do not apply it again;
    a newer version is still picked up, and `kubectl scaleset quarantine clear`
    releases it. An instance that fails its health check on the previous image
    is not sent forward again: it counts as failed, as in a user's upgrade.

    An upgrade still in progress is stopped first: its batch in flight finishes,
    the upgrade ends Cancelled, then the rollback starts. Rolling back a rollback
    that did not finish carries it on.

    The command waits (--wait-timeout) until the rollback has started and says
    what happened. Exit code 1 when the operator refuses it (no upgrade to roll
    back, every instance already on the previous image, a pinned image version)
    or when it has already ended Faulted or Cancelled.

    \b
    Examples:
      kubectl scaleset rolling-upgrade rollback web
      kubectl scaleset rolling-upgrade rollback web --watch
      kubectl scaleset rolling-upgrade rollback web --no-wait -n shop
    """
    before = load_scaleset(name)
    request = new_request("rollback", [], datetime.now(UTC))
    submit(name, ANNOTATION_ROLLBACK, request)
    if no_wait:
        click.echo(
            f'Requested a rollback of the last OS upgrade of "{name}" (request {request.id}).'
        )
        return
    old_start = _start_time(before)

    def decided(loaded: LoadedScaleSet) -> bool:
        return handled(request)(loaded) and not _rollback_pending(loaded)

    after, seen = wait_for(name, decided, wait_timeout)
    if not seen and not (handled(request)(after) and _rollback_pending(after)):
        click.echo(f"warning: {not_observed('the rollback', wait_timeout)}", err=True)
        return
    run = after.status.upgrade_run
    if _rollback_pending(after) and run is not None:
        click.echo(
            f'Stopping the OS upgrade of "{name}" to {run.target.version}: the rollback starts '
            "once its batch in flight has settled (not within the wait timeout)."
        )
    elif run is None or run.rollback_of is None or _start_time(after) in (None, old_start):
        _refused(name, request, "refused the rollback")
    else:
        _report_start(
            after,
            f'Rolling back "{name}" from {run.rollback_of.version} to {run.target.version}, '
            f"started at {run.start_time}: {run.code.value}; {run.rollback_of.version} is "
            "quarantined (rolled back by user)",
        )
    if then_watch:
        follow(name, timeout=0, interval=1.0)


def _rollback_pending(loaded: LoadedScaleSet) -> bool:
    """A rollback waits for the run it stops to end."""
    run = loaded.status.upgrade_run
    return run is not None and run.rollback_requested_at is not None


@rolling_upgrade.command("get-latest")
@click.argument("name")
@common_options
def get_latest(name: str) -> None:
    """Show the latest rolling upgrade of scale set NAME: policy, status, progress, error.

    A platform upgrade that waits between batches for the next maintenance window
    says until when (Waiting). With -o json the answer has Azure's
    rollingUpgrades/latest shape (`az vmss rolling-upgrade get-latest`), which has
    no field for that. Exit code 3 when none has run yet.

    \b
    Examples:
      kubectl scaleset rolling-upgrade get-latest web
      kubectl scaleset rolling-upgrade get-latest web -o json | jq .properties.progress
    """
    _show_latest(load_scaleset(name))


rolling_upgrade.add_command(watch)
