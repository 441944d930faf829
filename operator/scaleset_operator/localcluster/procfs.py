"""What the kernel says about processes and the machine, read from /proc: the one place that
parses it, for the local cluster, its tests and the benchmarks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")
_GONE = (FileNotFoundError, ProcessLookupError, PermissionError)


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    pgrp: int
    start_time: int
    rss_bytes: int
    cpu_ticks: int = 0

    @property
    def cpu_seconds(self) -> float:
        """User plus system time so far."""
        return self.cpu_ticks / CLK_TCK


def pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def read_stat(pid: int) -> ProcStat | None:
    """None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except _GONE:
        return None
    # The command name may contain spaces and parentheses; fields follow the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0],
        pgrp=int(fields[2]),
        start_time=int(fields[19]),
        rss_bytes=int(fields[21]) * _PAGE,
        cpu_ticks=int(fields[11]) + int(fields[12]),
    )


def all_stats() -> list[ProcStat]:
    return [stat for pid in pids() if (stat := read_stat(pid)) is not None]


def cmdline(pid: int) -> str | None:
    """The arguments joined by spaces; None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except _GONE:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def pids_with_arg(fragment: str) -> list[int]:
    """Live processes whose command line contains ``fragment``."""
    return [pid for pid in pids() if fragment in (cmdline(pid) or "")]


def rss_mib(pid: int) -> float:
    stat = read_stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat.rss_bytes / 2**20


def cpu_seconds(pid: int) -> float:
    stat = read_stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat.cpu_seconds


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent not idle since boot (kernel threads included)."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / CLK_TCK


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except _GONE:
        return []


def machine() -> dict[str, object]:
    """Processor model, count and memory, for the record of a measurement."""
    model = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_kb / 2**20, 1)}
