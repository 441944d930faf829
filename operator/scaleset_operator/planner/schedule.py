"""The one decision of which version an OS upgrade moves a scale set to, for the platform, a
user's start and the dry-run plan alike, and when a platform upgrade may begin
or start its next batch (minimum image age, maintenance windows in UTC). Decisions only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from scaleset_operator.catalog.resolve import (
    candidates,
    is_newer,
    pin,
    resolve_exact,
    resolve_latest,
)
from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import (
    LATEST,
    AutomaticUpgradeSchedule,
    MaintenanceWindow,
    ScaleSetSpec,
)
from scaleset_operator.models.status import ResolvedImage, ScaleSetStatus, StartedBy
from scaleset_operator.models.versions import version_key
from scaleset_operator.planner.timefmt import parse_stamp
from scaleset_operator.planner.waves.gate import WaveGate

_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ripe_at(entry: CatalogEntry, schedule: AutomaticUpgradeSchedule) -> datetime | None:
    """When the version is old enough to adopt; None when its publish time is unknown or
    unreadable, and then the age does not hold it back (an ImageVersion read from the API always
    has its creation time)."""
    published = entry.published_at()
    if published is None:
        return None
    try:
        return parse_stamp(published) + parse_duration(schedule.minimum_image_age)
    except ValueError:
        return None


def _openings(window: MaintenanceWindow, around: datetime) -> list[tuple[datetime, datetime]]:
    hour, minute = (int(x) for x in window.start.split(":"))
    length = parse_duration(window.duration)
    spans = []
    for offset in range(-7, 8):
        day = (around + timedelta(days=offset)).replace(
            hour=hour, minute=minute, second=0, microsecond=0
        )
        if window.days and _DAYS[day.weekday()] not in window.days:
            continue
        spans.append((day, day + length))
    return spans


def window_state(schedule: AutomaticUpgradeSchedule, now: datetime) -> tuple[bool, datetime | None]:
    """(inside a window now, when the next one opens)."""
    if not schedule.maintenance_windows:
        return True, None
    upcoming: list[datetime] = []
    for window in schedule.maintenance_windows:
        for opens, closes in _openings(window, now):
            if opens <= now < closes:
                return True, None
            if opens > now:
                upcoming.append(opens)
    return False, min(upcoming, default=None)


class HoldReason(StrEnum):
    """Why a version newer than the target is not the target."""

    QUARANTINED = "Quarantined"
    TOO_YOUNG = "YoungerThanMinimumImageAge"
    WAVE = "WaitingForWave"


@dataclass(frozen=True)
class HeldBack:
    version: str
    reason: HoldReason
    # TOO_YOUNG: when it is old enough; WAVE: when the stage before ends its soak, if it does.
    until: datetime | None = None


@dataclass(frozen=True)
class UpgradeTarget:
    """What an OS upgrade would move a scale set to now, and what keeps it from more.

    `image` is None when there is nothing to upgrade to: for the platform, nothing newer than
    the model may be adopted; for a user, nothing resolves at all. `in_window` is False only
    for the platform, outside every maintenance window; `window_opens_at` then says when the
    next one opens.
    """

    image: ResolvedImage | None
    held_back: tuple[HeldBack, ...] = ()
    in_window: bool = True
    window_opens_at: datetime | None = None

    @property
    def ripens_at(self) -> tuple[datetime, ...]:
        """When versions held back for their age become eligible: the planner wakes then.
        A wave's soak is not among them: the wave's own status change wakes the scale set."""
        return tuple(
            h.until
            for h in self.held_back
            if h.until is not None and h.reason is HoldReason.TOO_YOUNG
        )

    @property
    def may_start(self) -> bool:
        return self.image is not None and self.in_window


def upgrade_target(
    spec: ScaleSetSpec,
    status: ScaleSetStatus,
    catalog: Sequence[CatalogEntry],
    now: datetime,
    *,
    started_by: StartedBy,
    wave: WaveGate | None = None,
) -> UpgradeTarget:
    """The one place that picks the target of an OS upgrade: the platform's start
    and its retargeting between batches, a user's start, `rolling-upgrade plan` and `watch`.

    Every caller gets the same version: the highest one that is in the scale set's image family,
    replicated to its location, not excluded from latest, not quarantined (status.faultedVersions)
    and at least minimumImageAge old. Those are facts about the version, so a user's start obeys
    them too: a quarantined version stays out of "latest" until a user clears the quarantine.
    What a user's start overrides is only *when* (it starts at once): maintenance windows do not
    hold it back, and it needs neither automatic upgrades nor a version newer than the model;
    with nothing newer it targets the model itself, so that instances left behind catch up and
    none is ever moved backwards. A wave (`wave`) orders only the platform's upgrades: a
    version its stage has not reached yet, or one the wave saw fault, is held back for the
    platform alone; a user's start is the user's own decision.
    """
    ref = spec.image_reference
    model = status.model_image
    by_user = started_by is StartedBy.USER
    if ref.version != LATEST:
        # A pinned version is part of the model (a model change, never an OS upgrade of the
        # platform's); a user's start brings instances to it.
        entry = resolve_exact(catalog, ref, spec.location, ref.version) if by_user else None
        return UpgradeTarget(pin(entry, ref) if entry is not None else None)
    auto = spec.upgrade_policy.automatic_os_upgrade_policy
    if not by_user and (not auto.enable_automatic_os_upgrade or model is None):
        # Without a model, instances are created on the latest version directly.
        return UpgradeTarget(None)
    schedule = spec.upgrade_policy.automatic_upgrade_schedule
    held = _held_back(spec, status, catalog, now, None if by_user else wave)
    entry = resolve_latest(catalog, ref, spec.location, skip_versions=[h.version for h in held])
    image = pin(entry, ref) if entry is not None else None
    floor = model.version if model is not None else None
    if image is None or (floor is not None and not is_newer(image.version, floor)):
        image = model if by_user else None
    above = image.version if image is not None else floor
    held = [h for h in held if is_newer(h.version, above)]
    if by_user:
        return UpgradeTarget(image, tuple(held))
    inside, opens = window_state(schedule, now)
    return UpgradeTarget(image, tuple(held), inside, None if inside else opens)


def _held_back(
    spec: ScaleSetSpec,
    status: ScaleSetStatus,
    catalog: Sequence[CatalogEntry],
    now: datetime,
    wave: WaveGate | None,
) -> list[HeldBack]:
    """Versions `latest` would pick but for their quarantine, their age or a wave."""
    schedule = spec.upgrade_policy.automatic_upgrade_schedule
    quarantined = set(status.faulted_versions)
    held: list[HeldBack] = []
    for candidate in candidates(catalog, spec.image_reference, spec.location):
        version = candidate.spec.version
        if candidate.spec.exclude_from_latest:
            continue
        if version in quarantined:
            held.append(HeldBack(version, HoldReason.QUARANTINED))
            continue
        ripe = ripe_at(candidate, schedule)
        if ripe is not None and ripe > now:
            held.append(HeldBack(version, HoldReason.TOO_YOUNG, ripe))
        elif wave is not None and not wave.allows(version):
            held.append(HeldBack(version, HoldReason.WAVE, wave.soak_ends.get(version)))
    return sorted(set(held), key=lambda h: (version_key(h.version), h.version))
