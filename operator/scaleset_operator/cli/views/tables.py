"""The table views of scale sets, instances and upgrades, and the per-instance facts behind
them (health, latestModelApplied). Pure: models and `now` in, text or plain data out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scaleset_operator.cli.views.output import Cell, key_values, table
from scaleset_operator.models.durations import DurationError, parse_duration
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import (
    ApiError,
    ApiErrorBase,
    HistoryEntry,
    OutOfDateHold,
    Progress,
    RollingUpgradeStatus,
    ScaleSetStatus,
    TargetImageReference,
)
from scaleset_operator.planner.conditions import (
    UPGRADING,
    WAITING_FOR_DISRUPTION_BUDGET,
    WAITING_FOR_WINDOW,
)
from scaleset_operator.planner.health import verdict
from scaleset_operator.planner.timefmt import parse_stamp


def progress_text(p: Progress | None) -> str | None:
    if p is None:
        return None
    return (
        f"{p.successful_instance_count} successful, {p.failed_instance_count} failed, "
        f"{p.in_progress_instance_count} in progress, {p.pending_instance_count} pending"
    )


def error_text(e: ApiError | None) -> str | None:
    if e is None or not (e.code or e.message):
        return None
    head = ": ".join(x for x in (e.code, e.message) if x)
    details = "; ".join(_detail_text(d) for d in e.details or [])
    return f"{head} ({details})" if details else head


def _detail_text(d: ApiErrorBase) -> str:
    # The operator's details name the instance in `target`; a message that only repeats
    # the code adds nothing.
    parts = [d.target, d.code, d.message if d.message != d.code else None]
    return ": ".join(x for x in parts if x)


def target_text(t: TargetImageReference | None) -> str | None:
    if t is None:
        return None
    if t.id:
        return t.id
    return ":".join(x or "?" for x in (t.publisher, t.offer, t.sku, t.exact_version or t.version))


def waiting_text(status: ScaleSetStatus) -> str | None:
    """What holds a running upgrade (a maintenance window, a disruption budget), as the
    operator put it in the Upgrading condition; None when nothing does."""
    upgrading = next((c for c in status.conditions if c.type == UPGRADING), None)
    if upgrading is None or upgrading.reason not in (
        WAITING_FOR_WINDOW,
        WAITING_FOR_DISRUPTION_BUDGET,
    ):
        return None
    return upgrading.message


def latest_table(
    name: str, location: str, ru: RollingUpgradeStatus, waiting: str | None = None
) -> str:
    rs = ru.running_status
    last_action = f"{rs.last_action} at {rs.last_action_time}" if rs and rs.last_action else None
    policy = ru.policy
    policy_text = (
        f"batch {policy.max_batch_instance_percent}%, unhealthy "
        f"{policy.max_unhealthy_instance_percent}%, unhealthy upgraded "
        f"{policy.max_unhealthy_upgraded_instance_percent}%, pause "
        f"{policy.pause_time_between_batches}"
        if policy
        else None
    )
    return key_values(
        [
            ("Scale set", name),
            ("Location", location),
            ("Status", rs.code.value if rs else None),
            ("Waiting", waiting),
            ("Started", rs.start_time if rs else None),
            ("Last action", last_action),
            ("Progress", progress_text(ru.progress)),
            ("Policy", policy_text),
            ("Error", error_text(ru.error)),
        ]
    )


def history_table(entries: Sequence[HistoryEntry]) -> str:
    if not entries:
        return "No OS upgrade history.\n"
    rows = []
    for e in entries:
        rs, p, rb = e.running_status, e.progress, e.rollback_info
        rows.append(
            [
                rs.start_time if rs else None,
                rs.end_time if rs else None,
                rs.code.value if rs else None,
                e.started_by.value if e.started_by else None,
                target_text(e.target_image_reference),
                p.successful_instance_count if p else None,
                p.failed_instance_count if p else None,
                rb.successfully_rolledback_instance_count if rb else None,
                error_text(e.error),
            ]
        )
    headers = ["Start", "End", "Status", "By", "Target", "OK", "Failed", "Rolled-back", "Error"]
    return table(headers, rows)


@dataclass(frozen=True)
class InstanceRow:
    instance_id: int
    pod: str
    zone: str | None
    image_version: str | None
    health: str
    health_reason: str
    latest_model_applied: bool
    protected: bool
    # From status.outOfDate: what holds the instance back and until when; None when current.
    held_by: str | None = None
    eligible_at: str | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "instanceId": str(self.instance_id),
            "pod": self.pod,
            "zone": self.zone,
            "imageVersion": self.image_version,
            "health": self.health,
            "healthReason": self.health_reason,
            "latestModelApplied": self.latest_model_applied,
            "protectFromScaleSetActions": self.protected,
            "heldBy": self.held_by,
            "eligibleAt": self.eligible_at,
        }


def latest_model_applied(inst: Instance, status: ScaleSetStatus) -> bool:
    """Runs the current model: its template hash and its image both match the status."""
    model = status.model_image
    return (
        model is not None
        and status.model_hash is not None
        and inst.model_hash == status.model_hash
        and inst.image_urn == model.urn
    )


def instance_row(
    inst: Instance, spec: ScaleSetSpec, status: ScaleSetStatus, now: datetime
) -> InstanceRow:
    try:
        grace = parse_duration(spec.health_probe.grace_period)
    except DurationError:
        grace = parse_duration("PT0S")
    # The grace period runs from the instance's (re)start, as the operator counts it.
    started = inst.upgrade.started_at if inst.upgrade else inst.created_at
    v = verdict(
        inst,
        spec.health_probe,
        now,
        since=parse_stamp(started) if started else None,
        grace=grace,
    )
    hold = _hold_of(inst.instance_id, status)
    return InstanceRow(
        instance_id=inst.instance_id,
        pod=inst.name,
        zone=inst.zone,
        image_version=inst.image_urn.rsplit(":", 1)[-1] if inst.image_urn else None,
        health=v.state.value,
        health_reason=v.reason,
        latest_model_applied=latest_model_applied(inst, status),
        protected=inst.protected,
        held_by=hold.reason.value if hold is not None else None,
        eligible_at=hold.until if hold is not None else None,
    )


def _hold_of(instance_id: int, status: ScaleSetStatus) -> OutOfDateHold | None:
    found = status.out_of_date
    holds = found.holds if found is not None else []
    return next((h for h in holds if instance_id in h.instance_ids), None)


def instances_table(rows: Sequence[InstanceRow]) -> str:
    if not rows:
        return "No instances.\n"
    headers = ["Id", "Pod", "Zone", "Image-Version", "Health", "Latest-Model", "Protected"]
    cells: list[list[Cell]] = [
        [
            r.instance_id,
            r.pod,
            r.zone,
            r.image_version,
            r.health if r.health == "Healthy" else f"{r.health} ({r.health_reason})",
            r.latest_model_applied,
            r.protected,
        ]
        for r in rows
    ]
    if any(r.held_by for r in rows):
        # Only when something is held, so the usual view (and scripts reading it) stays as is.
        headers += ["Held-By", "Eligible"]
        for row, r in zip(cells, rows, strict=True):
            row += [r.held_by, r.eligible_at]
    return table(headers, cells)


def scaleset_summary(name: str, namespace: str, spec: ScaleSetSpec, status: ScaleSetStatus) -> str:
    auto = spec.upgrade_policy.automatic_os_upgrade_policy
    ru = status.rolling_upgrade
    rs = ru.running_status if ru else None
    upgrade = f"{rs.code.value} (started {rs.start_time})" if rs else "none yet"
    conditions = ", ".join(f"{c.type}={c.status} ({c.reason})" for c in status.conditions)
    return key_values(
        [
            ("Name", name),
            ("Namespace", namespace),
            ("Location", spec.location),
            (
                "Capacity",
                f"{spec.capacity} (ready {status.ready_instances}, latest model "
                f"{status.latest_model_instances}, protected {status.protected_instances})",
            ),
            ("Image reference", spec.image_reference.describe()),
            ("Model image", status.model_image.urn if status.model_image else None),
            ("Upgrade mode", spec.upgrade_policy.mode.value),
            (
                "Automatic OS upgrade",
                ("enabled" if auto.enable_automatic_os_upgrade else "disabled")
                + (", automatic rollback off" if auto.disable_automatic_rollback else ""),
            ),
            ("Rolling upgrade", upgrade),
            ("Out of date", _out_of_date_text(status)),
            ("Conditions", conditions or None),
        ]
    )


def _out_of_date_text(status: ScaleSetStatus) -> str | None:
    found = status.out_of_date
    if found is None:
        return None
    reasons = ", ".join(f"{h.reason.value} {len(h.instance_ids)}" for h in found.holds)
    eligible = found.next_eligible_time or "not known"
    return f"{found.count} ({reasons}); next eligible {eligible}"


def scaleset_document(
    name: str,
    namespace: str,
    spec: ScaleSetSpec,
    status: ScaleSetStatus,
    rows: Sequence[InstanceRow],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "location": spec.location,
        "capacity": spec.capacity,
        "imageReference": spec.image_reference.wire(),
        "upgradePolicy": spec.upgrade_policy.wire(),
    }
    if status.model_image is not None:
        doc["modelImage"] = status.model_image.urn
    if status.rolling_upgrade is not None:
        doc["rollingUpgrade"] = status.rolling_upgrade.wire()
    if status.out_of_date is not None:
        doc["outOfDate"] = status.out_of_date.wire()
    doc["conditions"] = [c.wire() for c in status.conditions]
    doc["instances"] = [{k: v for k, v in r.wire().items() if v is not None} for r in rows]
    return doc
