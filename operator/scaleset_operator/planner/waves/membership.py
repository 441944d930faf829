"""Which wave and stage govern a ScaleSet: one answer, computed alike by the wave's own pass
and by every ScaleSet's pass, so that both sides agree without asking each other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scaleset_operator.models.upgradewave import LabelSelector, UpgradeWaveSpec, UpgradeWaveStatus
from scaleset_operator.planner.disruption import SelectorRequirement, label_selector_matches


@dataclass(frozen=True)
class Wave:
    """An UpgradeWave as read from the API."""

    name: str
    spec: UpgradeWaveSpec
    status: UpgradeWaveStatus


@dataclass(frozen=True)
class Seat:
    """A ScaleSet's place: the wave that governs it and its stage there."""

    wave: Wave
    stage_index: int

    @property
    def stage(self) -> str:
        return self.wave.spec.stages[self.stage_index].name


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    requirements = (
        SelectorRequirement(r.key, r.operator.value, tuple(r.values))
        for r in selector.match_expressions
    )
    return label_selector_matches(selector.match_labels, requirements, labels)


def stage_of(spec: UpgradeWaveSpec, labels: Mapping[str, str]) -> int | None:
    """The first stage of the wave that selects these labels."""
    for index, stage in enumerate(spec.stages):
        if selects(stage.selector, labels):
            return index
    return None


def seat_of(waves: Sequence[Wave], labels: Mapping[str, str]) -> Seat | None:
    """The governing wave is the first by name that selects the ScaleSet: a rule anyone can
    predict from `kubectl get upgradewaves`, and one that no order of watch events changes."""
    for wave in sorted(waves, key=lambda w: w.name):
        index = stage_of(wave.spec, labels)
        if index is not None:
            return Seat(wave, index)
    return None
