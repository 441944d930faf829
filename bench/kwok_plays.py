"""How long pods waited on kwok, read from its log.

After an in-place image patch kwok plays two status writes per pod: the restart (container
"ContainerCreating") at once, and the start when the start delay has passed. The time between
the two successful writes is that delay plus whatever kwok's queue of plays added; a gap far above
the delay means the pods of the upgrade were waiting on the simulator, whatever the operator did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

# kwok writes RFC 3339 times with up to nine fraction digits, trailing zeros dropped.
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$")


def parse_time(text: str) -> float:
    """Seconds since the epoch of a kwok log time such as ``2026-12-01T00:14:44.7558975Z``."""
    m = _TIME.match(text)
    if not m:
        raise ValueError(f"not a kwok log time: {text!r}")
    whole = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    fraction = float("0." + m.group(2)) if m.group(2) else 0.0
    return whole.timestamp() + fraction


def status_writes(lines: Iterable[str], since: float, until: float) -> dict[str, list[float]]:
    """The times of each pod's successful status writes by kwok within [since, until]."""
    writes: dict[str, list[float]] = {}
    for line in lines:
        # Cheap test first: a 10,000-pod upgrade logs tens of thousands of lines.
        if '"Patch pod"' not in line or '"status"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") != "Patch pod" or entry.get("subresource") != "status":
            continue
        try:
            at = parse_time(str(entry.get("time")))
        except ValueError:
            continue
        if since <= at <= until and entry.get("pod"):
            writes.setdefault(str(entry["pod"]), []).append(at)
    return writes


def restart_to_start(writes: dict[str, list[float]]) -> list[float]:
    """Per pod with at least two writes in the window, the seconds from its first (the restart)
    to its second (the start)."""
    gaps = []
    for times in writes.values():
        if len(times) >= 2:
            first, second = sorted(times)[:2]
            gaps.append(second - first)
    return gaps


def logs_of(logs_dir: Path) -> list[Path]:
    """kwok's log files in a local cluster's log folder."""
    return sorted(logs_dir.glob("kwok*.log"))


def gaps_in(paths: Iterable[Path], since: float, until: float) -> list[float]:
    writes: dict[str, list[float]] = {}
    for path in paths:
        with path.open(errors="replace") as f:
            for pod, times in status_writes(f, since, until).items():
                writes.setdefault(pod, []).extend(times)
    return restart_to_start(writes)
