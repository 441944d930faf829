"""Dotted numeric image versions (`2016.127.20180613`), ordered part by part as numbers."""

from __future__ import annotations

import re

DOTTED_VERSION = r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$"
_PATTERN = re.compile(DOTTED_VERSION)


def is_dotted_version(text: str) -> bool:
    return _PATTERN.match(text) is not None


def version_key(text: str) -> tuple[int, ...]:
    """Sort key: numeric per part, and `1.2` ranks below `1.2.0` so no two versions tie."""
    if not is_dotted_version(text):
        raise ValueError(f"{text!r} is not a dotted numeric version such as 1.2.3")
    return tuple(int(part) for part in text.split("."))
