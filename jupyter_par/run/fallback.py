"""Is moving the data to workers worth it? The cost model behind the in-kernel fallback.

A row-wise function that takes microseconds on data of hundreds of megabytes can cost
more to copy to the workers and back than to run in the kernel. The pipeline asks
:func:`too_small_to_move` before a run on the local process pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..planning.partition import LazyPartition
from ..wire.shared_memory import _numpy as numpy_values
from ..wire.shared_memory import shared_bytes

#: Below this many bytes of numeric input (or strings and objects that take as long to
#: pickle), moving it costs little next to a process round trip, so no sample is taken
#: and the run goes to the workers as asked.
SAMPLE_ABOVE_BYTES = 32 * 2**20
#: A pickled byte (strings, objects) costs about this many numeric bytes through shared
#: memory to move (pickle round trips run at 100-200 MB/s, segments at over 1 GB/s).
PICKLED_BYTE_WEIGHT = 8
#: Rows of the first partition timed in the kernel to estimate the work, at most: the
#: sample grows from a few dozen rows until it takes a measurable time...
SAMPLE_ROWS = 65536
#: ...and no more bytes than this.
SAMPLE_BYTES = 2**23
#: Seconds of the kernel's time the sample may take at most: a slow function is
#: timed on fewer rows (one row already tells that the workers will win).
SAMPLE_SECONDS = 0.05
#: A call on one row this slow sends the run to the workers with no further sample.
SLOW_CALL_SECONDS = 0.05
#: Rows the sample has at least, so that a per-row cost shows beside the per-call one.
MIN_SAMPLE_ROWS = 16
#: The workers must save this many times the estimated moving cost to be used: a wrong
#: "workers" costs up to the whole moving (text runs have been several times slower
#: than serial), a wrong "kernel" at most what the workers would have saved.
MARGIN = 1.5
#: The sample grows until one run of it takes this long (or the budget is spent).
SAMPLE_TARGET_SECONDS = 0.01
#: Shorter timings than this are mostly noise (a busy machine, a cold cache): they may
#: size the sample, never decide on their own.
MEASURABLE_SECONDS = 0.005
#: Seconds per byte to copy numeric data into a segment and rebuild the result in the
#: kernel (measured: 320 MB packed in 0.22 s, concatenated back in about as long).
MOVE_SECONDS_PER_BYTE = 0.7e-9
#: Seconds of round trip per partition sent to a warm worker.
PARTITION_SECONDS = 1e-3
#: Shared objects cheaper than this to prepare for the workers do not call for a sample.
SHARING_SMALL_SECONDS = 0.02


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
    import time

    from ..wire.pickling import dumps_plain

    part = _pickled_part(obj)
    if part is None:
        return 0.0, 0
    try:
        started = time.perf_counter()
        payload = dumps_plain(part)  # as partitions travel: text as one buffer
        pickle.loads(payload)
        return time.perf_counter() - started, len(payload)
    except Exception:  # noqa: BLE001 - a dill-only object: count it as costly as numbers
        return 0.0, 0


#: Rows whose pickling is timed to estimate the rest (the cost of one call subtracted).
PICKLE_SAMPLE_ROWS = 2048


def _pickle_per_row(obj: pd.DataFrame | pd.Series) -> tuple[float, float]:
    """Seconds and bytes per row to pickle and unpickle what of ``obj`` is pickled.

    Timed on up to :data:`PICKLE_SAMPLE_ROWS` rows, less what one row costs: a call's
    own overhead, scaled by a million rows, would otherwise read as seconds.
    """
    if not len(obj):
        return 0.0, 0.0
    head = obj.iloc[:min(len(obj), PICKLE_SAMPLE_ROWS)]
    seconds, size = _pickle_seconds(head)
    if len(head) > 1:
        one, one_size = _pickle_seconds(head.iloc[:1])
        return (max(0.0, seconds - one) / (len(head) - 1),
                max(0, size - one_size) / (len(head) - 1))
    return seconds, float(size)


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
            total += _pickle_per_row(obj)[0] * len(obj)
        else:
            nbytes = getattr(obj, "nbytes", None)
            if isinstance(nbytes, int) and getattr(getattr(obj, "dtype", None), "kind", "O") != "O":
                total += nbytes * MOVE_SECONDS_PER_BYTE
    return total


def _sample_of(data: pd.DataFrame | pd.Series, rows: int) -> pd.DataFrame | pd.Series:
    return data.iloc[:max(1, min(len(data), rows, max(1, len(data) // 10)))]


def _timed(op: Any, sample: Any) -> tuple[float, Any] | None:
    """Run ``op`` on ``sample`` silently; its time and result, or ``None`` if it raised."""
    import io
    import time
    import warnings
    from contextlib import redirect_stderr, redirect_stdout

    sink = io.StringIO()
    try:
        with redirect_stdout(sink), redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            result = op(sample)
            return time.perf_counter() - started, result
    except Exception:  # noqa: BLE001 - the real run reports the error properly
        return None


#: Samples faster than this are timed three times and the fastest kept: a millisecond
#: of scheduling noise would otherwise read as work worth moving.
RETIME_BELOW = 0.01


def _fastest(op: Any, sample: Any) -> tuple[float, Any] | None:
    best = _timed(op, sample)
    for _ in range(2):
        if best is None or best[0] >= RETIME_BELOW:
            break
        again = _timed(op, sample)
        if again is not None and again[0] < best[0]:
            best = again
    return best


def too_small_to_move(parts: Any, op: Any, jobs: int, sharing: float = 0.0) -> str | None:
    """Why running in the kernel beats moving the data to ``jobs`` workers, or ``None``.

    Times ``op`` on one row and on a small slice of the first partition in the kernel
    (output discarded), extrapolates a per-call plus per-row cost to the whole input,
    and compares the time the workers would save with what moving the input and the
    results would cost: numeric columns through shared memory at a measured rate,
    strings and objects as long as pickling and unpickling the sample took (they
    travel through a pipe), and one round trip per partition. The sample stays within
    :data:`SAMPLE_SECONDS` of the kernel's time. Inputs under
    :data:`SAMPLE_ABOVE_BYTES` are not sampled, unless ``sharing`` (seconds to prepare
    ``shared=`` objects, :func:`sharing_seconds`) is worth a sample on its own.
    """
    if jobs < 2 or not parts:
        return None
    lazy = [p for p in parts if isinstance(p, LazyPartition) and not p.is_cut]
    if lazy:
        # Partitions cut as they are handed out (groups): cutting them all here would
        # put that work back before the first dispatch. The first with rows is cut for
        # the sample; the rest count by their sizes, at its bytes per row.
        head_part = next((p for p in parts if p.size), None)
        first = head_part.data if head_part is not None else None
        if not isinstance(first, pd.DataFrame | pd.Series) or not len(first):
            return None
        rows = sum(p.size for p in parts)
        numeric = int(shared_bytes(first) / len(first) * rows)
        frames: list[Any] = list(parts)
    else:
        frames = [getattr(p, "data", None) for p in parts]
        if not all(isinstance(f, pd.DataFrame | pd.Series) for f in frames):
            return None
        first = next((f for f in frames if len(f)), None)
        if first is None:
            return None
        rows = sum(len(f) for f in frames)
        numeric = sum(shared_bytes(f) for f in frames)
    row_seconds, row_bytes = _pickle_per_row(first)
    pickled_bytes = row_bytes * rows
    pickled_seconds = row_seconds * rows
    if (numeric + pickled_bytes * PICKLED_BYTE_WEIGHT < SAMPLE_ABOVE_BYTES
            and sharing < SHARING_SMALL_SECONDS):
        return None
    # The first call on one row only warms up (lazy imports, caches) and is not counted.
    one = _timed(op, first.iloc[:1]) and _fastest(op, first.iloc[:1])
    if one is None:
        return None
    moving_bound = (numeric * MOVE_SECONDS_PER_BYTE * 3 + pickled_seconds * 3
                    + len(frames) * PARTITION_SECONDS + sharing)
    if one[0] > SLOW_CALL_SECONDS:
        return None  # this slow on one row: the work outweighs moving; sampling would drag
    # A few rows tell the cost per row apart from the cost per call, enough to size the
    # real sample so that it stays within SAMPLE_SECONDS however slow the function is.
    few = _fastest(op, first.iloc[:MIN_SAMPLE_ROWS]) if len(first) > MIN_SAMPLE_ROWS else None
    per_row_guess = max(0.0, few[0] - one[0]) / (MIN_SAMPLE_ROWS - 1) if few else 0.0
    if few and few[0] >= MEASURABLE_SECONDS and \
            per_row_guess * rows * (1 - 1 / jobs) > 4 * moving_bound:
        return None  # the work clearly outweighs any moving
    per_row_bytes = (numeric + pickled_bytes) / rows
    most_rows = min(SAMPLE_ROWS, int(SAMPLE_BYTES // max(1.0, per_row_bytes)))
    # Grown until it takes a measurable time: a sample of a millisecond or two is
    # mostly noise on a busy machine, and its error is multiplied by every row.
    size, spent = min(most_rows, 4 * MIN_SAMPLE_ROWS), 0.0
    while True:
        sample = _sample_of(first, size)
        many = _fastest(op, sample)
        if many is None:
            return None
        spent += many[0]
        if (many[0] >= SAMPLE_TARGET_SECONDS or spent >= SAMPLE_SECONDS
                or size >= most_rows or len(sample) < size):
            break
        size = min(most_rows, size * 4)
    half = _fastest(op, sample.iloc[:len(sample) // 2])
    if many is None or half is None or len(sample) < 2:
        return None
    # The difference of two samples that each pay the same few calls is the rows' cost.
    per_row = max(0.0, many[0] - half[0]) / (len(sample) - len(sample) // 2)
    compute = one[0] * len(frames) + per_row * rows
    in_seconds, _ = _pickle_seconds(sample)
    out_seconds, _ = _pickle_seconds(many[1])
    scale = rows / len(sample)
    out_numeric = shared_bytes(many[1]) * scale
    moving = ((numeric + 2 * out_numeric) * MOVE_SECONDS_PER_BYTE
              + (in_seconds + out_seconds) * scale + len(frames) * PARTITION_SECONDS + sharing)
    saved = compute * (1 - 1 / jobs)
    if saved > MARGIN * moving:
        return None
    total_mb = (numeric + pickled_bytes) / 2**20
    also = f" (shared objects: {sharing:.2g} s of it)" if sharing else ""
    return (
        f"ran in the kernel: the work is about {compute:.2g} s, moving {total_mb:.0f} MB "
        f"to {jobs} workers and back would cost about {moving:.2g} s{also} "
        "(pass inline_fallback=False to use the workers anyway)"
    )
