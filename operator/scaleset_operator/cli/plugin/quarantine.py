"""`quarantine list|clear`: image versions kept out of `latest` after a faulted upgrade or a
user's rollback.

A version whose OS upgrade ended Faulted, or that a user rolled back, is never picked as
"latest" again for that scale set (neither for automatic upgrades nor for new instances) until
a user clears it here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from scaleset_operator.cli.plugin.context import common_options, load_scaleset, settings
from scaleset_operator.cli.plugin.requests import handled, new_request, submit, wait_for
from scaleset_operator.cli.views.output import Cell, emit, table
from scaleset_operator.models.instance import ANNOTATION_CLEAR_QUARANTINE


@click.group("quarantine")
def quarantine() -> None:
    """Image versions kept out of "latest": their upgrade faulted, or a user rolled it back.

    \b
    Examples:
      kubectl scaleset quarantine list web
      kubectl scaleset quarantine clear web --version 1.2.0
    """


@quarantine.command("list")
@click.argument("name")
@common_options
def list_(name: str) -> None:
    """Show the quarantined versions of scale set NAME.

    \b
    Examples:
      kubectl scaleset quarantine list web
      kubectl scaleset quarantine list web -o json
    """
    status = load_scaleset(name).status
    versions = status.faulted_versions
    why = {q.version: q for q in status.quarantine_reasons}

    def row(version: str) -> list[Cell]:
        reason = why.get(version)
        if reason is None:
            # Quarantined before reasons were recorded: only a faulted upgrade did that then.
            return [version, "its OS upgrade ended Faulted", None]
        return [version, reason.message, reason.since]

    emit(
        {"quarantinedVersions": versions},
        settings().output,
        lambda: (
            table(["Version", "Reason", "Since"], [row(v) for v in versions])
            if versions
            else "(none)\n"
        ),
    )


@quarantine.command("clear")
@click.argument("name")
@click.option(
    "--version",
    "versions",
    multiple=True,
    metavar="VERSION",
    help="A version to release (repeatable); default: all of them.",
)
@click.option("--wait-timeout", type=float, default=10.0, show_default=True)
@common_options
def clear(name: str, versions: tuple[str, ...], wait_timeout: float) -> None:
    """Let quarantined versions of scale set NAME be picked as "latest" again.

    With automatic OS upgrades on, a cleared version that is newer than the
    running one starts a new platform upgrade after the usual delay.

    \b
    Examples:
      kubectl scaleset quarantine clear web --version 1.2.0
      kubectl scaleset quarantine clear web
    """
    load_scaleset(name)
    request = new_request("clear-quarantine", [], datetime.now(UTC))
    request = request.model_copy(update={"versions": list(versions)})
    submit(name, ANNOTATION_CLEAR_QUARANTINE, request)
    loaded, seen = wait_for(name, handled(request), wait_timeout)
    left = loaded.status.faulted_versions
    if seen:
        click.echo(f"Quarantine of {name}: {', '.join(left) if left else 'empty'} now.")
    else:
        click.echo(f"Requested (request {request.id}); not yet handled by the operator.", err=True)
