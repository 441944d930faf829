"""Starting detached component processes and stopping them again from any process.

Each component runs in its own session (so its process group id equals its pid). A record of
pid plus the kernel's start time lets another process (``cluster down``) find exactly the
processes we started, even if a pid has been reused since.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scaleset_operator.localcluster.procfs import ProcStat, all_stats, read_stat

_PR_SET_PDEATHSIG = 1

# Popen objects of children started by this interpreter, so that they are reaped (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}
# Pids started with posix_spawn by this interpreter (reaped with waitpid).
_spawned: set[int] = set()


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_time: int
    log: str
    args: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            log=str(data["log"]),
            args=[str(a) for a in data["args"]],
        )


def is_running(record: ProcessRecord) -> bool:
    _reap(record.pid)
    stat = read_stat(record.pid)
    return stat is not None and stat.start_time == record.start_time and stat.state != "Z"


def group_members(record: ProcessRecord, stats: Iterable[ProcStat] | None = None) -> list[ProcStat]:
    """Live processes of the record's process group that are not older than its leader."""
    return [
        s
        for s in (all_stats() if stats is None else stats)
        if s.pgrp == record.pid and s.start_time >= record.start_time and s.state != "Z"
    ]


def _die_with_parent() -> None:
    # SIGKILL, not SIGTERM: with its caller gone nobody waits for a graceful shutdown, and the
    # apiserver's can hang for a minute once etcd has gone at the same moment.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start(
    name: str,
    args: list[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool = False,
) -> ProcessRecord:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(args)}\n".encode())
    if die_with_parent:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent,
            )
        _children[proc.pid] = proc
        pid = proc.pid
    else:
        # A component meant to outlive this interpreter: no Popen object (it would warn at
        # exit that its child is "still running"); posix_spawn, reaped by _reap when stopped.
        pid = os.posix_spawn(
            args[0],
            args,
            dict(env) if env is not None else dict(os.environ),
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
        )
        _spawned.add(pid)
    stat = read_stat(pid)
    if stat is None:
        raise RuntimeError(f"{name} exited immediately; see {log_path}")
    return ProcessRecord(name, pid, stat.start_time, str(log_path), args)


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]
    if pid in _spawned:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                return
        _spawned.discard(pid)


def _signal_group(record: ProcessRecord, sig: int) -> None:
    for member in group_members(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member.pid, sig)


def stop_all(records: Iterable[ProcessRecord], timeout: float = 15.0) -> list[ProcStat]:
    """SIGTERM to each record's group, SIGKILL after ``timeout``; returns survivors (none)."""
    records = list(records)
    for record in records:
        _signal_group(record, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        for record in records:
            _reap(record.pid)
        stats = all_stats()
        left = [m for r in records for m in group_members(r, stats)]
        if not left:
            for record in records:
                if (proc := _children.pop(record.pid, None)) is not None:
                    proc.wait(timeout=5)
                if record.pid in _spawned:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(record.pid, 0)
                    _spawned.discard(record.pid)
            return []
        if time.monotonic() > deadline:
            if killed:
                return left
            for record in records:
                _signal_group(record, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + 5.0
        time.sleep(0.05)


def tail(path: Path | str, lines: int = 40) -> str:
    try:
        with Path(path).open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
