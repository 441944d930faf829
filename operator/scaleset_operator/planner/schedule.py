"""When a platform upgrade may begin: minimum image age and maintenance windows (UTC)."""

from __future__ import annotations

from datetime import datetime, timedelta

from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import AutomaticUpgradeSchedule, MaintenanceWindow
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
