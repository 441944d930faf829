"""Platform (automatic) upgrades: which version one would move a scale set to, and when it may
begin (minimum image age, maintenance windows in UTC)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from scaleset_operator.catalog.resolve import is_newer, resolve_latest
from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import (
    LATEST,
    AutomaticUpgradeSchedule,
    MaintenanceWindow,
    ScaleSetSpec,
)
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.planner.timefmt import parse_stamp

_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ripe_at(entry: CatalogEntry, schedule: AutomaticUpgradeSchedule) -> datetime | None:
    """When the version is old enough to adopt; None when its publish time is unknown
    or unreadable (then only the minimum age of zero lets it through)."""
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


@dataclass(frozen=True)
class PlatformTarget:
    """What a platform upgrade would move a scale set to now (None: nothing newer that may
    be adopted), and when versions too young to adopt yet ripen."""

    entry: CatalogEntry | None
    ripens_at: tuple[datetime, ...] = ()


def platform_target(
    spec: ScaleSetSpec, status: ScaleSetStatus, catalog: Sequence[CatalogEntry], now: datetime
) -> PlatformTarget:
    """The one decision of what the platform upgrades to; the planner acts on it, and
    `rolling-upgrade watch` uses it to know an upgrade is coming before the operator has
    seen the newly published version."""
    auto = spec.upgrade_policy.automatic_os_upgrade_policy
    model = status.model_image
    if not auto.enable_automatic_os_upgrade or spec.image_reference.version != LATEST:
        return PlatformTarget(None)
    if model is None:
        # Instances are created on the latest version directly: no upgrade to speak of.
        return PlatformTarget(None)
    schedule = spec.upgrade_policy.automatic_upgrade_schedule
    young: list[str] = []
    ripens: list[datetime] = []
    for candidate in catalog:
        ripe = ripe_at(candidate, schedule)
        if ripe is not None and ripe > now:
            young.append(candidate.spec.version)
            if is_newer(candidate.spec.version, model.version):
                ripens.append(ripe)
    # A version whose automatic upgrade faulted is never retried automatically.
    entry = resolve_latest(
        catalog,
        spec.image_reference,
        spec.location,
        skip_versions=[*status.faulted_versions, *young],
    )
    if entry is None or not is_newer(entry.spec.version, model.version):
        return PlatformTarget(None, tuple(ripens))
    return PlatformTarget(entry, tuple(ripens))
