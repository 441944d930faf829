"""Spacing out status writes that only record progress, and the passes that would.

While a batch runs, every pod of it flips not-ready and back, each flip waking a pass whose
only news is a count (`readyInstances`, the Ready condition, the progress counters) or one
more instance recorded as upgraded. The planner recomputes all of that from the pods on every
pass, so holding it back for a moment loses nothing on a crash, and such a write needs no fresh
LIST of the pods either; writing each one is most of the status traffic of an upgrade. Anything
else (a batch starting or ending, a failure, a rollback, history, the model, other conditions)
is written at once, before the pass acts. For the same reason a pass may gather pod events for
a moment while its batch settles.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.planner import conditions as cond

SUMMARY_FIELDS = frozenset(
    {"capacity", "ready_instances", "latest_model_instances", "protected_instances"}
)
DEFAULT_INTERVAL = 1.0


def changed_fields(old: ScaleSetStatus, new: ScaleSetStatus) -> list[str]:
    return [f for f in ScaleSetStatus.model_fields if getattr(old, f) != getattr(new, f)]


def _without_progress(status: ScaleSetStatus, succeeded_before: int) -> ScaleSetStatus:
    """`status` with what `only_progress_changed` lets differ set to fixed values."""
    conditions = [
        c.model_copy(update={"message": ""}) if c.type == cond.UPGRADING else c
        for c in status.conditions
        if c.type != cond.READY
    ]
    rolling = status.rolling_upgrade
    if rolling is not None:
        rolling = rolling.model_copy(update={"progress": None})
    history = [h.model_copy(update={"progress": None}) for h in status.os_upgrade_history]
    run = status.upgrade_run
    if run is not None:
        run = run.model_copy(update={"succeeded": run.succeeded[:succeeded_before]})
    return status.model_copy(
        update={
            **{f: 0 for f in SUMMARY_FIELDS},
            "conditions": conditions,
            "rolling_upgrade": rolling,
            "os_upgrade_history": history,
            "upgrade_run": run,
        }
    )


def only_progress_changed(old: ScaleSetStatus, new: ScaleSetStatus) -> bool:
    """True when `new` differs from `old` only in what a pass observes as it goes: the counts,
    the Ready condition, progress counters and instances appended to the
    run's `succeeded` list (the Upgrading condition's message counts them)."""
    if new == old:
        return False
    before = len(old.upgrade_run.succeeded) if old.upgrade_run is not None else 0
    return _without_progress(old, before) == _without_progress(new, before)


class StatusPacer:
    """Remembers when each scale set's status was last written (in memory: losing it on a
    restart only means one write comes early)."""

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}

    def hold_for(self, key: Hashable) -> float:
        """Seconds a progress-only write of `key` should still wait; 0 when it may go now."""
        last = self._last.get(key)
        if last is None:
            return 0.0
        return max(0.0, last + self.interval - self._clock())

    def hold_update(
        self, key: Hashable, old: ScaleSetStatus, new: ScaleSetStatus, acting: bool
    ) -> float:
        """Seconds to hold back writing `new` over `old`: 0 unless the pass does not act and
        only progress changed, written less than `interval` ago."""
        if acting or not only_progress_changed(old, new):
            return 0.0
        return self.hold_for(key)

    def wrote(self, key: Hashable) -> None:
        self._last[key] = self._clock()

    def forget(self, key: Hashable) -> None:
        self._last.pop(key, None)


# How long a pass gathers watch events while its batch has members still to settle: each of
# them settling changes only progress counters, so passes per batch drop severalfold (the
# operator's CPU per upgraded instance with them). The worker ends the gathering at once when
# the watch has reported every awaited member Ready (`Workers.pod_changed`), so the pass that
# closes the batch is not held back by it. As long as the pacer's interval: progress is not
# written more often than that anyway.
GATHER_WHILE_SETTLING = DEFAULT_INTERVAL
