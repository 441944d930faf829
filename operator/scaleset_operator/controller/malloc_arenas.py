"""How many malloc arenas the operator's threads share.

glibc gives threads that allocate at the same moment arenas of their own, up to eight per core,
and memory freed in one arena serves only that arena. The operator's apply threads, pass
threads and pod watch each decode and drop pods, so with the default every one of them kept a
high-water mark of its own. Two arenas are plenty for threads that mostly wait on the network.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # from glibc's malloc.h
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Call before starting threads. False where the C library is not glibc (musl, macOS):
    their allocators have no such setting, and nothing changes."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
