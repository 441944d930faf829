"""What the transition logic asks to be recorded: small immutable values naming a metric of
`definitions` and the labels of one of its series.

Pure, like `transitions`; `operator_metrics` applies them to prometheus_client's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaleset_operator.metrics import definitions as metric
from scaleset_operator.metrics.labels import CAUSES, OUTCOMES
from scaleset_operator.models.status import UpgradeRun

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CounterIncrement:
    metric: str
    labels: Labels
    amount: float = 1.0


@dataclass(frozen=True)
class HistogramObservation:
    metric: str
    labels: Labels
    value: float


@dataclass(frozen=True)
class SeriesAtZero:
    """A series to create before anything is counted in it: a counter born at 1 shows no
    `increase()`, so the first fault or rollback of a scale set would never reach a rate or an
    alert."""

    metric: str
    labels: Labels


Observation = CounterIncrement | HistogramObservation | SeriesAtZero


def scaleset_labels(namespace: str, name: str) -> Labels:
    return (("namespace", namespace), ("scaleset", name))


def version_labels(run: UpgradeRun) -> Labels:
    """Per-version series are labelled with the run's target, its final one after a retarget."""
    return (("image", run.target.family), ("version", run.target.version))


def new_scaleset_series(namespace: str, name: str) -> list[Observation]:
    """The series of a scale set that exist from its first observation on."""
    here = scaleset_labels(namespace, name)
    found: list[Observation] = []
    for outcome in OUTCOMES:
        found.append(SeriesAtZero(metric.UPGRADES, (*here, ("outcome", outcome))))
        found.append(SeriesAtZero(metric.UPGRADE_DURATION, (*here, ("outcome", outcome))))
    found.append(SeriesAtZero(metric.BATCHES, here))
    found.append(SeriesAtZero(metric.BATCH_DURATION, here))
    for cause in CAUSES:
        found.append(SeriesAtZero(metric.ROLLBACKS, (*here, ("reason", cause))))
        found.append(SeriesAtZero(metric.INSTANCE_FAILURES, (*here, ("cause", cause))))
    found.append(SeriesAtZero(metric.PUBLISH_TO_FIRST_PATCH, here))
    found.append(SeriesAtZero(metric.RECONCILES, here))
    found.append(SeriesAtZero(metric.RECONCILE_DURATION, here))
    return found


def new_version_series(run: UpgradeRun) -> list[Observation]:
    """The series of the version a run goes to, from the moment the run is seen."""
    version = version_labels(run)
    found: list[Observation] = []
    for outcome in OUTCOMES:
        found.append(SeriesAtZero(metric.VERSION_UPGRADES, (*version, ("outcome", outcome))))
        found.append(
            SeriesAtZero(metric.VERSION_UPGRADE_DURATION, (*version, ("outcome", outcome)))
        )
    found.append(SeriesAtZero(metric.TIME_TO_REVERT, version))
    return found
