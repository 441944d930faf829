"""The timeline of an upgrade run as the dashboard saw it: batches, pauses, rollbacks, the end.

Status keeps only the batch in flight and a count of finished ones, so the dashboard builds
the timeline itself from every status it observes. Pure: the previous timeline, a status and
the observation time in, the next timeline out. Batches that ended before the dashboard
started are known only by their count (`missed_batches`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from scaleset_operator.models.status import ScaleSetStatus, UpgradeRun


@dataclass(frozen=True)
class BatchSpan:
    number: int
    instance_ids: tuple[int, ...]
    zone: str | None
    started_at: str
    ended_at: str | None = None
    failed: tuple[int, ...] = ()

    def wire(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "ids": list(self.instance_ids),
            "zone": self.zone,
            "start": self.started_at,
            "end": self.ended_at,
            "failed": list(self.failed),
        }


@dataclass(frozen=True)
class RollbackMark:
    at: str
    instance_ids: tuple[int, ...]


@dataclass(frozen=True)
class Timeline:
    run_start: str
    target_version: str
    started_by: str
    missed_batches: int
    pause: str
    batches: tuple[BatchSpan, ...] = ()
    rollbacks: tuple[RollbackMark, ...] = ()
    cancelled_at: str | None = None
    end_time: str | None = None
    code: str = "RollingForward"
    seen_back: frozenset[int] = field(default_factory=frozenset)

    def wire(self) -> dict[str, Any]:
        return {
            "start": self.run_start,
            "end": self.end_time,
            "code": self.code,
            "target": self.target_version,
            "startedBy": self.started_by,
            "missedBatches": self.missed_batches,
            "pauseTimeBetweenBatches": self.pause,
            "batches": [b.wire() for b in self.batches],
            "rollbacks": [{"at": r.at, "ids": list(r.instance_ids)} for r in self.rollbacks],
            "cancelledAt": self.cancelled_at,
        }


def _fresh(run: UpgradeRun) -> Timeline:
    return Timeline(
        run_start=run.start_time,
        target_version=run.target.version,
        started_by=run.started_by.value,
        missed_batches=run.batches_done,
        pause=run.policy.pause_time_between_batches,
    )


def _close(span: BatchSpan, at: str) -> BatchSpan:
    return span if span.ended_at is not None else replace(span, ended_at=at)


def _batches(tl: Timeline, run: UpgradeRun, now: str) -> tuple[BatchSpan, ...]:
    spans = list(tl.batches)
    current = run.batch
    if current is not None and not any(s.number == current.number for s in spans):
        # The batch before it ended when this one's pause began, or at the latest now.
        spans = [_close(s, run.last_batch_end or current.started_at) for s in spans]
        spans.append(
            BatchSpan(
                number=current.number,
                instance_ids=tuple(current.instance_ids),
                zone=current.zone,
                started_at=current.started_at,
            )
        )
    elif current is None:
        spans = [_close(s, run.last_batch_end or run.end_time or now) for s in spans]
    failed = set(run.failed)
    return tuple(replace(s, failed=tuple(i for i in s.instance_ids if i in failed)) for s in spans)


def advance(previous: Timeline | None, status: ScaleSetStatus, now: str) -> Timeline | None:
    """The timeline after observing `status` at `now` (RFC 3339)."""
    run = status.upgrade_run
    if run is None:
        return previous
    tl = previous
    if tl is None or tl.run_start != run.start_time:
        tl = _fresh(run)
    back = set(run.rolling_back) | set(run.rolled_back) | set(run.rollback_failed)
    new_back = tuple(sorted(back - tl.seen_back))
    rollbacks = tl.rollbacks + ((RollbackMark(now, new_back),) if new_back else ())
    return replace(
        tl,
        batches=_batches(tl, run, now),
        rollbacks=rollbacks,
        seen_back=tl.seen_back | frozenset(new_back),
        cancelled_at=run.last_action_time if run.last_action == "Cancel" else None,
        end_time=run.end_time,
        code=run.code.value,
    )
