"""What real nodes need of the host: bridges, cgroup roots, mounts and processes of theirs.

Every function works on names and paths the caller gives; nothing here knows about clusters.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"


class HostError(RuntimeError):
    """A host command (ip) failed."""


# -- network ------------------------------------------------------------------------------------


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise HostError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def link_exists(name: str) -> bool:
    return ip("link", "show", name, check=False).returncode == 0


def ensure_bridge(name: str, address: str) -> None:
    if not link_exists(name):
        ip("link", "add", name, "type", "bridge")
    if address.split("/")[0] not in ip("-o", "addr", "show", "dev", name).stdout:
        ip("addr", "add", address, "dev", name)
    ip("link", "set", name, "up")


def bridges() -> list[str]:
    out = ip("-o", "link", "show", "type", "bridge", check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


# -- cgroups ------------------------------------------------------------------------------------


def controllers() -> list[Path]:
    root = Path(CGROUP_ROOT)
    if (root / "cgroup.controllers").exists():
        return [root]  # cgroup v2: one hierarchy
    return [p for p in root.iterdir() if p.is_dir() and p.name != "unified" and not p.is_symlink()]


def make_cgroup_root(name: str) -> None:
    for hierarchy in controllers():
        folder = hierarchy / name
        folder.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            # A new v1 cpuset has no CPUs and no memory nodes; a task cannot join it so.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if not (folder / knob).read_text().strip():
                    (folder / knob).write_text((hierarchy / knob).read_text())


def _folders(top: Path) -> list[Path]:
    """`top` and every folder under it. A container's cgroup vanishes when it exits, also while
    the tree is being walked; such a folder is passed over (os.walk ignores what it cannot
    list, where Path.rglob raised FileNotFoundError)."""
    return [Path(folder) for folder, _, _ in os.walk(top)]


def cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in controllers():
        for folder in _folders(hierarchy / name):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
    return pids


def remove_cgroup_root(name: str) -> None:
    # Every hierarchy, the hybrid layout's unified one too: runc creates the cgroup there as well.
    root = Path(CGROUP_ROOT)
    hierarchies = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
    for hierarchy in hierarchies:
        # Deepest first: a cgroup folder can only be removed once it has no children.
        for folder in sorted(_folders(hierarchy / name), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                folder.rmdir()


# -- processes ----------------------------------------------------------------------------------


def kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def mounts_under(prefixes: Iterable[Path]) -> list[str]:
    wanted = [str(p) for p in prefixes]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == w or point.startswith(w + "/") for w in wanted):
            points.append(point)
    return points


def unmount_all(prefixes: Iterable[Path]) -> None:
    prefixes = list(prefixes)
    for _ in range(5):
        points = mounts_under(prefixes)
        if not points:
            return
        for point in sorted(points, key=lambda p: -len(p)):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
