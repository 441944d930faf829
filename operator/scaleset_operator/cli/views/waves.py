"""The views of `kubectl scaleset wave`: the list of waves, one wave's stages and versions, and
what `wave watch` prints as versions move through the stages. Pure: models and times in, text
and decisions out; the plugin reads the API and turns endings into exit codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scaleset_operator.catalog.resolve import is_newer
from scaleset_operator.cli.views.output import Cell, key_values, table
from scaleset_operator.models.upgradewave import (
    UpgradeWaveSpec,
    UpgradeWaveStatus,
    VersionPhase,
    WaveVersion,
)

Obj = dict[str, Any]


@dataclass(frozen=True)
class WaveObject:
    """An UpgradeWave as the plugin read it."""

    name: str
    created: datetime | None
    generation: int | None
    spec: UpgradeWaveSpec
    status: UpgradeWaveStatus


def age(created: datetime | None, now: datetime) -> str | None:
    """kubectl's AGE: seconds under two minutes, then minutes, hours, days."""
    if created is None:
        return None
    seconds = max(0, int((now - created).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def newest(status: UpgradeWaveStatus) -> WaveVersion | None:
    """The version the summary speaks of: the first image's newest tracked version."""
    return status.versions[0] if status.versions else None


def label(record: WaveVersion) -> str:
    return f"{record.image}:{record.version}"


def where(record: WaveVersion, stages: int) -> str:
    """`Soaking in stage test (1/3)`."""
    return f"{record.phase.value} in stage {record.stage} ({record.stage_index + 1}/{stages})"


# --- wave get ------------------------------------------------------------------------------


def waves_table(waves: Sequence[WaveObject], now: datetime) -> str:
    if not waves:
        return "No upgrade waves found.\n"
    rows: list[list[Cell]] = []
    for wave in sorted(waves, key=lambda w: w.name):
        top = newest(wave.status)
        rows.append(
            [
                wave.name,
                ",".join(s.name for s in wave.spec.stages),
                label(top) if top else None,
                top.phase.value if top else None,
                top.stage if top else None,
                age(wave.created, now),
            ]
        )
    return table(["Name", "Stages", "Newest", "Phase", "Stage", "Age"], rows)


def stages_table(wave: WaveObject) -> str:
    members = {s.name: s.scale_sets for s in wave.status.stages}
    rows: list[list[Cell]] = [
        [stage.name, stage.soak_time, ",".join(members.get(stage.name, []))]
        for stage in wave.spec.stages
    ]
    return table(["Stage", "Soak-Time", "Scale-Sets"], rows)


def versions_table(versions: Sequence[WaveVersion]) -> str:
    if not versions:
        return "No versions tracked yet.\n"
    rows: list[list[Cell]] = [
        [r.image, r.version, r.phase.value, r.stage, r.soak_ends_at, r.waiting_for]
        for r in versions
    ]
    return table(["Image", "Version", "Phase", "Stage", "Soak-Ends", "Waiting-For"], rows)


def wave_detail(wave: WaveObject, now: datetime) -> str:
    """`wave get NAME`: a summary, the stages with their members, the versions, conflicts."""
    status = wave.status
    stale = (
        wave.generation is not None
        and status.observed_generation is not None
        and status.observed_generation != wave.generation
    )
    head = key_values(
        [
            ("Name", wave.name),
            ("Summary", status.summary or "(none yet)"),
            ("Age", age(wave.created, now)),
            (
                "Note",
                f"status is of generation {status.observed_generation}; the operator has not "
                f"caught up with generation {wave.generation} yet"
                if stale
                else None,
            ),
        ]
    )
    parts = [head, stages_table(wave), versions_table(status.versions)]
    if status.conflicts:
        lines = "".join(f"  {c}\n" for c in status.conflicts)
        parts.append(f"Conflicts (selected here, governed by another wave):\n{lines}")
    return "\n".join(parts)


def wave_document(obj: Obj) -> Obj:
    """The object as the API returned it, less `metadata.managedFields` (as kubectl shows it)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def waves_document(objs: Sequence[Obj]) -> Obj:
    return {"apiVersion": "v1", "kind": "List", "items": [wave_document(o) for o in objs]}


# --- wave watch ----------------------------------------------------------------------------


def chosen(status: UpgradeWaveStatus, wanted: str | None) -> WaveVersion | None:
    """The version to follow: `wanted` (a version, or image:version) if tracked, else the
    newest one; None while the wave tracks no such version yet."""
    if wanted is None:
        return newest(status)
    return next((r for r in status.versions if wanted in (r.version, label(r))), None)


@dataclass(frozen=True)
class Ending:
    """How the watch ends: `ok` is exit code 0, else 1; `text` says why."""

    ok: bool
    text: str
    record: WaveVersion | None


def _state(record: WaveVersion) -> tuple[str, str, str | None]:
    return record.phase.value, record.stage, record.waiting_for


@dataclass
class WaveWatch:
    """What a watch has seen: the version it follows (fixed once chosen) and each tracked
    version's last phase, stage and waitingFor, so that only changes are printed."""

    wanted: str | None
    target: tuple[str, str] | None = None
    last: WaveVersion | None = None
    seen: dict[tuple[str, str], tuple[str, str, str | None]] = field(default_factory=dict)

    def update(self, wave: WaveObject, now: datetime) -> list[str]:
        """The lines for what changed since the last read (every version on the first)."""
        stages = len(wave.spec.stages)
        if self.target is None:
            first = chosen(wave.status, self.wanted)
            if first is not None:
                self.target = (first.image, first.version)
        lines = []
        for record in wave.status.versions:
            key = (record.image, record.version)
            if key == self.target:
                self.last = record
            if self.seen.get(key) == _state(record):
                continue
            self.seen[key] = _state(record)
            text = f"{now.strftime('%H:%M:%S')}  {label(record)} {where(record, stages)}"
            lines.append(text + (f": {record.waiting_for}" if record.waiting_for else ""))
        return lines

    def ending(self, status: UpgradeWaveStatus) -> Ending | None:
        """Completed (0), Faulted (1), or gone from the record: superseded by a newer version
        of its image that Completed (0), else (1). None while it is still on its way."""
        if self.target is None:
            return None
        image, version = self.target
        record = next((r for r in status.versions if (r.image, r.version) == self.target), None)
        if record is not None and record.phase is VersionPhase.COMPLETED:
            return Ending(True, f"{label(record)} Completed: every stage has it", record)
        if record is not None and record.phase is VersionPhase.FAULTED:
            by = record.faulted_by or "a scale set"
            return Ending(
                False,
                f"{label(record)} Faulted in stage {record.stage}: quarantined by {by}; no "
                "later stage gets it (`kubectl scaleset quarantine clear` there lets it go on)",
                record,
            )
        if record is not None:
            return None
        newer = [
            r
            for r in status.versions
            if r.image == image
            and r.phase is VersionPhase.COMPLETED
            and is_newer(r.version, version)
        ]
        if newer:
            return Ending(
                True,
                f"{image}:{version} is no longer tracked: {label(newer[0])}, newer, Completed",
                self.last,
            )
        return Ending(False, f"{image}:{version} is no longer tracked by the wave", self.last)

    def still(self, wave_name: str) -> str:
        """Where the followed version is, for a timeout's message."""
        if self.last is not None:
            return f"{label(self.last)} is still {self.last.phase.value} in stage {self.last.stage}"
        if self.wanted is None:
            return f"wave {wave_name} tracks no version yet"
        return f"wave {wave_name} does not track {self.wanted} yet"
