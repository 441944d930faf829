"""ISO 8601 durations as Azure writes them (`PT5M`, `PT0S`, `P1DT2H`)."""

from __future__ import annotations

import re
from datetime import timedelta

# Days, hours, minutes and (fractional) seconds; years and months have no fixed length.
ISO8601_DURATION = r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
_PATTERN = re.compile(ISO8601_DURATION)


class DurationError(ValueError):
    """The text is not an ISO 8601 duration of days, hours, minutes and seconds."""


def parse_duration(text: str) -> timedelta:
    match = _PATTERN.match(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise DurationError(f"{text!r} is not an ISO 8601 duration such as PT5M or PT30S")
    days, hours, minutes, seconds = match.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=float(seconds or 0),
    )


def format_duration(value: timedelta) -> str:
    whole = value.days * 86400 + value.seconds
    if not value.microseconds:
        return f"PT{whole}S"
    return f"PT{whole}.{value.microseconds:06d}".rstrip("0") + "S"
