"""One helper for status conditions: `lastTransitionTime` moves only when the status flips."""

from __future__ import annotations

from scaleset_operator.models.status import Condition

READY = "Ready"
IMAGE_RESOLVED = "ImageResolved"
UPGRADING = "Upgrading"
UPGRADE_FAULTED = "UpgradeFaulted"

# Reasons that more than one module reads.
WAITING_FOR_WINDOW = "WaitingForMaintenanceWindow"
WAITING_FOR_DISRUPTION_BUDGET = "WaitingForDisruptionBudget"


def set_condition(
    existing: list[Condition],
    *,
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Condition]:
    text = "Unknown" if status is None else ("True" if status else "False")
    old = next((c for c in existing if c.type == type_), None)
    moved = old is None or old.status != text
    fresh = Condition(
        type=type_,
        status=text,
        reason=reason,
        message=message,
        last_transition_time=now if moved or old is None else old.last_transition_time,
        observed_generation=generation,
    )
    return [fresh if c.type == type_ else c for c in existing] if old else [*existing, fresh]
