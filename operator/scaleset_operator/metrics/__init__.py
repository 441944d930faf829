"""Prometheus metrics of scale sets and of the operator itself; nothing here talks to the API.

State gauges come from a scrape-time collector (`collector`, fed by `snapshot`); counters and
histograms from comparing each persisted status with the one before it (`transitions`, pure)
and from the planner's events, recorded by `operator_metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scaleset_operator.metrics.labels import CAUSES, OUTCOMES, cause_of, outcome_of

if TYPE_CHECKING:
    from scaleset_operator.metrics.operator_metrics import (
        OperatorMetrics,
        operator_registry,
        serve,
    )

__all__ = [
    "CAUSES",
    "OUTCOMES",
    "OperatorMetrics",
    "cause_of",
    "operator_registry",
    "outcome_of",
    "serve",
]

_NEEDS_PROMETHEUS = frozenset({"OperatorMetrics", "operator_registry", "serve"})


def __getattr__(name: str) -> Any:
    # Loaded on first use so that the pure modules (labels, definitions, observations,
    # transitions, snapshot) import, and are tested, without prometheus_client.
    if name in _NEEDS_PROMETHEUS:
        from scaleset_operator.metrics import operator_metrics

        return getattr(operator_metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
