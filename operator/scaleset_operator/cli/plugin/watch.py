"""`kubectl scaleset rolling-upgrade watch`: a live view of the latest rolling upgrade, one
progress bar per instance state and the instances by zone (the dashboard's states), until it
ends; right after a publish, of the platform's upgrade once it starts. Reads status, the
catalog, pods and nodes only; changes nothing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import click

from scaleset_operator.catalog.objects import catalog_entries
from scaleset_operator.cli.plugin.context import (
    CommandFailed,
    LoadedScaleSet,
    NotFound,
    common_options,
    load_scaleset,
    settings,
)
from scaleset_operator.cli.views.azure import latest_info
from scaleset_operator.cli.views.output import document
from scaleset_operator.cli.views.tables import error_text, progress_text
from scaleset_operator.cli.views.zones import zone_line
from scaleset_operator.dashboard.tiles import Tile, tiles_by_zone
from scaleset_operator.k8s.errors import ForbiddenError, KubeApiError
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import (
    HoldReason,
    Progress,
    RollingUpgradeStatus,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
)
from scaleset_operator.planner.schedule import upgrade_target
from scaleset_operator.polling import PollTimeoutError, poll

if TYPE_CHECKING:
    from rich.console import RenderableType

T = TypeVar("T")

# Platform upgrades start seconds after a publish by default, but a deployment may delay them
# for minutes (--upgrade-delay, maintenance windows); five minutes covers the usual settings.
START_TIMEOUT = 300.0


def _finished(ru: RollingUpgradeStatus) -> bool:
    rs = ru.running_status
    return rs is not None and rs.code is not RunningStatusCode.ROLLING_FORWARD


def run_to_follow(status: ScaleSetStatus, before: str | None) -> RollingUpgradeStatus | None:
    """The run to follow at once: one in progress, or one that started after `before` (the
    start time of the latest run when the watch began)."""
    ru = status.rolling_upgrade
    rs = ru.running_status if ru else None
    if rs is None:
        return None
    if rs.code is RunningStatusCode.ROLLING_FORWARD or rs.start_time != before:
        return ru
    return None


def awaited_version(
    spec: ScaleSetSpec, status: ScaleSetStatus, catalog: Sequence[CatalogEntry], now: datetime
) -> str | None:
    """The version a platform upgrade is due to move the scale set to, if any: the one the
    operator recorded as pending, or the one it will decide on (the planner's own
    `upgrade_target`) when it has not seen a just-published version yet."""
    if status.pending_upgrade is not None:
        return status.pending_upgrade.version
    image = upgrade_target(spec, status, catalog, now, started_by=StartedBy.PLATFORM).image
    return image.version if image is not None else None


def _catalog() -> tuple[CatalogEntry, ...]:
    try:
        return catalog_entries(settings().api().list_imageversions())
    except ForbiddenError:
        # Image versions are cluster-scoped; a user of one namespace may not list them.
        # Then only the pending upgrade the operator recorded tells that one is coming.
        return ()


def _wave_note(status: ScaleSetStatus) -> str:
    """An UpgradeWave may hold the version far longer than a watch waits: say so at once."""
    holds = status.out_of_date.holds if status.out_of_date is not None else []
    for hold in holds:
        if hold.reason is HoldReason.WAITING_FOR_WAVE:
            until = f" until {hold.until}" if hold.until else ""
            return f"; its UpgradeWave stage holds it{until} (kubectl scaleset wave get)"
    return ""


def _start_time(status: ScaleSetStatus) -> str | None:
    ru = status.rolling_upgrade
    return ru.running_status.start_time if ru and ru.running_status else None


def _then(first: T, read: Callable[[], T]) -> Callable[[], T]:
    """`first` (a value already read) on the first call, `read()` on every later one."""
    pending = [first]
    return lambda: pending.pop() if pending else read()


def _await_run(
    name: str, wait: float, interval: float
) -> tuple[LoadedScaleSet, RollingUpgradeStatus]:
    """The run to watch. Right after a newer version is published the platform's upgrade
    has not started yet (the operator waits out its delay and maintenance windows): then
    this waits up to `wait` seconds for it rather than report the previous run, or none."""
    first = load_scaleset(name)
    before = _start_time(first.status)
    read = _then(first, lambda: load_scaleset(name))
    due: list[str] = []  # the version awaited, once announced

    def started() -> tuple[LoadedScaleSet, RollingUpgradeStatus] | None:
        loaded = read()
        ru = run_to_follow(loaded.status, before)
        if ru is not None:
            return loaded, ru
        version = awaited_version(loaded.spec, loaded.status, _catalog(), datetime.now(UTC))
        if version is None:
            last = loaded.status.rolling_upgrade
            if last is None or last.running_status is None:
                raise NotFound(f'no rolling upgrade has run on scale set "{name}" yet')
            return loaded, last
        if not due:
            click.echo(
                f"waiting for a rolling upgrade of {name} to {version} to start "
                f"(up to {wait:g}s){_wave_note(loaded.status)}...",
                err=True,
            )
        due[:] = [version]
        return None

    try:
        return poll(started, what=f"rolling upgrade of {name}", timeout=wait, interval=interval)
    except PollTimeoutError:
        raise CommandFailed(
            f"no rolling upgrade of {name} started within {wait:g}s, though {due[0]} is "
            "due; the operator may not be running, or waits for a maintenance window "
            f"(see `kubectl describe vmss {name}`)"
        ) from None


def _latest(name: str) -> tuple[LoadedScaleSet, RollingUpgradeStatus]:
    loaded = load_scaleset(name)
    ru = loaded.status.rolling_upgrade
    if ru is None or ru.running_status is None:
        raise NotFound(f'no rolling upgrade has run on scale set "{name}" yet')
    return loaded, ru


def _line(ru: RollingUpgradeStatus) -> str:
    code = ru.running_status.code.value if ru.running_status else "Unknown"
    return f"{code}: {progress_text(ru.progress or Progress())}"


@dataclass
class ZoneReader:
    """The scale set's instances by zone, read afresh on each call. Nodes are listed again only
    when a pod sits on a node not seen before: nodes do not change zone, and listing every node
    each second would weigh on a large cluster. A user who may not list pods or nodes gets a
    note instead, and is not asked again."""

    zones: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    stale: bool = True
    nodes_note: str | None = None
    pods_note: str | None = None

    def read(self, loaded: LoadedScaleSet) -> tuple[dict[str, list[Tile]], str | None]:
        if self.pods_note is not None:
            return {}, self.pods_note
        api = settings().api()
        if self.stale and self.nodes_note is None:
            try:
                # The nodes seen so far: the client lists nodes again for one it has not.
                self.zones = api.node_zones(self.seen)
            except ForbiddenError as exc:
                self.nodes_note = f"zones unknown: {exc}"
            except KubeApiError as exc:
                return {}, f"instances by zone not shown this time: {exc}"
            self.seen |= set(self.zones)
        try:
            instances = api.instances_in_zones(loaded.name, loaded.spec, self.zones)
        except ForbiddenError as exc:
            self.pods_note = f"instances by zone not shown: {exc}"
            return {}, self.pods_note
        except KubeApiError as exc:
            return {}, f"instances by zone not shown this time: {exc}"
        nodes = {i.node_name for i in instances if i.node_name}
        self.stale = bool(nodes - self.seen)
        self.seen |= nodes
        return tiles_by_zone(instances, loaded.status), self.nodes_note


@dataclass
class LineOutput:
    """Output without a terminal: a line whenever the progress, or the instances by zone,
    change; each note once, on stderr, so stdout reads as before for scripts."""

    reader: ZoneReader
    last: str = ""
    last_zones: str = ""
    noted: set[str] = field(default_factory=set)

    def show(self, loaded: LoadedScaleSet, ru: RollingUpgradeStatus) -> None:
        if _line(ru) != self.last:
            self.last = _line(ru)
            click.echo(self.last)
        zones, note = self.reader.read(loaded)
        if zones and zone_line(zones) != self.last_zones:
            self.last_zones = zone_line(zones)
            click.echo(self.last_zones)
        if note and note not in self.noted:
            self.noted.add(note)
            click.echo(f"note: {note}", err=True)


def live_view(
    name: str, loaded: LoadedScaleSet, ru: RollingUpgradeStatus, reader: ZoneReader
) -> RenderableType:
    # Imported here, as in `follow`, which has already made sure the `cli` extra is there.
    from rich.console import Group
    from rich.text import Text

    from scaleset_operator.cli.views.progress import progress_view
    from scaleset_operator.cli.views.zones import zone_view

    zones, note = reader.read(loaded)
    return Group(progress_view(name, ru), Text(""), zone_view(zones, note))


def follow(
    name: str, timeout: float, interval: float, start_timeout: float = START_TIMEOUT
) -> None:
    """Watches until the upgrade ends; exits 0 on Completed, 1 on Faulted, Cancelled or
    when `timeout` (seconds, 0 = none) passes first. An upgrade that is due but has not
    started is waited for, up to `start_timeout` (and within `timeout`)."""
    try:
        # The live view's library comes with the `cli` extra; the rest of the plugin runs
        # without it.
        from rich.console import Console
        from rich.live import Live

        from scaleset_operator.cli.views.progress import progress_view
    except ImportError as exc:
        raise CommandFailed(
            f"the live view needs {exc.name}: pip install 'scaleset-operator[cli]'"
        ) from exc
    fmt = settings().output
    deadline = time.monotonic() + timeout if timeout > 0 else math.inf
    console = Console()
    loaded, ru = _await_run(name, min(start_timeout, timeout or start_timeout), interval)
    live = Live(progress_view(name, ru), console=console, auto_refresh=False)
    interactive = fmt == "table" and console.is_terminal
    reader = ZoneReader()
    lines = LineOutput(reader)
    read = _then((loaded, ru), lambda: _latest(name))

    def ended() -> bool:
        """One look: the latest status (the one already read, the first time) shown; true
        once the upgrade has ended."""
        nonlocal loaded, ru
        loaded, ru = read()
        if interactive:
            live.update(live_view(name, loaded, ru, reader), refresh=True)
        elif fmt == "table":
            lines.show(loaded, ru)
        return _finished(ru)

    if interactive:
        live.start()
    try:
        poll(ended, what=f"rolling upgrade of {name}", deadline=deadline, interval=interval)
    except PollTimeoutError:
        raise CommandFailed(
            f"timed out after {timeout:g}s; the upgrade is still {_line(ru)}"
        ) from None
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
@click.option(
    "--start-timeout",
    type=click.FloatRange(min=0),
    default=START_TIMEOUT,
    show_default=True,
    help="When a newer image version is published but the platform's upgrade has not "
    "started yet, wait this many seconds for it to start (exit 1 if it does not).",
)
@common_options
def watch(name: str, timeout: float, interval: float, start_timeout: float) -> None:
    """Follow the latest rolling upgrade of scale set NAME until it ends.

    Shows one progress bar per instance state (successful, failed, in progress,
    pending), and each zone's instances coloured by their state in the upgrade
    (target, in-flight, failed, rolled-back, pending, protected; as on the
    dashboard). Without a terminal it prints a line whenever the progress
    changes, and a "Zones:" line whenever the instances' states change; with
    -o json|yaml it prints only the final rollingUpgrades/latest document.
    Without permission to list pods or nodes, a note says what is missing.
    An upgrade that already ended is reported at once, unless a newer image
    version is due: then the platform's upgrade to it is awaited
    (--start-timeout) and followed.

    Exit code 0 when the upgrade Completed, 1 when it ended Faulted or Cancelled,
    --timeout passed first or a due upgrade did not start in time.

    \b
    Examples:
      kubectl scaleset rolling-upgrade watch web
      kubectl scaleset rolling-upgrade watch web --timeout 900 -n shop
      kubectl scaleset rolling-upgrade start web && kubectl scaleset rolling-upgrade watch web
      kubectl scaleset image publish ... && kubectl scaleset rolling-upgrade watch web
    """
    follow(name, timeout, interval, start_timeout)
