"""PodDisruptionBudgets read back as the planner's plain `DisruptionBudget`s.

Forgiving like reading pods: a budget the disruption controller has not looked at yet (no
status) allows nothing, so an upgrade waits for it rather than overrun it.
"""

from __future__ import annotations

from typing import Any

from scaleset_operator.planner.disruption import DisruptionBudget, SelectorRequirement

Obj = dict[str, Any]


def to_budget(pdb: Obj) -> DisruptionBudget:
    meta = pdb.get("metadata") or {}
    selector = (pdb.get("spec") or {}).get("selector")
    status = pdb.get("status") or {}
    try:
        allowed = int(status.get("disruptionsAllowed") or 0)
    except (TypeError, ValueError):
        allowed = 0
    if not isinstance(selector, dict):
        # policy/v1: a budget without a selector selects no pod.
        return DisruptionBudget(str(meta.get("name") or ""), allowed, match_labels=None)
    labels = selector.get("matchLabels") or {}
    requirements = tuple(
        SelectorRequirement(
            key=str(e.get("key") or ""),
            operator=str(e.get("operator") or ""),
            values=tuple(str(v) for v in e.get("values") or ()),
        )
        for e in selector.get("matchExpressions") or ()
        if isinstance(e, dict)
    )
    return DisruptionBudget(
        name=str(meta.get("name") or ""),
        disruptions_allowed=allowed,
        match_labels={str(k): str(v) for k, v in labels.items()},
        match_expressions=requirements,
    )
