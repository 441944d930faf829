"""One pass of one UpgradeWave: read its ScaleSets' statuses, advance each version's record,
write the status. The ScaleSets read that status (never this pass's memory) to know what their
stage may get, so a crash anywhere here loses nothing but a pass."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from scaleset_operator.catalog.objects import catalog_entries
from scaleset_operator.controller.reconcile import Outcome
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import ConflictError, NotFoundError
from scaleset_operator.k8s.waves import to_member, to_wave, to_waves
from scaleset_operator.models.upgradewave import UpgradeWaveStatus, WaveVersion
from scaleset_operator.planner.waves.progress import plan_wave

Obj = dict[str, Any]
log = logging.getLogger("scaleset_operator.waves")


class WaveNotificationSink(Protocol):
    def offer_wave(self, obj: Obj, status: UpgradeWaveStatus) -> None: ...


def reconcile_wave(
    kube: KubeClient,
    name: str,
    namespaces: Sequence[str],
    notifier: WaveNotificationSink | None = None,
) -> Outcome:
    try:
        obj = kube.get_wave(name)
    except NotFoundError:
        return Outcome(None, gone=True)
    wave = to_wave(obj)
    if wave is None:
        return Outcome(None)
    # The others only decide which ScaleSets are this wave's; this one is read fresh.
    waves = [w for w in to_waves(kube.list_waves()) if w.name != name] + [wave]
    members = [m for m in (to_member(o) for o in kube.list_scalesets(namespaces)) if m]
    now = datetime.now(UTC)
    result = plan_wave(
        wave,
        obj["metadata"].get("generation"),
        members,
        waves,
        catalog_entries(kube.list_catalog()),
        now,
    )
    persisted = wave.status
    if result.status != wave.status:
        try:
            obj = {**obj, **kube.replace_wave_status(obj, result.status.wire())}
        except ConflictError:
            return Outcome(0.05)
        persisted = result.status
        _log_changes(name, wave.status.versions, result.status.versions)
    if notifier is not None:
        _notify(notifier, obj, persisted)
    if result.wake_at is None:
        return Outcome(None)
    return Outcome(max(0.05, (result.wake_at - now).total_seconds()))


def _notify(notifier: WaveNotificationSink, obj: Obj, persisted: UpgradeWaveStatus) -> None:
    """Only what is in the API, as for a scale set (reconcile._notify); unchanged statuses
    too, since the notifier drops what it already has. A notifier bug must not stop waves."""
    try:
        notifier.offer_wave(obj, persisted)
    except Exception:
        log.exception("notifications of wave %s not queued", obj["metadata"]["name"])


def _log_changes(wave: str, before: Sequence[WaveVersion], after: Sequence[WaveVersion]) -> None:
    old = {(r.image, r.version): (r.phase, r.stage) for r in before}
    for r in after:
        if old.get((r.image, r.version)) != (r.phase, r.stage):
            log.info("wave %s: %s:%s %s in stage %s", wave, r.image, r.version, r.phase, r.stage)
