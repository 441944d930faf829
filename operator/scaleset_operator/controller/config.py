"""Operator-wide settings, set once by the entry point before kopf starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from scaleset_operator.notifications.delivery import Sink
from scaleset_operator.planner.observed import PlannerSettings


@dataclass
class OperatorConfig:
    kubeconfig: str | None = None
    context: str | None = None
    namespaces: tuple[str, ...] = ()
    upgrade_delay: timedelta = timedelta(seconds=5)
    fail_fast: bool = True
    metrics_port: int | None = 8080
    debounce: float = 0.05
    status_interval: float = 1.0
    gather_while_settling: float = 1.0
    max_threads: int = 16
    leader_elect: bool = False
    lease_namespace: str = "default"
    lease_name: str = "scaleset-operator"
    lease_seconds: float = 15.0
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    notify_sinks: tuple[Sink, ...] = ()
    notify_backoff_cap: float = 60.0


CONFIG = OperatorConfig()
