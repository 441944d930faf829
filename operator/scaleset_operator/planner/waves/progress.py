"""A wave's pass, pure: its ScaleSets' persisted statuses in, the wave's new status out.

Each version's record only moves forward (the stage it reached is kept on record, so a restart
never takes a stage back), except for a fault, which is read afresh from the ScaleSets'
quarantines every time: clearing the quarantine where it happened lets the wave go on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from scaleset_operator.catalog.resolve import candidates, is_newer
from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import LATEST, ScaleSetSpec
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.models.upgradewave import (
    StageEntry,
    StageMembers,
    UpgradeWaveSpec,
    UpgradeWaveStatus,
    VersionPhase,
    WaveVersion,
)
from scaleset_operator.models.versions import version_key
from scaleset_operator.planner.run_end import run_finished
from scaleset_operator.planner.timefmt import parse_stamp, stamp
from scaleset_operator.planner.waves.membership import Wave, seat_of, stage_of

# Versions kept on record per image: enough for a busy publisher, bounded for etcd.
RECORDS_PER_IMAGE = 10
_WAITING_TEXT_LIMIT = 480


@dataclass(frozen=True)
class Member:
    """A ScaleSet as the wave sees it."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    spec: ScaleSetSpec
    status: ScaleSetStatus

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def takes_part(self) -> bool:
        """Only platform upgrades are ordered: a pinned version or automatic upgrades turned
        off means the wave never waits for this ScaleSet."""
        auto = self.spec.upgrade_policy.automatic_os_upgrade_policy
        return self.spec.image_reference.version == LATEST and auto.enable_automatic_os_upgrade

    @property
    def family(self) -> str:
        return self.spec.image_reference.family


@dataclass(frozen=True)
class WavePass:
    status: UpgradeWaveStatus
    wake_at: datetime | None


def plan_wave(
    wave: Wave,
    generation: int | None,
    members: Sequence[Member],
    waves: Sequence[Wave],
    catalog: Sequence[CatalogEntry],
    now: datetime,
) -> WavePass:
    spec = wave.spec
    by_stage: dict[int, list[Member]] = defaultdict(list)
    conflicts: list[str] = []
    for member in sorted(members, key=lambda m: m.ref):
        index = stage_of(spec, member.labels)
        if index is None:
            continue
        seat = seat_of(waves, member.labels)
        if seat is not None and seat.wave.name != wave.name:
            conflicts.append(f"{member.ref}: {seat.wave.name}")
            continue
        by_stage[index].append(member)
    previous = {(r.image, r.version): r for r in wave.status.versions}
    records: list[WaveVersion] = []
    families = sorted({m.family for ms in by_stage.values() for m in ms if m.takes_part})
    for family in families:
        records.extend(_family_records(spec, by_stage, family, previous, catalog, now))
    stages = [
        StageMembers(name=stage.name, scale_sets=[m.ref for m in by_stage.get(i, [])])
        for i, stage in enumerate(spec.stages)
    ]
    soaking = [parse_stamp(r.soak_ends_at) for r in records if r.soak_ends_at]
    status = UpgradeWaveStatus(
        observed_generation=generation,
        stages=stages,
        versions=records,
        conflicts=conflicts,
        summary=_summary(records),
    )
    return WavePass(status, min(soaking, default=None))


def _family_records(
    spec: UpgradeWaveSpec,
    by_stage: Mapping[int, Sequence[Member]],
    family: str,
    previous: Mapping[tuple[str, str], WaveVersion],
    catalog: Sequence[CatalogEntry],
    now: datetime,
) -> list[WaveVersion]:
    """Every version newer than the oldest this image's ScaleSets run, plus the newest one they
    all reached, so that the last completed version stays in view."""
    stages = {
        i: [m for m in ms if m.takes_part and m.family == family] for i, ms in by_stage.items()
    }
    running = [m for ms in stages.values() for m in ms]
    offered: dict[str, set[str]] = {}
    for member in running:
        ref = member.spec.image_reference
        for entry in candidates(catalog, ref, member.spec.location):
            if not entry.spec.exclude_from_latest:
                offered.setdefault(entry.spec.version, set()).add(member.ref)
    versions = set(offered) | {v for (f, v) in previous if f == family}
    models = [m.status.model_image.version for m in running if m.status.model_image is not None]
    floor = min(models, key=version_key) if models else None
    ordered = sorted(versions, key=version_key, reverse=True)
    newer = [v for v in ordered if is_newer(v, floor)]
    reached = [v for v in ordered if not is_newer(v, floor)][:1]
    kept = (newer + reached)[:RECORDS_PER_IMAGE]
    records = []
    for version in kept:
        before = previous.get((family, version))
        if before is None and version in reached:
            # Every scale set ran it before the wave saw it: nothing of the wave's to soak.
            last = len(spec.stages) - 1
            records.append(
                WaveVersion(
                    image=family,
                    version=version,
                    phase=VersionPhase.COMPLETED,
                    stage=spec.stages[last].name,
                    stage_index=last,
                )
            )
            continue
        offered_to = offered.get(version, set())
        records.append(_advance(spec, stages, family, version, offered_to, before, now))
    return records


def _advance(
    spec: UpgradeWaveSpec,
    stages: Mapping[int, Sequence[Member]],
    family: str,
    version: str,
    offered_to: set[str],
    before: WaveVersion | None,
    now: datetime,
) -> WaveVersion:
    last = len(spec.stages) - 1
    index = min(before.stage_index, last) if before is not None else 0
    entries = list(before.stages) if before is not None else []
    if not entries:
        entries = [StageEntry(stage=spec.stages[0].name, admitted_at=stamp(now))]
    record = WaveVersion(
        image=family, version=version, phase=VersionPhase.ROLLING, stage="", stage_index=index
    )
    if before is not None and before.phase is VersionPhase.COMPLETED:
        return before.model_copy(update={"stage": spec.stages[index].name, "stage_index": index})
    culprit = _faulted_by(stages, version, index)
    if culprit is not None:
        return record.model_copy(
            update={
                "phase": VersionPhase.FAULTED,
                "stage": spec.stages[index].name,
                "faulted_by": culprit,
                "waiting_for": f"quarantined by {culprit}; no later stage gets it",
                "stages": entries,
            }
        )
    while True:
        stage = spec.stages[index]
        # A ScaleSet the version is not offered to (another region, excluded) is not awaited.
        members = [m for m in stages.get(index, []) if m.ref in offered_to]
        pending = [(m, why) for m in members if (why := _not_done(m, version)) is not None]
        entry = entries[-1]
        if pending:
            entries[-1] = entry.model_copy(update={"completed_at": None})
            waiting = "; ".join(f"{m.ref} {why}" for m, why in pending)
            return record.model_copy(
                update={
                    "stage": stage.name,
                    "stage_index": index,
                    "waiting_for": _clip(f"stage {stage.name}: {waiting}"),
                    "stages": entries,
                }
            )
        done_at = parse_stamp(entry.completed_at) if entry.completed_at else now
        entries[-1] = entry.model_copy(update={"completed_at": stamp(done_at)})
        soak_ends = done_at + parse_duration(stage.soak_time)
        if index == last:
            return record.model_copy(
                update={
                    "phase": VersionPhase.COMPLETED,
                    "stage": stage.name,
                    "stage_index": index,
                    "stages": entries,
                }
            )
        if members and now < soak_ends:
            return record.model_copy(
                update={
                    "phase": VersionPhase.SOAKING,
                    "stage": stage.name,
                    "stage_index": index,
                    "soak_ends_at": stamp(soak_ends),
                    "waiting_for": f"stage {stage.name} soaking until {stamp(soak_ends)}",
                    "stages": entries,
                }
            )
        # Soaked, or a stage with none of this image's ScaleSets: nothing to wait for.
        index += 1
        entries.append(StageEntry(stage=spec.stages[index].name, admitted_at=stamp(now)))


def _faulted_by(stages: Mapping[int, Sequence[Member]], version: str, index: int) -> str | None:
    for i in range(index + 1):
        for member in stages.get(i, []):
            if version in member.status.faulted_versions:
                return member.ref
    return None


def _not_done(member: Member, version: str) -> str | None:
    """Why the ScaleSet has not completed on the version and stayed healthy; None when it has."""
    status = member.status
    model = status.model_image
    run = status.upgrade_run
    if model is None:
        return "has no model image yet"
    if is_newer(version, model.version):
        if run is not None and not run_finished(run):
            return f"is upgrading to {run.target.version}"
        held = status.out_of_date.holds[0].reason.value if status.out_of_date else None
        return f"is on {model.version}" + (f" ({held})" if held else "")
    if run is not None and not run_finished(run):
        return f"is upgrading to {run.target.version}"
    capacity = member.spec.capacity
    unhealthy = max(0, capacity - status.ready_instances)
    allowed = member.spec.upgrade_policy.rolling_upgrade_policy.max_unhealthy_instance_percent
    if unhealthy * 100 > allowed * capacity:
        return f"is unhealthy ({status.ready_instances}/{capacity} healthy)"
    return None


def _clip(text: str) -> str:
    if len(text) <= _WAITING_TEXT_LIMIT:
        return text
    return text[: _WAITING_TEXT_LIMIT - 3] + "..."


def _summary(records: Sequence[WaveVersion]) -> str | None:
    if not records:
        return None
    newest = records[0]
    where = f"{newest.phase.value} in stage {newest.stage}"
    return f"{newest.image}:{newest.version} {where}"
