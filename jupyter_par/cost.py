"""Is moving the data to workers worth it? The cost model behind the in-kernel fallback.

A row-wise function that takes microseconds on data of hundreds of megabytes can cost
more to copy to the workers and back than to run in the kernel. The pipeline asks
:func:`too_small_to_move` before a run on the local process pool.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .transport import shared_bytes

#: Below this many bytes of numeric input, moving it costs little next to a process
#: round trip, so no sample is taken and the run goes to the workers as asked.
SAMPLE_ABOVE_BYTES = 32 * 2**20
#: Bytes of the first partition timed in the kernel to estimate the work.
SAMPLE_BYTES = 2**18
#: Seconds per byte to copy data into a segment and rebuild the result in the kernel
#: (measured: 320 MB packed in 0.22 s, concatenated back in about as long).
MOVE_SECONDS_PER_BYTE = 0.7e-9
#: Seconds of round trip per partition sent to a warm worker.
PARTITION_SECONDS = 1e-3


def _sample_of(data: pd.DataFrame | pd.Series, nbytes: int) -> pd.DataFrame | pd.Series:
    per_row = max(1, nbytes // max(1, len(data)))
    rows = max(1, min(len(data), SAMPLE_BYTES // per_row, max(1, len(data) // 10)))
    return data.iloc[:rows]


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


def too_small_to_move(parts: Any, op: Any, jobs: int) -> str | None:
    """Why running in the kernel beats moving the data to ``jobs`` workers, or ``None``.

    Times ``op`` on one row and on a small slice of the first partition in the kernel
    (output discarded), extrapolates a per-call plus per-byte cost to the whole input,
    and compares the time the workers would save with what moving the input and the
    results (and one round trip per partition) would cost.
    Only inputs of at least :data:`SAMPLE_ABOVE_BYTES` numeric bytes are sampled.
    """
    if jobs < 2 or not parts:
        return None
    frames = [getattr(p, "data", None) for p in parts]
    if not all(isinstance(f, pd.DataFrame | pd.Series) for f in frames):
        return None
    total = sum(shared_bytes(f) for f in frames)
    first = next((f for f in frames if len(f)), None)
    if total < SAMPLE_ABOVE_BYTES or first is None:
        return None
    sample = _sample_of(first, shared_bytes(first))
    # Two points, one row and the sample, separate the per-call cost from the per-byte one;
    # the first call on one row only warms up (lazy imports, caches) and is not counted.
    one = _timed(op, first.iloc[:1]) and _fastest(op, first.iloc[:1])
    many = _fastest(op, sample)
    one_bytes, sample_bytes = shared_bytes(first.iloc[:1]), shared_bytes(sample)
    if one is None or many is None or sample_bytes <= one_bytes:
        return None
    per_byte = max(0.0, many[0] - one[0]) / (sample_bytes - one_bytes)
    compute = one[0] * len(frames) + per_byte * total
    out_bytes = shared_bytes(many[1]) * total / sample_bytes
    moving = (total + 2 * out_bytes) * MOVE_SECONDS_PER_BYTE + len(frames) * PARTITION_SECONDS
    saved = compute * (1 - 1 / jobs)
    if saved > moving:
        return None
    return (
        f"ran in the kernel: the work is about {compute:.2g} s, moving {total / 2**20:.0f} MB "
        f"to {jobs} workers and back would cost about {moving:.2g} s "
        "(pass inline_fallback=False to use the workers anyway)"
    )
