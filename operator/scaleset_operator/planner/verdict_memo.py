"""Health verdicts kept from one pass to the next.

A pass judges every instance, and most instances are the same objects as in the previous pass
(the pod cache reuses an instance until its pod changes). A verdict depends on the instance, the
health source, when the instance was created and whether its grace period still runs, and on
the clock only through that last one; so a verdict found once holds for as long as that instance
object lives, under the same source and the same side of its grace period. Keeping them is
memoisation only: a plan is the same with or without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import HealthProbe, HealthSource
from scaleset_operator.planner.health import HealthVerdict, verdict
from scaleset_operator.planner.instances import creation_time


@dataclass
class _Entry:
    instance: Instance
    since: datetime | None
    found: dict[tuple[HealthSource, bool], HealthVerdict] = field(default_factory=dict)


class VerdictMemo:
    """The verdicts of one scale set's instances, judged from their creation. Keyed by object
    identity, and each entry holds its instance, so an id is never mistaken for another's."""

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}

    def judge(
        self, inst: Instance, probe: HealthProbe, now: datetime, grace: timedelta
    ) -> HealthVerdict:
        entry = self._entries.get(id(inst))
        if entry is None or entry.instance is not inst:
            entry = _Entry(inst, creation_time(inst))
            self._entries[id(inst)] = entry
        in_grace = entry.since is not None and now < entry.since + grace
        key = (probe.source, in_grace)
        found = entry.found.get(key)
        if found is None:
            found = verdict(inst, probe, now, since=entry.since, grace=grace)
            entry.found[key] = found
        return found

    def keep_only(self, instances: Iterable[Instance]) -> None:
        """Forgets every instance but these (those of the latest pass)."""
        entries = self._entries
        kept = {}
        for inst in instances:
            entry = entries.get(id(inst))
            if entry is not None and entry.instance is inst:
                kept[id(inst)] = entry
        self._entries = kept

    def __len__(self) -> int:
        return len(self._entries)
