"""PodDisruptionBudgets as the planner sees them, and the ledger that keeps a pass within them.

An in-place image patch never goes through the Eviction API, so the planner checks the budgets
itself before it takes an instance out of service. Pure: the controller lists the budgets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scaleset_operator.models.instance import Instance


@dataclass(frozen=True)
class SelectorRequirement:
    """One `matchExpressions` entry of a label selector."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        return False  # an operator the API does not know selects nothing


def label_selector_matches(
    match_labels: Mapping[str, str],
    match_expressions: Iterable[SelectorRequirement],
    labels: Mapping[str, str],
) -> bool:
    """A Kubernetes label selector: every matchLabels pair and every expression holds."""
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    return all(req.matches(labels) for req in match_expressions)


@dataclass(frozen=True)
class DisruptionBudget:
    """A policy/v1 PodDisruptionBudget: its selector and what its status allows now.

    `selector is None` is a budget without a selector, which selects no pod (policy/v1);
    an empty selector selects every pod of the namespace.
    """

    name: str
    disruptions_allowed: int
    match_labels: Mapping[str, str] | None = field(default_factory=dict)
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def selects(self, inst: Instance) -> bool:
        if self.match_labels is None:
            return False
        return label_selector_matches(self.match_labels, self.match_expressions, inst.labels)


@dataclass(frozen=True)
class Blocked:
    """Why a member may not start now: the first budget it would overdraw."""

    budget: str


class BudgetLedger:
    """What each budget still allows in this pass.

    A budget's `disruptionsAllowed` may not show yet what this run has just taken out (the
    disruption controller and the kubelet lag behind our patch), so every member of the run
    that is out of service by our doing counts against it again until it settles: safe, at
    the price of starting the next member one pass later.
    """

    def __init__(self, budgets: Iterable[DisruptionBudget], in_flight: Iterable[Instance]) -> None:
        self._budgets = tuple(budgets)
        self._left = {b.name: b.disruptions_allowed for b in self._budgets}
        for inst in in_flight:
            self._take(inst)

    def _take(self, inst: Instance) -> None:
        for budget in self._budgets:
            if budget.selects(inst):
                self._left[budget.name] -= 1

    def check(self, inst: Instance) -> Blocked | None:
        """Blocked when taking `inst` out would overdraw a budget. An instance that is not
        ready is out of service already: a patch takes nothing more out."""
        if not inst.ready:
            return None
        for budget in self._budgets:
            if budget.selects(inst) and self._left[budget.name] < 1:
                return Blocked(budget.name)
        return None

    def take(self, inst: Instance) -> None:
        """`inst` goes out of service in this pass."""
        if inst.ready:
            self._take(inst)
