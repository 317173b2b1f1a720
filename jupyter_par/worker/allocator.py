"""Keep a worker's large temporary arrays in its heap while it works.

Numeric code (``rolling``, ``rank``, ``sort_values``, arithmetic on whole columns)
allocates and frees arrays of several megabytes over and over. glibc hands each such
block to the system with ``munmap`` when it is freed and asks for fresh zeroed pages
the next time, so a column function can spend a tenth of its time in page faults, and
how much depends on the history of the process (glibc's threshold slides). Measured on
workload 4 of the benchmark: 2.62 s with 120k page faults per run serially, 2.40 s
with none.

A worker is a process jupyter_par owns and feeds one partition after another, so it
can do better: :func:`keep_freed_memory` makes freed blocks stay in the heap for reuse,
and :func:`give_back` returns them to the system (``malloc_trim``) once the worker has
nothing to do, so an idle warm worker does not sit on the memory of its last run.
On anything but glibc both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
#: Blocks below this are carved from the heap instead of mapped on their own
#: (glibc's own ceiling for this setting on 64-bit systems).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap kept rather than trimmed while working.
TRIM_THRESHOLD = 1 * 2**30


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # musl and others have no mallopt/malloc_trim
        return None
    return libc


def keep_freed_memory() -> bool:
    """Make this process reuse freed large blocks; whether the setting took."""
    libc = _libc()
    if libc is None:
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        and libc.mallopt(_M_TOP_PAD, 16 * 2**20)
    )


def give_back() -> None:
    """Return the heap's free pages to the system (a worker going idle)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
