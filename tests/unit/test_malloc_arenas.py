"""The operator's threads share at most two malloc arenas (glibc), so memory one thread frees
serves the others; without the limit, threads allocating together each get arenas of their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scaleset_operator.controller.malloc_arenas import limit_malloc_arenas

_PROGRAM = """
import ctypes, ctypes.util, sys, threading
from scaleset_operator.controller.malloc_arenas import limit_malloc_arenas
if sys.argv[1] == "limit":
    assert limit_malloc_arenas()
start = threading.Barrier(8)
def churn():
    start.wait()
    for _ in range(200):
        kept = [bytes(3000) + bytes(i % 7) for i in range(300)]
        del kept
threads = [threading.Thread(target=churn) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, out)
libc.fclose(out)
"""


def _arenas(mode: str, tmp_path: Path) -> int:
    report = tmp_path / f"{mode}.xml"
    subprocess.run([sys.executable, "-c", _PROGRAM, mode, str(report)], check=True)
    return report.read_text().count("<heap nr=")


def test_threads_allocating_together_share_two_arenas_once_limited(tmp_path: Path) -> None:
    assert _arenas("limit", tmp_path) <= 2
    assert _arenas("default", tmp_path) > 2


def test_the_limit_is_set_with_glibc() -> None:
    assert limit_malloc_arenas()
