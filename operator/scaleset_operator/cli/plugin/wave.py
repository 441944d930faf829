"""`kubectl scaleset wave get|watch`: UpgradeWaves, the order in which platform OS upgrades
reach stages of scale sets across namespaces. Reads the wave's status, which the operator
writes; changes nothing."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

import click
from pydantic import ValidationError

from scaleset_operator.cli.plugin.context import (
    CommandFailed,
    common_options,
    settings,
    unreadable,
)
from scaleset_operator.cli.views.output import document, emit
from scaleset_operator.cli.views.waves import (
    Ending,
    Obj,
    WaveObject,
    WaveWatch,
    wave_detail,
    wave_document,
    waves_document,
    waves_table,
)
from scaleset_operator.models.durations import DurationError, parse_duration
from scaleset_operator.models.upgradewave import UpgradeWaveSpec, UpgradeWaveStatus
from scaleset_operator.planner.timefmt import parse_stamp
from scaleset_operator.polling import PollTimeoutError, poll

_UNITS = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


class Duration(click.ParamType[float]):
    """Seconds (`900`, as the other watch commands take), `90s`, `15m`, `1h30m`, or ISO 8601
    (`PT1H`, as a stage's soakTime is written)."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip()
        seconds: float | None = None
        try:
            seconds = float(text)
        except ValueError:
            units = _UNITS.match(text.lower())
            if text[:1] in ("P", "p"):
                try:
                    seconds = parse_duration(text.upper()).total_seconds()
                except DurationError:
                    seconds = None
            elif units is not None and any(units.groups()):
                hours, minutes, secs = units.groups()
                seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            self.fail(f"{text!r} is not a duration such as 900, 90s, 15m, 2h or PT1H", param, ctx)
        return seconds


def parse_wave(obj: Obj) -> WaveObject:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "?")
    try:
        spec = UpgradeWaveSpec.model_validate(obj.get("spec") or {})
        status = UpgradeWaveStatus.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        raise unreadable(f'upgrade wave "{name}"', exc) from None
    created = meta.get("creationTimestamp")
    generation = meta.get("generation")
    return WaveObject(
        name=name,
        created=parse_stamp(str(created)) if created else None,
        generation=int(generation) if generation is not None else None,
        spec=spec,
        status=status,
    )


@click.group("wave")
def wave() -> None:
    """Upgrade waves: which stages of scale sets a new image version has reached.

    An UpgradeWave (cluster-scoped, short name wave) orders platform OS upgrades:
    a new version reaches a stage only after every scale set of the stage before
    completed on it and stayed healthy for that stage's soak time.

    \b
    Examples:
      kubectl scaleset wave get
      kubectl scaleset wave get fleet
      kubectl scaleset wave watch fleet --version 1.2.0 --timeout 2h
    """


@wave.command("get")
@click.argument("name", required=False)
@common_options
def get(name: str | None) -> None:
    """Show upgrade waves, or wave NAME in detail.

    Without NAME, one row per wave: its stages in order, the newest tracked
    version (of the first image, as the wave's summary says) with its phase
    (Rolling, Soaking, Completed or Faulted) and the stage it has reached.

    With NAME: the wave's stages (soak time, the scale sets each holds now),
    then one row per tracked version: IMAGE, VERSION, PHASE, the STAGE reached,
    SOAK-ENDS (while Soaking: when the next stage gets it) and WAITING-FOR
    (the scale sets not done with it yet and why, or the soak). Scale sets that
    this wave selects but another wave governs are listed as conflicts.

    With -o json|yaml, the UpgradeWave object (a List without NAME). Exit code
    3 when wave NAME does not exist. The wave is cluster-scoped: -n is ignored.

    \b
    Examples:
      kubectl scaleset wave get
      kubectl scaleset wave get fleet
      kubectl scaleset wave get fleet -o json | jq '.status.versions[] | select(.stage == "test")'
      kubectl scaleset wave get fleet -o yaml
    """
    api = settings().api()
    now = datetime.now(UTC)
    if name is None:
        objs = api.list_upgradewaves()
        waves = [parse_wave(o) for o in objs]
        emit(waves_document(objs), settings().output, lambda: waves_table(waves, now))
        return
    obj = api.get_upgradewave(name)
    loaded = parse_wave(obj)
    emit(wave_document(obj), settings().output, lambda: wave_detail(loaded, now))


def _read(name: str) -> WaveObject:
    return parse_wave(settings().api().get_upgradewave(name))


def follow_wave(name: str, wanted: str | None, timeout: float, interval: float) -> Ending:
    """Prints the changes of wave NAME's versions (table output only) until the followed
    version ends; raises `CommandFailed` when `timeout` (seconds, 0 = none) passes first."""
    lines = settings().output == "table"
    watch = WaveWatch(wanted)
    first = _read(name)  # a missing wave ends here, with exit code 3
    announced = False

    def probe(current: WaveObject | None = None) -> Ending | None:
        nonlocal announced
        loaded = current or _read(name)
        for line in watch.update(loaded, datetime.now(UTC)):
            if lines:
                click.echo(line)
        if watch.target is None and not announced:
            what = wanted or "a version"
            click.echo(f"waiting for wave {name} to track {what}...", err=True)
            announced = True
        return watch.ending(loaded.status)

    ended = probe(first)
    if ended is not None:
        return ended
    deadline = time.monotonic() + timeout if timeout > 0 else math.inf
    try:
        return poll(probe, what=f"wave {name}", deadline=deadline, interval=interval)
    except PollTimeoutError:
        raise CommandFailed(f"timed out after {timeout:g}s; {watch.still(name)}") from None


@wave.command("watch")
@click.argument("name")
@click.option(
    "--version",
    "wanted",
    metavar="VERSION",
    help="The version to follow (or IMAGE:VERSION); default: the newest one the wave tracks, "
    "or the first to appear if it tracks none.",
)
@click.option(
    "--timeout",
    type=Duration(),
    default="0",
    show_default=True,
    help="Give up after this long (exit 1): seconds, 90s, 15m, 2h or PT1H; 0 waits as long "
    "as it takes.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between status reads.",
)
@common_options
def watch(name: str, wanted: str | None, timeout: float, interval: float) -> None:
    """Follow a version through the stages of wave NAME until it is done.

    Prints a line (time, image:version, phase, stage and what it waits for)
    for every tracked version at the start, then whenever one changes phase or
    stage or waits for something else. It ends when the followed version is
    Completed in every stage (exit code 0), or Faulted (exit code 1: a scale set
    quarantined it, so no later stage gets it). A version that a newer one of
    its image overtook (the newer one Completed) counts as done (0). With
    -o json|yaml it prints only the followed version's final record.

    Exit code 1 also when --timeout passes first; 3 when wave NAME does not exist.

    \b
    Examples:
      kubectl scaleset wave watch fleet
      kubectl scaleset wave watch fleet --version 1.2.0 --timeout 3h
      kubectl scaleset image publish ... && kubectl scaleset wave watch fleet --version 1.2.1
    """
    ended = follow_wave(name, wanted, timeout, interval)
    fmt = settings().output
    if fmt != "table":
        record = ended.record.wire() if ended.record is not None else {}
        click.echo(document(record, fmt), nl=False)
    else:
        click.echo(f"Outcome: {ended.text}")
    if not ended.ok:
        click.get_current_context().exit(1)
