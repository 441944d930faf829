"""Timestamps as the API stores them (RFC 3339, UTC, second precision)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


def stamp(moment: datetime) -> str:
    """Milliseconds when there are any: reaction times well under a second stay measurable."""
    utc = moment.astimezone(UTC)
    if utc.microsecond // 1000 == 0:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# A pass parses the same creation and upgrade times of every instance again and again.
@lru_cache(maxsize=1 << 16)
def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
