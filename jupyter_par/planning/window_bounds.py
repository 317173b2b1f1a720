"""A partition's windows run through pandas' own window bounds, in pieces, with no
per-window bookkeeping.

The general path (:class:`~jupyter_par.planning.windows.WindowApply`) lets pandas call
a wrapper for every window, which looks up the window's row, skips the overlap rows'
windows and reports progress: about 10% of a 2-5 µs function's time, on a million
windows. Where pandas' own bounds can be read (``rolling`` by rows or by time and
``expanding``, one row per output row, ``min_periods`` of at least 1), the worker reads
the bounds pandas computes for the partition and hands pandas them back through a
:class:`~pandas.api.indexers.BaseIndexer`, with the overlap rows' windows made empty:
pandas then calls the function only for windows with ``min_periods`` values, so never
for an empty one, and every own row's window is the one pandas would have given it.
The own rows run in consecutive pieces (progress after each, as a row-wise apply
reports), each piece carrying only the rows its windows reach.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from ..worker import task as _worker
from .operations import steps


class FixedBounds(BaseIndexer):
    """Windows given as start / end arrays: what pandas computed, handed back to it."""

    def __init__(self, start: np.ndarray, end: np.ndarray) -> None:
        super().__init__()
        self.start, self.end = start, end

    def get_window_bounds(self, num_values: int = 0, min_periods: int | None = None,
                          center: bool | None = None, closed: str | None = None,
                          step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.start, self.end


def pandas_bounds(window: Any, rows: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """``(start, end, min_periods)`` as pandas computes them for ``window`` over its
    ``rows`` rows, or ``None`` where pieces cannot reproduce the call: a ``step``, an
    ``on=`` column (pandas puts it back into the result), windows that may be empty
    and still called (``min_periods=0``), or a pandas without these internals."""
    if (getattr(window, "step", None) or 1) != 1 or getattr(window, "on", None) is not None \
            or getattr(window, "win_type", None) is not None \
            or getattr(window, "method", "single") != "single":
        return None
    try:
        indexer = window._get_window_indexer()
        periods = window.min_periods
        if periods is None:
            periods = indexer.window_size
        start, end = indexer.get_window_bounds(
            num_values=rows, min_periods=periods, center=getattr(window, "center", False),
            closed=getattr(window, "closed", None), step=None)
    except Exception:  # noqa: BLE001 - another pandas: the general path stays exact
        return None
    if not isinstance(periods, int | np.integer) or periods < 1 or len(start) != rows:
        return None
    return np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64), int(periods)


def _piece_bounds(start: np.ndarray, end: np.ndarray, a: int, b: int
                  ) -> tuple[int, int, FixedBounds]:
    """Rows ``[s0, e0)`` that rows ``a..b``'s windows reach, and their bounds within that
    slice: the own rows' as pandas gave them, every other row's empty (kept monotonic,
    so pandas' running counts stay on their fast path)."""
    s0 = int(min(a, start[a:b].min()))
    e0 = int(max(b, end[a:b].max()))
    piece_start = np.zeros(e0 - s0, dtype=np.int64)
    piece_end = np.zeros(e0 - s0, dtype=np.int64)
    piece_start[a - s0:b - s0] = start[a:b] - s0
    piece_end[a - s0:b - s0] = end[a:b] - s0
    last = piece_end[b - s0 - 1]
    piece_start[b - s0:] = last
    piece_end[b - s0:] = last
    return s0, e0, FixedBounds(piece_start, piece_end)


def _counted(func: Callable[..., Any], extra: bool) -> tuple[Callable[..., Any], Callable[[], int]]:
    """``func`` with a call count (the only cost per window: one C call), and how to read
    the calls made so far. After a failure the last call is the failing window's: the
    function raised there, or pandas refused what it returned."""
    tick = itertools.count().__next__

    def counted(window: Any) -> Any:
        tick()
        return func(window)

    def counted_extra(window: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        return func(window, *args, **kwargs)

    wrapped = counted_extra if extra else counted
    wrapped.__name__ = getattr(func, "__name__", "func")
    return wrapped, tick  # after k calls, the next tick reads k


def run_in_pieces(data: pd.DataFrame | pd.Series, lo: int, hi: int,
                  bounds: tuple[np.ndarray, np.ndarray, int],
                  apply: Callable[[Any, Callable[..., Any]], Any],
                  rebuild: Callable[[Any, dict[str, Any]], Any],
                  call_order: Callable[[Any, dict[str, Any]], list[int]],
                  func: Callable[..., Any], extra: bool) -> Any:
    """pandas' window call for rows ``lo..hi`` of ``data``, in pieces: ``rebuild(slice,
    params)`` makes the window over a slice, ``apply(window, f)`` calls pandas' apply,
    ``call_order(slice, params)`` lists the rows pandas calls the function for (read
    only after a failure, to name its row)."""
    start, end, periods = bounds
    ctx = _worker.current_context()
    outs = []
    a, size = lo, steps(hi - lo, None)
    while a < hi:
        b = min(hi, a + size)
        s0, e0, piece = _piece_bounds(start, end, a, b)
        part = data.iloc[s0:e0]
        params = {"window": piece, "min_periods": periods}
        wrapped, calls = _counted(func, extra)
        began = time.perf_counter()
        try:
            out = apply(rebuild(part, params), wrapped)
        except BaseException:
            _name_failing_row(ctx, part, params, call_order, calls())
            raise
        outs.append(out.iloc[a - s0:b - s0])
        ctx.add_rows(b - a)
        per_row = (time.perf_counter() - began) / (b - a)
        a, size = b, steps(hi - b, per_row)
    result = outs[0] if len(outs) == 1 else pd.concat(outs)
    result.index = data.index[lo:hi]
    return result


def _name_failing_row(ctx: Any, part: Any, params: dict[str, Any],
                      call_order: Callable[[Any, dict[str, Any]], list[int]],
                      calls: int) -> None:
    try:
        rows = call_order(part, params)
    except Exception:  # noqa: BLE001 - the user's error is the one to report
        return
    if 0 < calls <= len(rows):
        ctx.note_row(part.index[rows[calls - 1]])
