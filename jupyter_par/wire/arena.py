"""One input segment per worker slot, written again for each partition of a run.

A fresh ``/dev/shm`` segment costs the kernel its page allocation as well as the copy:
about 10 ms of CPU per 16 MB here, against under 2 ms to copy into pages already
allocated (issue 28: per-column apply shipped 128 MB this way, in the kernel's serial
share). A worker slot's partitions of one run are about the same size, so the kernel
keeps the slot's segment (an :class:`Arena`) and its own mapping of it, and copies the
next partition into the same pages once the worker has let go of the last one.

Letting go is checked, not assumed: after each task the worker drops the partition
and closes its mapping (:func:`let_go`); a mapping something still refers to (the
function kept the partition in a global, a cache) cannot be closed, and the worker
says so (:data:`HELD`); the kernel then retires that arena (removes its name: the
worker's pages stay valid) and writes the next partition into a new one. Arenas are
named like every segment (owner pid, worker slot tag), so the sweeps that clean up
after a dead worker, a stopped run or an exited kernel remove them too; the pool
removes them at the end of each run, so no segment outlives a run.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import threading
from typing import Any

from . import shared_memory as transport

#: What a worker reports in its slot after a task: it could not close its mapping.
HELD = 1
#: An arena is this much larger than the partition that made it (later partitions of
#: the run may be a row longer), rounded to whole pages.
_SLACK = 1 / 64
_PAGE = mmap.PAGESIZE
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


class Arena:
    """The kernel's side of one worker slot's input segment."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, size
        fd = os.open(transport.segment_path(name), os.O_RDWR)
        try:
            # Mapped in at once (not page by page as the first copy touches them): the
            # pages exist, and faulting 4,096 of them per 16 MB costs as much as the copy.
            self._map = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE)
        finally:
            os.close(fd)
        #: Partitions written into it (the first one made it).
        self.writes = 1

    def write(self, pieces: Any) -> None:
        """Copy ``(buffer, offset)`` pieces into the pages (no allocation: they exist)."""
        for piece, offset in pieces:
            view = memoryview(piece).cast("B")
            self._map[offset:offset + len(view)] = view
        self.writes += 1

    def release(self) -> None:
        """Remove the name at once and the kernel's mapping in the background (a worker's
        mapping stays valid). Unmapping frees the pages, ~2.5 ms per 16 MB, which the
        end of a run would otherwise wait for; ``munmap`` runs without the GIL."""
        transport.unlink(self.name)
        threading.Thread(target=_close, args=(self._map,), name="jupyter_par-arena-free",
                         daemon=True).start()


def _close(mapping: mmap.mmap) -> None:
    with contextlib.suppress(BufferError, ValueError):
        mapping.close()


def pack(obj: Any, arena: Arena | None, name: str) -> tuple[transport.Packed | None,
                                                         Arena | None]:
    """Put ``obj``'s numeric columns in ``arena`` if it is large enough, else in a new
    arena named ``name`` (the old one released). Returns the handle (``None``: pickle
    ``obj`` instead, as :func:`~jupyter_par.wire.shared_memory.pack` would) and the
    slot's arena from now on."""
    laid = transport.layout(obj)
    if laid is None:
        return None, arena
    series, plain, offsets, size = laid
    if arena is not None and arena.size >= size:
        arena.write(transport.pieces(plain, offsets))
        return transport.handle(obj, arena.name, size, series, plain, offsets, keep=True), arena
    if arena is not None:
        arena.release()
    room = -(-int(size * (1 + _SLACK)) // _PAGE) * _PAGE
    if not transport.fits(room):
        transport.note_full()
        return None, None
    try:
        transport.write_segment(name, room, transport.pieces(plain, offsets))
        fresh = Arena(name, room)
    except OSError:
        transport.unlink(name)
        transport.note_full()  # filled up by someone else meanwhile
        return None, None
    return transport.handle(obj, name, size, series, plain, offsets, keep=True), fresh


def let_go(mapping: mmap.mmap | None) -> bool:
    """The worker's side, after a task: close the arena mapping; ``False`` if something
    still refers to the partition built on it (then the kernel must not write there)."""
    if mapping is None:
        return True
    for attempt in range(2):
        try:
            mapping.close()
        except BufferError:
            if attempt:
                return False
            gc.collect()  # a reference cycle (a traceback, a frame) may hold the last view
        else:
            return True
    return False
