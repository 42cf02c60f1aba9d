"""glibc's allocator, tuned for a worker that runs for months with many short-lived threads.

Each thread that allocates gets a malloc arena of its own (up to 8 per core); memory freed in
an arena is seldom given back to the system. Every training runs on a new thread, so a kiosk
that retrains after each recording grew by ~20 MB in 10 minutes (the soak row of
docs/RELIABILITY.md) with nothing leaked. Two arenas, and a trim after each training, keep it
flat. Elsewhere than glibc (musl, macOS) both calls do nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h
ARENAS = 2


@functools.cache
def _libc():  # once: trim() runs after every training
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError as e:
        log.debug("no libc to tune: %s", e)
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` malloc arenas for this process; True when glibc accepted it."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Gives free memory at the top of every arena back to the system (glibc only)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
