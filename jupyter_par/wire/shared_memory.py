"""Move large numeric pandas data between processes through shared memory, not pipes.

Pickling a 300 MB frame through a pipe costs a serialisation, a copy through the
kernel and a deserialisation on each side; a shared-memory segment costs one copy in
and none out (the receiver maps the same pages). :func:`pack` writes the numeric
columns of a DataFrame or Series into one segment, and its Arrow-backed columns after
them as one Arrow IPC stream (:mod:`.arrow_columns`), and returns a small picklable
:class:`Packed` handle; :func:`unpack` rebuilds the object on top of the mapped pages
without copying them. Other columns (Python strings, objects, other extension dtypes)
and the index travel inside the handle with ordinary pickle.

Cleanup is by name, so no crash can strand a segment: every segment is a file named
``jupyter_par-<owner pid>-...`` under ``/dev/shm``; the receiver unlinks it as soon as
it has mapped it (the pages live on until the last mapping goes), and the owner
sweeps its own prefix when a worker dies, a run stops, the pool shuts down or the
interpreter exits. Where ``/dev/shm`` does not exist (macOS, Windows) :func:`pack`
returns ``None`` and callers pickle as before.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import mmap
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import JupyterParWarning
from . import arrow_columns

#: Below this many bytes of numeric data, pickling through the pipe is as fast. Measured
#: (2-CPU VM, Series.map of 1M ints, issue 16): partitions of 250 KB, 500 KB and 1 MB
#: out and back cost the kernel 30-40% less through segments than through the pipe.
MIN_BYTES = 2**18
_DIR = "/dev/shm"
_PREFIX = "jupyter_par-"
#: Every array in a segment starts at a multiple of this many bytes.
ALIGN = _ALIGN = 64
_counter = itertools.count()
#: Space left free in /dev/shm for everyone else (a 64 MB Docker default is common).
HEADROOM = 8 * 2**20
#: How many times this process found /dev/shm too full for a segment (see :func:`pack`).
full_count = 0


class SharedMemoryWarning(JupyterParWarning):
    """/dev/shm is too small or full: data moves through pipes instead (same result)."""


def available() -> bool:
    """Whether this platform offers a shared-memory file system we can use."""
    return os.path.isdir(_DIR) and os.access(_DIR, os.W_OK)


def free_bytes() -> int:
    """Bytes still free in ``/dev/shm`` (0 if it cannot be read)."""
    try:
        stat = os.statvfs(_DIR)
    except OSError:
        return 0
    return stat.f_bavail * stat.f_frsize


def size_bytes() -> int:
    """The size of ``/dev/shm`` (0 if it cannot be read)."""
    try:
        stat = os.statvfs(_DIR)
    except OSError:
        return 0
    return stat.f_blocks * stat.f_frsize


def fits(nbytes: int) -> bool:
    """Whether a segment of ``nbytes`` fits in ``/dev/shm`` now, leaving some headroom.

    A tmpfs allocates pages as they are written, so a segment larger than the free
    space fails half-way (ENOSPC), and a mapping touched beyond it dies of SIGBUS:
    asking first is what keeps a 64 MB ``/dev/shm`` from either.
    """
    return nbytes + HEADROOM <= free_bytes()


def _note_full() -> None:
    global full_count
    full_count += 1


def _columns_of(obj: pd.DataFrame | pd.Series) -> list[pd.Series]:
    if isinstance(obj, pd.Series):
        return [obj]
    return [obj.iloc[:, i] for i in range(obj.shape[1])]


def _numpy(column: pd.Series) -> np.ndarray | None:
    """The ndarray behind a column, if it is a plain numpy numeric one (no copy)."""
    if not isinstance(column.dtype, np.dtype) or column.dtype.kind not in "biufcmM":
        return None
    return column.to_numpy(copy=False)


def shared_bytes(obj: Any) -> int:
    """How many bytes of ``obj``'s numeric columns would go through shared memory (0 if
    none): what the cost model counts at the segments' rate (Arrow columns it counts as
    pickled, by their measured pickling time)."""
    if not isinstance(obj, pd.DataFrame | pd.Series):
        return 0
    total = 0
    for column in _columns_of(obj):
        values = _numpy(column)
        if values is not None:
            total += values.nbytes
    return total


def movable_bytes(obj: Any) -> int:
    """How many bytes of ``obj`` :func:`pack` would write: numeric and Arrow columns."""
    if not isinstance(obj, pd.DataFrame | pd.Series):
        return 0
    return shared_bytes(obj) + sum(arrow_columns.nbytes(c) for c in _columns_of(obj))


@dataclass(frozen=True)
class Packed:
    """A picklable handle to a DataFrame or Series whose numeric columns are in a segment.

    ``columns`` holds, per column, ``(offset, dtype, length)`` for a numeric column in
    the segment, an :class:`~.arrow_columns.ArrowColumn` for one in the Arrow stream at
    ``arrow`` (``(offset, size)`` in the segment), or the column's own array (pickled with
    the handle).
    """

    segment: str
    size: int
    kind: str
    columns: tuple[Any, ...]
    labels: Any
    index: Any
    name: Any = None
    attrs: Any = None
    arrow: tuple[int, int] | None = None


def segment_path(name: str) -> str:
    """Where segment ``name`` lives."""
    return os.path.join(_DIR, name)


def new_name(tag: str = "", owner: int | None = None) -> str:
    """A fresh segment name carrying its owner's pid (default: this process's).

    The owner is the process that sweeps the segment if its receiver never comes:
    a worker names its result segments after the parent, which outlives it.
    """
    pid = os.getpid() if owner is None else owner
    return f"{_PREFIX}{pid}-{tag}{next(_counter)}-{os.urandom(4).hex()}"


def packable(obj: Any) -> bool:
    """Whether :func:`pack` may take ``obj`` at all (a DataFrame or Series): callers
    skip naming a segment for anything else (a cost per partition)."""
    return isinstance(obj, pd.DataFrame | pd.Series)


def pack(obj: Any, *, min_bytes: int | None = None, name: str | None = None,
         arrow: bool = True) -> Packed | None:
    """Copy the numeric columns of ``obj`` into a new segment, and its Arrow-backed columns
    where ``arrow``; ``None`` if not worth it.

    ``None`` also when the segment cannot be made (``/dev/shm`` too small or full,
    counted in :data:`full_count`): the caller then pickles ``obj`` as it would
    without shared memory.

    Parameters
    ----------
    obj
        A DataFrame or Series; anything else returns ``None``.
    min_bytes
        Only pack when at least this many bytes would be shared (default
        :data:`MIN_BYTES`, read at call time so a session can change it).
    name
        The segment's name (default :func:`new_name`); it must start with the pid of
        the process responsible for sweeping it, as :func:`new_name` names do.
    arrow
        Whether Arrow-backed columns go into the segment (else they are pickled with the
        handle, as their Arrow buffers). Reading them from a segment costs nothing, but
        writing a fresh segment costs the writer a page allocation per 4 KB (about 0.8 ms
        per MB here) where pickling Arrow buffers costs a plain copy: the kernel sends
        partitions with ``arrow=False`` and workers return results with Arrow in the
        segment, which is the kernel's cheaper side both ways (``benchmarks/text_moves.py``).
    """
    if not packable(obj) or not available():
        return None
    series = _columns_of(obj)
    plain = [_numpy(s) for s in series]
    arrow_data = [None if values is not None or not arrow else arrow_columns.chunked(s)
                  for s, values in zip(series, plain)]
    offsets, size = [], 0
    for values in plain:
        offsets.append(size)
        if values is not None:
            size += -(-values.nbytes // _ALIGN) * _ALIGN
    threshold = MIN_BYTES if min_bytes is None else min_bytes
    total = sum(v.nbytes for v in plain if v is not None) + \
        sum(a.nbytes for a in arrow_data if a is not None)
    if total < max(threshold, 1):
        return None
    stream, arrow_at = None, size
    if any(a is not None for a in arrow_data):
        stream = arrow_columns.stream([a for a in arrow_data if a is not None])
        size += stream.size
    if not fits(size):
        _note_full()
        return None
    name = name or new_name()
    try:
        _write(name, size, plain, offsets, None if stream is None else (stream, arrow_at))
    except OSError:
        _note_full()  # filled up by someone else meanwhile
        return None  # the caller pickles instead
    fields = iter(range(len(series)))
    columns = tuple(
        (offset, values.dtype.str, len(values)) if values is not None
        else arrow_columns.placeholder(column, next(fields)) if in_arrow is not None
        else column.array
        for column, values, in_arrow, offset in zip(series, plain, arrow_data, offsets)
    )
    where = None if stream is None else (arrow_at, stream.size)
    if isinstance(obj, pd.Series):
        return Packed(name, size, "series", columns, None, obj.index, obj.name,
                      obj.attrs or None, where)
    return Packed(name, size, "frame", columns, obj.columns, obj.index, None,
                  obj.attrs or None, where)


def write_segment(name: str, size: int, pieces: Iterable[tuple[Any, int]]) -> None:
    """Create segment ``name`` of ``size`` bytes and write each ``(buffer, offset)`` in;
    leave nothing behind on failure. The one writer of segments, for partitions,
    results and shared objects alike.

    ``pwrite`` lets the kernel allocate the pages and copy in one pass, about twice as
    fast as faulting in a fresh mapping page by page (4.8 vs 9.5 ms per 16 MB here).
    """
    fd = os.open(segment_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, max(size, 1))
        for piece, offset in pieces:
            view = memoryview(piece).cast("B")
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
    except BaseException:
        unlink(name)
        raise
    finally:
        os.close(fd)


def _write(name: str, size: int, plain: list[np.ndarray | None], offsets: list[int],
           stream: tuple[Any, int] | None) -> None:
    """Create segment ``name`` and copy the arrays in, and the Arrow stream after them."""
    pieces = ((piece, offset) for values, start in zip(plain, offsets)
              if values is not None and values.nbytes
              for piece, offset in _contiguous_pieces(values, start))
    write_segment(name, size, itertools.chain(pieces, [stream] if stream is not None else []))


def _contiguous_pieces(values: np.ndarray, offset: int) -> Iterator[tuple[Any, int]]:
    """``values``' bytes as contiguous pieces with their offsets (a strided array in 1 MB)."""
    if values.flags.c_contiguous:
        yield values.view(np.uint8), offset  # datetimes export no buffer of their own
        return
    rows = max(1, 2**20 // max(1, values.itemsize))
    for i in range(0, len(values), rows):
        piece = np.ascontiguousarray(values[i : i + rows])
        yield piece.view(np.uint8), offset
        offset += piece.nbytes


def unpack(packed: Packed, *, unlink_after: bool = True) -> pd.DataFrame | pd.Series:
    """Rebuild the object on top of the segment's pages (no copy of the numeric data).

    The segment's name is removed at once (``unlink_after``): the mapping keeps the
    pages alive exactly as long as the arrays built on them.
    """
    fd = os.open(segment_path(packed.segment), os.O_RDWR)
    try:
        buffer = mmap.mmap(fd, packed.size) if packed.size else None
    finally:
        os.close(fd)
        if unlink_after:
            unlink(packed.segment)
    arrays = []
    arrow = arrow_columns.read(buffer, *packed.arrow) if packed.arrow else []
    for column in packed.columns:
        if isinstance(column, arrow_columns.ArrowColumn):
            arrays.append(arrow_columns.rebuild(column, arrow))
        elif isinstance(column, tuple):
            offset, dtype, length = column
            if length == 0 or buffer is None:
                arrays.append(np.empty(0, dtype=np.dtype(dtype)))
            else:
                # frombuffer holds an export of the mapping while the array lives, so the
                # mapping cannot be closed under it; np.ndarray(buffer=...) holds none.
                arrays.append(np.frombuffer(buffer, np.dtype(dtype), length, offset))
        else:
            arrays.append(column)
    # Each column keeps the dtype it was sent with: pandas 3's constructors read an object
    # array of strings as ``str``, so object columns are given their dtype as Series on the
    # same index (the same object: no alignment, duplicates or not).
    if packed.kind == "series":
        result: Any = pd.Series(arrays[0], index=packed.index, name=packed.name,
                                dtype=_sent_dtype(arrays[0]), copy=False)
    else:
        result = pd.DataFrame(
            {i: pd.Series(a, index=packed.index, dtype=object, copy=False)
             if _sent_dtype(a) == np.dtype(object) else a for i, a in enumerate(arrays)},
            index=packed.index, copy=False)
        result.columns = packed.labels
    if packed.attrs:
        result.attrs = dict(packed.attrs)
    return result


def _sent_dtype(array: Any) -> Any:
    """The dtype a column was sent with (a numpy dtype for pandas' numpy-backed arrays)."""
    if isinstance(array, pd.arrays.NumpyExtensionArray):
        return array.dtype.numpy_dtype
    return array.dtype


def unlink(name: str) -> None:
    """Remove a segment's name; a missing one is fine (someone got there first)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(segment_path(name))


def sweep(pid: int | None = None, tag: str = "") -> int:
    """Remove the segments of owner ``pid`` (default: this process) whose name has ``tag``.

    Returns how many were removed.
    """
    if not available():
        return 0
    owner = os.getpid() if pid is None else pid
    removed = 0
    for path in glob.glob(os.path.join(_DIR, f"{_PREFIX}{owner}-{glob.escape(tag)}*")):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed += 1
    return removed


def sweep_orphans() -> int:
    """Remove segments whose owner process no longer exists (a crashed earlier kernel)."""
    if not available():
        return 0
    removed = 0
    for path in glob.glob(os.path.join(_DIR, f"{_PREFIX}*-*")):
        owner = os.path.basename(path)[len(_PREFIX):].split("-", 1)[0]
        if not owner.isdigit():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
        except PermissionError:
            pass
    return removed


atexit.register(sweep)
