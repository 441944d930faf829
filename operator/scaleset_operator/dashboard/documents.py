"""The JSON documents the page draws: one line per scale set, and the live view of one.

Pure: API objects (plain dicts), instances, the catalog and the timeline in, dicts out.
A scale set the models cannot read becomes a document with an `error`, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from scaleset_operator.catalog.resolve import matches_reference, replicated_to
from scaleset_operator.dashboard.tiles import state_counts, target_image, tiles_by_zone
from scaleset_operator.dashboard.timeline import Timeline
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import ApiError, HistoryEntry, ScaleSetStatus
from scaleset_operator.models.versions import is_dotted_version, version_key
from scaleset_operator.planner.conditions import UPGRADING, WAITING_FOR_WINDOW

Obj = dict[str, Any]
HISTORY_SHOWN = 5


@dataclass(frozen=True)
class Parsed:
    namespace: str
    name: str
    spec: ScaleSetSpec | None
    status: ScaleSetStatus
    error: str | None


def parse(obj: Obj) -> Parsed:
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    try:
        spec = ScaleSetSpec.model_validate(obj.get("spec") or {})
        status = ScaleSetStatus.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        return Parsed(namespace, name, None, ScaleSetStatus(), _first_problem(exc))
    return Parsed(namespace, name, spec, status, None)


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return ".".join(str(p) for p in first["loc"]) + f": {first['msg']}"


def error_text(e: ApiError | None) -> str | None:
    if e is None or not (e.code or e.message):
        return None
    head = ": ".join(x for x in (e.code, e.message) if x)
    details = "; ".join(": ".join(x for x in (d.target, d.code) if x) for d in e.details or [])
    return f"{head} ({details})" if details else head


def _waiting(status: ScaleSetStatus) -> str | None:
    upgrading = next((c for c in status.conditions if c.type == UPGRADING), None)
    # The operator says here until when a platform upgrade waits for its maintenance window.
    if upgrading is None or upgrading.reason != WAITING_FOR_WINDOW:
        return None
    return upgrading.message or upgrading.reason


def summary(parsed: Parsed) -> Obj:
    """The overview's line: enough to spot which scale set needs a look."""
    status, spec = parsed.status, parsed.spec
    pending = status.pending_upgrade
    return {
        "namespace": parsed.namespace,
        "name": parsed.name,
        "key": f"{parsed.namespace}/{parsed.name}",
        "error": parsed.error,
        "upgradeState": status.upgrade_state,
        "imageVersion": status.current_image_version,
        "capacity": spec.capacity if spec else None,
        "instances": status.capacity,
        "ready": status.ready_instances,
        "latestModel": status.latest_model_instances,
        "pendingUpgrade": (
            {"version": pending.version, "detectedAt": pending.detected_at} if pending else None
        ),
        "waiting": _waiting(status),
        "nextEligible": status.out_of_date.next_eligible_time if status.out_of_date else None,
    }


def _history(entries: Sequence[HistoryEntry]) -> list[Obj]:
    rows = []
    for e in entries[:HISTORY_SHOWN]:
        rs, p, rb, t = e.running_status, e.progress, e.rollback_info, e.target_image_reference
        rows.append(
            {
                "start": rs.start_time if rs else None,
                "end": rs.end_time if rs else None,
                "code": rs.code.value if rs else None,
                "startedBy": e.started_by.value if e.started_by else None,
                "target": t.version if t else None,
                "successful": p.successful_instance_count if p else 0,
                "failed": p.failed_instance_count if p else 0,
                "rolledBack": rb.successfully_rolledback_instance_count if rb else 0,
                "error": error_text(e.error),
            }
        )
    return rows


def catalog_rows(
    spec: ScaleSetSpec, status: ScaleSetStatus, catalog: Sequence[CatalogEntry]
) -> list[Obj]:
    """The versions of the scale set's image, newest first, marked as the page shows them."""
    quarantined = set(status.faulted_versions)
    target = target_image(status)
    run = status.upgrade_run
    ours = [
        e
        for e in catalog
        if matches_reference(e, spec.image_reference) and is_dotted_version(e.spec.version)
    ]
    ours.sort(key=lambda e: (version_key(e.spec.version), e.name), reverse=True)
    return [
        {
            "name": e.name,
            "version": e.spec.version,
            "image": e.spec.image,
            "quarantined": e.spec.version in quarantined,
            "excludedFromLatest": e.spec.exclude_from_latest,
            "inRegion": replicated_to(e, spec.location),
            "current": status.current_image_version == e.spec.version,
            "target": bool(
                run and target and run.target.version == e.spec.version == target.version
            ),
            "published": e.published_at(),
        }
        for e in ours
    ]


def detail(
    parsed: Parsed,
    instances: Sequence[Instance],
    catalog: Sequence[CatalogEntry],
    timeline: Timeline | None,
) -> Obj:
    """Everything the live view of one scale set draws."""
    doc = summary(parsed)
    status, spec = parsed.status, parsed.spec
    zones = tiles_by_zone(instances, status)
    tiles = [t for zone in zones.values() for t in zone]
    ru = status.rolling_upgrade
    rs = ru.running_status if ru else None
    progress = ru.progress if ru else None
    run = status.upgrade_run
    doc.update(
        {
            "zones": [{"zone": z, "tiles": [t.wire() for t in ts]} for z, ts in zones.items()],
            "counts": state_counts(tiles),
            "rollingUpgrade": {
                "code": rs.code.value if rs else None,
                "startTime": rs.start_time if rs else None,
                "lastAction": rs.last_action if rs else None,
                "lastActionTime": rs.last_action_time if rs else None,
                "error": error_text(ru.error if ru else None),
                "target": run.target.version if run else None,
                "previous": run.previous.version if run and run.previous else None,
            },
            "progress": (progress.wire() if progress else None),
            "batch": (
                {
                    "number": run.batch.number,
                    "ids": run.batch.instance_ids,
                    "zone": run.batch.zone,
                    "startedAt": run.batch.started_at,
                }
                if run and run.batch
                else None
            ),
            "batchesDone": run.batches_done if run else 0,
            "timeline": timeline.wire() if timeline else None,
            "history": _history(status.os_upgrade_history),
            "catalog": catalog_rows(spec, status, catalog) if spec else [],
            "quarantined": list(status.faulted_versions),
            "handledRequests": list(status.handled_requests),
        }
    )
    return doc
