"""What a wave lets a platform upgrade of one ScaleSet target: the versions that reached its
stage and are not faulted. Read from the wave's persisted status only, so that a ScaleSet never
gets a version on the strength of something not yet on record."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from scaleset_operator.models.upgradewave import VersionPhase
from scaleset_operator.planner.timefmt import parse_stamp
from scaleset_operator.planner.waves.membership import Wave, seat_of


@dataclass(frozen=True)
class WaveGate:
    """The wave's say over one ScaleSet's platform upgrades, for one image family."""

    wave: str
    stage: str
    stage_index: int
    admitted: frozenset[str] = frozenset()
    faulted: frozenset[str] = frozenset()
    # Versions soaking in the stage just before this one: when they may come.
    soak_ends: Mapping[str, datetime] = field(default_factory=dict)

    def allows(self, version: str) -> bool:
        if version in self.faulted:
            return False
        return self.stage_index == 0 or version in self.admitted


def gate_for(waves: Sequence[Wave], labels: Mapping[str, str], family: str) -> WaveGate | None:
    """None when no wave selects the ScaleSet: it upgrades as if waves did not exist."""
    seat = seat_of(waves, labels)
    if seat is None:
        return None
    admitted: set[str] = set()
    faulted: set[str] = set()
    soak_ends: dict[str, datetime] = {}
    for record in seat.wave.status.versions:
        if record.image != family:
            continue
        if record.phase is VersionPhase.FAULTED:
            faulted.add(record.version)
        elif record.stage_index >= seat.stage_index:
            admitted.add(record.version)
        elif record.stage_index == seat.stage_index - 1 and record.soak_ends_at:
            # Unreadable: the version waits without a known end.
            with contextlib.suppress(ValueError):
                soak_ends[record.version] = parse_stamp(record.soak_ends_at)
    return WaveGate(
        wave=seat.wave.name,
        stage=seat.stage,
        stage_index=seat.stage_index,
        admitted=frozenset(admitted),
        faulted=frozenset(faulted),
        soak_ends=soak_ends,
    )
