"""The notifications a persisted ScaleSet or UpgradeWave status implies, each at a stable place
in one order per object.

Pure: status in, facts out; no clock, no I/O. Every fact is derived again from the status on
every pass, so nothing here has to be remembered in memory to survive a restart: what was
already delivered is a `Position`, recorded in the object's own `scaleset.dev/notified`
annotation (see `ledger`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from scaleset_operator.models.status import (
    HistoryEntry,
    RunningStatusCode,
    ScaleSetStatus,
    UpgradeRun,
)
from scaleset_operator.models.upgradewave import UpgradeWaveStatus, WaveVersion
from scaleset_operator.planner.refusal import is_refusal, is_refusal_entry
from scaleset_operator.planner.timefmt import parse_stamp

TYPE_PREFIX = "dev.scaleset.upgrade"


class Kind(StrEnum):
    """CloudEvent `type` of each notification."""

    RUN_STARTED = f"{TYPE_PREFIX}.started"
    RUN_COMPLETED = f"{TYPE_PREFIX}.completed"
    RUN_FAULTED = f"{TYPE_PREFIX}.faulted"
    RUN_CANCELLED = f"{TYPE_PREFIX}.cancelled"
    INSTANCE_ROLLED_BACK = f"{TYPE_PREFIX}.instance.rolledback"
    VERSION_QUARANTINED = f"{TYPE_PREFIX}.version.quarantined"
    # An UpgradeWave's, not a scale set's: a version reached a stage after the first. Derived
    # from the wave's own status (`wave_facts`) at `Phase.WAVE_STAGE`, one fact per stage.
    WAVE_STAGE_ADVANCED = f"{TYPE_PREFIX}.wave.stageadvanced"


class Phase(IntEnum):
    """Order of the facts of one run; a cursor compares (run start, phase, index)."""

    STARTED = 0
    WAVE_STAGE = 1  # a wave's facts only, see `wave_facts`
    ROLLED_BACK = 2
    ENDED = 3
    QUARANTINED = 4


_ENDED = {
    RunningStatusCode.COMPLETED: Kind.RUN_COMPLETED,
    RunningStatusCode.FAULTED: Kind.RUN_FAULTED,
    RunningStatusCode.CANCELLED: Kind.RUN_CANCELLED,
}


@dataclass(frozen=True, order=True)
class Position:
    """Where a fact stands: runs by start time (status stamps sort as text), then phase, then
    the index within the phase (an instance's place in the append-only `rolledBack`)."""

    run: str
    phase: int = Phase.STARTED
    index: int = 0

    def key(self) -> str:
        return f"{self.run}#{self.phase}.{self.index}"

    @classmethod
    def parse(cls, text: str) -> Position | None:
        run, sep, rest = text.partition("#")
        phase, dot, index = rest.partition(".")
        if not (sep and dot and phase.isdigit() and index.isdigit()):
            return None
        return cls(run, int(phase), int(index))


@dataclass(frozen=True)
class Fact:
    """One notification: what happened (`kind`), where it stands, and its data as JSON."""

    kind: Kind
    position: Position
    time: str | None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def critical(self) -> bool:
        """Never dropped from a full queue: a fault is what the sinks exist for."""
        return self.kind is Kind.RUN_FAULTED


def facts_of(status: ScaleSetStatus) -> list[Fact]:
    """Every fact the status holds, in `Position` order.

    The current `upgradeRun` gives the full detail (instances, causes, rollbacks); older runs
    only live on in `osUpgradeHistory`, which keeps their start, end and error.
    """
    runs: dict[str, list[Fact]] = {}
    for entry in status.os_upgrade_history:
        start = entry.running_status.start_time if entry.running_status else None
        if start:
            runs[start] = list(_history_facts(entry, start, status.faulted_versions))
    run = status.upgrade_run
    if run is not None:
        runs[run.start_time] = list(_run_facts(run, status.faulted_versions))
    found = [fact for start in sorted(runs) for fact in runs[start]]
    return sorted(found, key=lambda f: f.position)


def after(facts: list[Fact], cursor: Position | None) -> list[Fact]:
    """The facts past `cursor` (all of them with no cursor)."""
    return [f for f in facts if cursor is None or f.position > cursor]


def last_position(facts: list[Fact]) -> Position:
    """The cursor that counts every fact as delivered; before any run, one below all runs."""
    return facts[-1].position if facts else Position("")


def wave_facts(status: UpgradeWaveStatus) -> list[Fact]:
    """Every stage a version reached after its first, in `Position` order.

    A wave's versions move on concurrently (several images, a fault cleared later), so its
    facts are ordered by when they happened, not by version: the position's run is the instant
    the stage was reached (the entry's `admittedAt`, which the planner never rewrites) with the
    version for a tie, and the index is the stage's place in the version's `stages`. So a
    cursor, one per sink, is "everything up to this instant": a version that advances later
    always sorts after it, whatever version was told last, and the baseline a sink takes on
    first sight of a wave holds back only what had already happened.
    """
    found = [_stage_fact(r, i) for r in status.versions for i in range(1, len(r.stages))]
    return sorted(found, key=lambda f: f.position)


def _stage_fact(record: WaveVersion, index: int) -> Fact:
    came_from, reached = record.stages[index - 1], record.stages[index]
    at = reached.admitted_at
    return Fact(
        Kind.WAVE_STAGE_ADVANCED,
        Position(f"{_instant(at)} {record.image}:{record.version}", Phase.WAVE_STAGE, index),
        at,
        {
            "image": record.image,
            "version": record.version,
            "stage": reached.stage,
            "fromStage": came_from.stage,
            "admittedAt": at,
            "fromStageCompletedAt": came_from.completed_at,
        },
    )


def _instant(text: str) -> str:
    """A stamp that sorts as text: always milliseconds (a whole second's `...:05Z` would sort
    after `...:05.120Z`)."""
    try:
        moment = parse_stamp(text)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _run_facts(run: UpgradeRun, quarantined: list[str]) -> Iterator[Fact]:
    start = run.start_time
    summary = _run_summary(run)
    yield Fact(Kind.RUN_STARTED, Position(start), start, summary)
    undone = run.rollback_of.version if run.rollback_of else None
    if undone is not None and undone in quarantined:
        # A user's rollback holds the version it undoes from its start, not from its end; the
        # fact sorts right after the start, before anything the run does.
        yield Fact(
            Kind.VERSION_QUARANTINED,
            Position(start, Phase.STARTED, 1),
            start,
            {**_scope(run), "version": undone, "reason": "RolledBackByUser"},
        )
    for index, iid in enumerate(run.rolled_back):
        yield Fact(
            Kind.INSTANCE_ROLLED_BACK,
            Position(start, Phase.ROLLED_BACK, index),
            # The run's record keeps no time per instance: the event carries its sending time.
            None,
            {
                **_scope(run),
                "instanceId": iid,
                "cause": run.failure_reasons.get(str(iid), "Unknown"),
                "fromVersion": run.target.version,
                "toVersion": run.previous.version if run.previous else None,
            },
        )
    kind = _ENDED.get(run.code)
    if kind is None:
        return
    end = run.end_time or start
    yield Fact(kind, Position(start, Phase.ENDED), end, {**summary, **_outcome(run)})
    if _quarantines(kind, run.target.version, quarantined, refused=is_refusal(run)):
        yield Fact(
            Kind.VERSION_QUARANTINED,
            Position(start, Phase.QUARANTINED),
            end,
            {**_scope(run), "version": run.target.version},
        )


def _history_facts(entry: HistoryEntry, start: str, quarantined: list[str]) -> Iterator[Fact]:
    """An older run: no instance detail is left but its error's details."""
    target = entry.target_image_reference
    version = target.version if target else None
    by = entry.started_by.value if entry.started_by else None
    base = {"run": {"startTime": start, "startedBy": by}, "targetVersion": version}
    yield Fact(Kind.RUN_STARTED, Position(start), start, base)
    status = entry.running_status
    kind = _ENDED.get(status.code) if status else None
    if kind is None or status is None:
        return
    end = status.end_time or start
    error = entry.error.wire() if entry.error else None
    yield Fact(kind, Position(start, Phase.ENDED), end, {**base, "error": error})
    if version and _quarantines(kind, version, quarantined, refused=is_refusal_entry(entry)):
        yield Fact(
            Kind.VERSION_QUARANTINED,
            Position(start, Phase.QUARANTINED),
            end,
            {**base, "version": version},
        )


def _quarantines(kind: Kind, version: str, quarantined: list[str], *, refused: bool) -> bool:
    # A refused start is no verdict on the version (planner/refusal.py), so nothing is
    # quarantined by it even when an earlier run quarantined the same version.
    return kind is Kind.RUN_FAULTED and not refused and version in quarantined


def _scope(run: UpgradeRun) -> dict[str, Any]:
    return {
        "run": {"startTime": run.start_time, "startedBy": run.started_by.value},
        "targetVersion": run.target.version,
    }


def _run_summary(run: UpgradeRun) -> dict[str, Any]:
    return {
        **_scope(run),
        "targetImage": run.target.urn,
        "previousVersion": run.previous.version if run.previous else None,
        "automaticRollback": run.automatic_rollback,
    }


def _outcome(run: UpgradeRun) -> dict[str, Any]:
    error = run.error or run.stop_reason
    return {
        "code": run.code.value,
        "endTime": run.end_time,
        "cause": error.code if error else None,
        "message": error.message if error else None,
        "succeeded": sorted(run.succeeded),
        "instances": [
            {
                "id": iid,
                "cause": run.failure_reasons.get(str(iid), "Unknown"),
                "outcome": _instance_outcome(run, iid),
            }
            for iid in sorted(run.failed)
        ],
    }


def _instance_outcome(run: UpgradeRun, iid: int) -> str:
    if iid in run.rolled_back:
        return "RolledBack"
    if iid in run.rollback_failed:
        return "RollbackFailed"
    if iid in run.rolling_back:
        return "RollingBack"
    return "LeftOnTarget"
