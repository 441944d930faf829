"""The plain values the state gauges of one scale set report, taken from a persisted status.

Taken once per observation, so that a scrape only copies stored values into gauges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scaleset_operator.models.durations import DurationError, parse_duration
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.planner.timefmt import parse_stamp


@dataclass(frozen=True)
class RunView:
    """The current or last OS upgrade, as its gauges show it."""

    code: str
    image: str
    version: str
    started_by: str
    progress: tuple[int, int, int, int]
    rollback: tuple[int, int, int]
    started: float | None
    last_progress: float | None
    pause_seconds: float


@dataclass(frozen=True)
class ScaleSetSnapshot:
    """The state gauges of one scale set, computed once per observation."""

    capacity: int
    instances: int
    ready: int
    latest_model: int
    protected: int
    by_version: tuple[tuple[str, str, int], ...]
    model: tuple[str, str] | None
    pending_version: str | None
    conditions: tuple[tuple[str, str], ...]
    run: RunView | None


def snapshot_of(
    status: ScaleSetStatus, instances: Sequence[Instance], capacity: int
) -> ScaleSetSnapshot:
    present = [i for i in instances if not i.deleting]
    versions: dict[tuple[str, str], int] = {}
    for inst in present:
        key = _split_urn(inst.image_urn)
        versions[key] = versions.get(key, 0) + 1
    model = status.model_image
    pending = status.pending_upgrade
    return ScaleSetSnapshot(
        capacity=capacity,
        instances=len(present),
        ready=status.ready_instances,
        latest_model=status.latest_model_instances,
        protected=status.protected_instances,
        by_version=tuple((image, version, n) for (image, version), n in sorted(versions.items())),
        model=(model.family, model.version) if model is not None else None,
        pending_version=pending.version if pending is not None else None,
        conditions=tuple((c.type, c.status.lower()) for c in status.conditions),
        run=_run_view(status),
    )


def _run_view(status: ScaleSetStatus) -> RunView | None:
    run = status.upgrade_run
    if run is None:
        return None
    rolling = status.rolling_upgrade
    progress = rolling.progress if rolling is not None else None
    counts = (
        (
            progress.successful_instance_count,
            progress.failed_instance_count,
            progress.in_progress_instance_count,
            progress.pending_instance_count,
        )
        if progress is not None
        else (len(run.succeeded), len(run.failed), 0, 0)
    )
    # Every step of a run leaves a stamp: its start, each batch's start and end, a cancel.
    steps = [
        run.start_time,
        run.batch.started_at if run.batch else None,
        run.last_batch_end,
        run.last_action_time,
        run.end_time,
    ]
    stamps = [s for s in (_unix(x) for x in steps) if s is not None]
    try:
        pause = parse_duration(run.policy.pause_time_between_batches).total_seconds()
    except DurationError:
        pause = 0.0
    return RunView(
        code=run.code.value,
        image=run.target.family,
        version=run.target.version,
        started_by=run.started_by.value,
        progress=counts,
        rollback=(len(run.rolled_back), len(run.rollback_failed), len(run.rolling_back)),
        started=_unix(run.start_time),
        last_progress=max(stamps) if stamps else None,
        pause_seconds=pause,
    )


def _unix(stamp: str | None) -> float | None:
    return parse_stamp(stamp).timestamp() if stamp else None


def _split_urn(urn: str | None) -> tuple[str, str]:
    """`publisher:offer:sku:version` (or `gallery/image:version`) -> (image, version)."""
    if not urn or ":" not in urn:
        return ("", "unknown")
    image, version = urn.rsplit(":", 1)
    return (image, version)
