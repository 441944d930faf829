"""`kubectl scaleset rolling-upgrade watch`: a live view of the latest rolling upgrade, one
progress bar per instance state, until it ends. Reads status only; changes nothing."""

from __future__ import annotations

import time

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from scaleset_operator.cli.azure import latest_info
from scaleset_operator.cli.output import document
from scaleset_operator.cli.plugin_context import (
    CommandFailed,
    LoadedScaleSet,
    NotFound,
    common_options,
    load_scaleset,
    settings,
)
from scaleset_operator.cli.views import error_text, progress_text
from scaleset_operator.models.status import Progress, RollingUpgradeStatus, RunningStatusCode

_STATES = (
    ("successful", "successful_instance_count", "green"),
    ("failed", "failed_instance_count", "red"),
    ("in progress", "in_progress_instance_count", "yellow"),
    ("pending", "pending_instance_count", "blue"),
)


def progress_view(name: str, ru: RollingUpgradeStatus) -> RenderableType:
    """Header line plus one bar per state, each out of all instances in the upgrade."""
    rs = ru.running_status
    progress = ru.progress or Progress()
    counts = [int(getattr(progress, field)) for _, field, _ in _STATES]
    total = max(sum(counts), 1)
    code = rs.code.value if rs else "Unknown"
    header = Text.assemble(
        ("Rolling upgrade of ", ""),
        (name, "bold"),
        (f": {code}", "bold"),
        (f" (started {rs.start_time})" if rs and rs.start_time else "", "dim"),
    )
    bars = Table.grid(padding=(0, 2))
    for (label, _, colour), count in zip(_STATES, counts, strict=True):
        bars.add_row(
            Text(label, style=colour),
            ProgressBar(
                total=total,
                completed=count,
                width=40,
                complete_style=colour,
                finished_style=colour,
            ),
            Text(f"{count}/{sum(counts)}"),
        )
    return Group(header, bars)


def _finished(ru: RollingUpgradeStatus) -> bool:
    rs = ru.running_status
    return rs is not None and rs.code is not RunningStatusCode.ROLLING_FORWARD


def _latest(name: str) -> tuple[LoadedScaleSet, RollingUpgradeStatus]:
    loaded = load_scaleset(name)
    ru = loaded.status.rolling_upgrade
    if ru is None or ru.running_status is None:
        raise NotFound(f'no rolling upgrade has run on scale set "{name}" yet')
    return loaded, ru


def _line(ru: RollingUpgradeStatus) -> str:
    code = ru.running_status.code.value if ru.running_status else "Unknown"
    return f"{code}: {progress_text(ru.progress or Progress())}"


def follow(name: str, timeout: float, interval: float) -> None:
    """Watches until the upgrade ends; exits 0 on Completed, 1 on Faulted, Cancelled or
    when `timeout` (seconds, 0 = none) passes first."""
    fmt = settings().output
    deadline = time.monotonic() + timeout if timeout > 0 else None
    console = Console()
    loaded, ru = _latest(name)
    live = Live(progress_view(name, ru), console=console, auto_refresh=False)
    interactive = fmt == "table" and console.is_terminal
    last = ""
    if interactive:
        live.start()
    try:
        while True:
            if interactive:
                live.update(progress_view(name, ru), refresh=True)
            elif fmt == "table" and _line(ru) != last:
                last = _line(ru)
                click.echo(last)
            if _finished(ru):
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise CommandFailed(
                    f"timed out after {timeout:g}s; the upgrade is still {_line(ru)}"
                )
            time.sleep(interval)
            loaded, ru = _latest(name)
    finally:
        if interactive:
            live.stop()
    _outcome(loaded, ru)


def _outcome(loaded: LoadedScaleSet, ru: RollingUpgradeStatus) -> None:
    fmt = settings().output
    rs = ru.running_status
    code = rs.code if rs else None
    if fmt != "table":
        click.echo(document(latest_info(loaded.status, loaded.name, loaded.spec.location), fmt))
    else:
        click.echo(f"Outcome: {code.value if code else 'Unknown'}")
        problem = error_text(ru.error)
        if problem:
            click.echo(f"Error: {problem}")
    if code is not RunningStatusCode.COMPLETED:
        click.get_current_context().exit(1)


@click.command("watch")
@click.argument("name")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Give up after this many seconds (exit 1); 0 waits as long as it takes.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between status reads.",
)
@common_options
def watch(name: str, timeout: float, interval: float) -> None:
    """Follow the latest rolling upgrade of scale set NAME until it ends.

    Shows one progress bar per instance state (successful, failed, in progress,
    pending). Without a terminal it prints a line whenever the progress changes;
    with -o json|yaml it prints only the final rollingUpgrades/latest document.
    An upgrade that already ended is reported at once.

    Exit code 0 when the upgrade Completed, 1 when it ended Faulted or Cancelled
    or --timeout passed first.

    \b
    Examples:
      kubectl scaleset rolling-upgrade watch web
      kubectl scaleset rolling-upgrade watch web --timeout 900 -n shop
      kubectl scaleset rolling-upgrade start web && kubectl scaleset rolling-upgrade watch web
    """
    follow(name, timeout, interval)
