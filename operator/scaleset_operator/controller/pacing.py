"""Spacing out status writes that only refresh counts.

While a batch starts, every pod of it flips not-ready and back, each flip waking a pass whose
only news is `readyInstances` and the Ready condition. Those are recomputed from the pods on
every pass, so holding them back for a moment loses nothing on a crash; writing each one is
most of the status traffic of a small scale set. Anything else (the upgrade run, history,
the model, other conditions) is written at once, before the pass acts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.planner import conditions as cond

SUMMARY_FIELDS = frozenset(
    {"capacity", "ready_instances", "latest_model_instances", "protected_instances"}
)
SUMMARY_CONDITIONS = frozenset({cond.READY})
DEFAULT_INTERVAL = 1.0


def changed_fields(old: ScaleSetStatus, new: ScaleSetStatus) -> list[str]:
    return [f for f in ScaleSetStatus.model_fields if getattr(old, f) != getattr(new, f)]


def only_counts_changed(old: ScaleSetStatus, new: ScaleSetStatus) -> bool:
    """True when `new` differs from `old` in derived counts (and the Ready condition) alone."""
    changed = set(changed_fields(old, new))
    if "conditions" in changed:
        before = {c.type: c for c in old.conditions}
        after = {c.type: c for c in new.conditions}
        if before.keys() != after.keys():
            return False
        if any(before[t] != after[t] for t in after if t not in SUMMARY_CONDITIONS):
            return False
        changed.discard("conditions")
    return bool(changed) and changed <= SUMMARY_FIELDS


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
        """Seconds a counts-only write of `key` should still wait; 0 when it may go now."""
        last = self._last.get(key)
        if last is None:
            return 0.0
        return max(0.0, last + self.interval - self._clock())

    def hold_update(
        self, key: Hashable, old: ScaleSetStatus, new: ScaleSetStatus, acting: bool
    ) -> float:
        """Seconds to hold back writing `new` over `old`: 0 unless the pass does not act and
        only counts changed, written less than `interval` ago."""
        if acting or new == old or not only_counts_changed(old, new):
            return 0.0
        return self.hold_for(key)

    def wrote(self, key: Hashable) -> None:
        self._last[key] = self._clock()

    def forget(self, key: Hashable) -> None:
        self._last.pop(key, None)
