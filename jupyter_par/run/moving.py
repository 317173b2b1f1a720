"""What moving a run's input to worker processes costs: the sizes the fallback weighs.

Numeric columns go through shared memory at a measured rate; strings and objects are
pickled through a pipe, which costs as long as pickling a sample of their rows takes.
:func:`measure` sizes a run's input; :func:`sharing_seconds` the ``shared=`` objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..planning.groups import Keyed
from ..planning.partition import LazyPartition, Partition
from ..wire.shared_memory import _numpy as numpy_values
from ..wire.shared_memory import shared_bytes

#: A pickled byte (strings, objects) costs about this many numeric bytes through shared
#: memory to move (pickle round trips run at 100-200 MB/s, segments at over 1 GB/s).
PICKLED_BYTE_WEIGHT = 8
#: Seconds per byte to copy numeric data into a segment and rebuild the result in the
#: kernel (measured: 320 MB packed in 0.22 s, concatenated back in about as long).
MOVE_SECONDS_PER_BYTE = 0.7e-9


def _pickled_part(obj: Any) -> Any:
    """What of ``obj`` travels pickled rather than through shared memory."""
    if isinstance(obj, pd.DataFrame):
        kept = [i for i in range(obj.shape[1]) if not _numeric(obj.iloc[:, i])]
        return obj.iloc[:, kept] if kept else None
    if isinstance(obj, pd.Series):
        return None if _numeric(obj) else obj
    return obj


def _numeric(column: pd.Series) -> bool:
    """Whether the column moves through shared memory (transport's own test)."""
    return numpy_values(column) is not None


def _pickle_seconds(obj: Any) -> tuple[float, int]:
    """Seconds to pickle and unpickle what of ``obj`` goes through a pipe, and its bytes."""
    import pickle

    from ..machine.load import Stopwatch
    from ..wire.pickling import dumps_plain

    part = _pickled_part(obj)
    if part is None:
        return 0.0, 0
    try:
        watch = Stopwatch().start()  # less any wait for a CPU: the cost on a quiet machine
        payload = dumps_plain(part)  # as partitions travel: text as one buffer
        pickle.loads(payload)
        return watch.stop(), len(payload)
    except Exception:  # noqa: BLE001 - a dill-only object: count it as costly as numbers
        return 0.0, 0


#: Rows whose pickling is timed to estimate the rest (the cost of one call subtracted).
PICKLE_SAMPLE_ROWS = 2048
#: ...and more, up to this many, until their cost less one row's takes this long.
PICKLE_MEASURABLE_SECONDS = 1e-3
PICKLE_MOST_ROWS = 2**17


def _fastest(obj: Any) -> tuple[float, int]:
    """:func:`_pickle_seconds` of ``obj``; where that is short, the faster of two: a
    pause (a collection, a cold path) slows one timing, rarely both, and a short one is
    multiplied by many rows. A long one is timed once (it would cost as long again)."""
    first, size = _pickle_seconds(obj)
    if first >= 5 * PICKLE_MEASURABLE_SECONDS:
        return first, size
    return min(first, _pickle_seconds(obj)[0]), size


def _pickle_per_row(obj: pd.DataFrame | pd.Series) -> tuple[float, float]:
    """Seconds and bytes per row to pickle and unpickle what of ``obj`` is pickled.

    Timed on :data:`PICKLE_SAMPLE_ROWS` rows or more, less what one row costs: a call's
    own overhead, scaled by a million rows, would otherwise read as seconds. Rows that
    pickle as a few buffers (Arrow strings) cost so little that 2,048 of them time as
    one row does, give or take the noise: the head grows until its rows cost a
    measurable time of their own (:data:`PICKLE_MEASURABLE_SECONDS`).
    """
    if not len(obj):
        return 0.0, 0.0
    one, one_size = _fastest(obj.iloc[:1])
    rows = min(len(obj), PICKLE_SAMPLE_ROWS)
    while True:
        seconds, size = _fastest(obj.iloc[:rows])
        if rows < 2:
            return seconds, float(size)
        if (seconds - one >= PICKLE_MEASURABLE_SECONDS or rows == len(obj)
                or rows >= PICKLE_MOST_ROWS):
            return (max(0.0, seconds - one) / (rows - 1),
                    max(0, size - one_size) / (rows - 1))
        rows = min(len(obj), rows * 8)


def sharing_seconds(objects: Mapping[str, Any] | None) -> float:
    """About how long preparing ``shared=`` objects for worker processes takes.

    Each run writes them to a segment again (numeric data at a measured rate; strings
    and objects as long as pickling a sample of their rows takes), and that is moving
    cost too: a cheap call with a large shared table is faster in the kernel.
    """
    total = 0.0
    for obj in (objects or {}).values():
        if isinstance(obj, pd.DataFrame | pd.Series):
            total += shared_bytes(obj) * MOVE_SECONDS_PER_BYTE
            # Timed per row, and at least what its bytes cost by weight: Arrow strings
            # pickle a sampled head in no measurable time, yet the whole takes a while.
            seconds, nbytes = _pickle_per_row(obj)
            total += max(seconds, nbytes * PICKLED_BYTE_WEIGHT * MOVE_SECONDS_PER_BYTE) * len(obj)
        else:
            nbytes = getattr(obj, "nbytes", None)
            if isinstance(nbytes, int) and getattr(getattr(obj, "dtype", None), "kind", "O") != "O":
                total += nbytes * MOVE_SECONDS_PER_BYTE
    return total


@dataclass(frozen=True)
class Input:
    """What a run would move to the workers (``rows``: of every partition)."""

    first_part: Partition  #: the first partition, where the sample is taken
    first: pd.DataFrame | pd.Series  #: its data
    rows: int
    partitions: int
    numeric: int  #: bytes through shared memory
    pickled_bytes: float  #: bytes through a pipe (strings, objects)
    pickled_seconds: float  #: to pickle and unpickle those
    #: How many times the first partition's work the whole input is (by partition size).
    scale: float = 1.0
    #: Groups in the whole input (a groupby call's partitions), else 0.
    groups: int = 0

    @property
    def weighted_bytes(self) -> float:
        return self.numeric + self.pickled_bytes * PICKLED_BYTE_WEIGHT


def _frame(data: Any) -> Any:
    """A partition's rows: those of a :class:`Keyed` partition of groups (its keys
    travel with it, as a few more columns), or the data itself."""
    if isinstance(data, Keyed):
        keys = data.by if isinstance(data.by, list) else [data.by]
        columns = [k for k in keys if isinstance(k, pd.Series | pd.Index) and len(k) == len(data)]
        if not columns or not isinstance(data.data, pd.DataFrame | pd.Series):
            return data.data
        frame = data.data if isinstance(data.data, pd.DataFrame) else data.data.to_frame()
        keys_frame = pd.DataFrame({f"key {i}": pd.Series(k).to_numpy()
                                   for i, k in enumerate(columns)}, index=frame.index)
        return pd.concat([frame.reset_index(drop=True), keys_frame.reset_index(drop=True)],
                         axis=1)
    return data


def measure(parts: Any) -> Input | None:
    """The input's sizes, or ``None`` where it cannot be sampled: not pandas partitions,
    or no rows. Partitions cut as they are handed out (groups) are not cut here, but the
    first: the rest count by their sizes, at its bytes per row; keys that travel sliced
    with groups count as columns."""
    if not isinstance(parts, Sequence) or not parts or not parts[0].size:
        return None
    first = _frame(parts[0].data)
    if not isinstance(first, pd.DataFrame | pd.Series) or not len(first):
        return None
    units = sum(p.size for p in parts)
    scale = units / parts[0].size
    row_seconds, row_bytes = _pickle_per_row(first)
    if any(isinstance(p, LazyPartition) for p in parts):
        rows = units
        numeric = int(shared_bytes(first) / len(first) * rows)
    else:
        frames = [getattr(p, "data", None) for p in parts]
        if not all(isinstance(f, pd.DataFrame | pd.Series) for f in frames):
            return None
        rows = sum(len(f) for f in frames)
        numeric = sum(shared_bytes(f) for f in frames)
    # Column partitions each hold every row: what is pickled scales with the partitions.
    pickled_rows = len(first) * scale
    grouped = getattr(parts, "grouped", None)
    groups = int(grouped.ngroups) if grouped is not None else 0
    return Input(parts[0], first, rows, len(parts), numeric, row_bytes * pickled_rows,
                 row_seconds * pickled_rows, scale, groups)
