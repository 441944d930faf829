"""UpgradeWave and ScaleSet objects, as the API returns them, to what the wave logic reads.

An object the models cannot read is skipped, as in the catalog: the schema rejects such
objects, and one odd object must not stop every pass that reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.models.upgradewave import UpgradeWaveSpec, UpgradeWaveStatus
from scaleset_operator.planner.waves.membership import Wave
from scaleset_operator.planner.waves.progress import Member

Obj = dict[str, Any]
log = logging.getLogger("scaleset_operator.waves")


def to_wave(obj: Obj) -> Wave | None:
    name = str((obj.get("metadata") or {}).get("name") or "")
    try:
        spec = UpgradeWaveSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        log.warning("UpgradeWave %s is unreadable, ignored: %s", name, exc.errors()[0]["msg"])
        return None
    try:
        status = UpgradeWaveStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        # Only the record is lost: the wave starts its versions over, never skips a stage.
        status = UpgradeWaveStatus()
    return Wave(name=name, spec=spec, status=status)


def to_waves(items: Iterable[Obj]) -> tuple[Wave, ...]:
    return tuple(w for w in (to_wave(o) for o in items) if w is not None)


def to_member(obj: Obj) -> Member | None:
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    try:
        spec = ScaleSetSpec.model_validate(obj.get("spec") or {})
        status = ScaleSetStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        return None
    return Member(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        labels=dict(meta.get("labels") or {}),
        spec=spec,
        status=status,
    )
