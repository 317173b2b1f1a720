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
reports), each piece carrying only the rows its windows reach. Nothing of jupyter_par
runs per window: a failing window's row is found afterwards, from the traceback.
"""

from __future__ import annotations

import inspect
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


def run_in_pieces(data: pd.DataFrame | pd.Series, lo: int, hi: int,
                  bounds: tuple[np.ndarray, np.ndarray, int],
                  apply: Callable[[Any, Callable[..., Any]], Any],
                  rebuild: Callable[[Any, dict[str, Any]], Any],
                  call_order: Callable[[Any, dict[str, Any]], list[tuple[Any, np.ndarray]]],
                  func: Callable[..., Any], raw: bool) -> Any:
    """pandas' window call for rows ``lo..hi`` of ``data``, in pieces: ``rebuild(slice,
    params)`` makes the window over a slice, ``apply(window, f)`` calls pandas' apply,
    ``call_order(slice, params)`` lists, column by column in pandas' order, the rows
    pandas calls the function for (read only after a failure, to name its row)."""
    start, end, periods = bounds
    ctx = _worker.current_context()
    outs = []
    a, size = lo, steps(hi - lo, None)
    while a < hi:
        b = min(hi, a + size)
        s0, e0, piece = _piece_bounds(start, end, a, b)
        part = data.iloc[s0:e0]
        params = {"window": piece, "min_periods": periods}
        began = time.perf_counter()
        try:
            out = apply(rebuild(part, params), func)
        except BaseException as exc:
            _name_failing_row(ctx, exc, func, raw, part, params, call_order)
            raise
        outs.append(out.iloc[a - s0:b - s0])
        ctx.add_rows(b - a)
        per_row = (time.perf_counter() - began) / (b - a)
        a, size = b, steps(hi - b, per_row)
    result = outs[0] if len(outs) == 1 else pd.concat(outs)
    result.index = data.index[lo:hi]
    return result


def _name_failing_row(ctx: Any, exc: BaseException, func: Callable[..., Any], raw: bool,
                      part: Any, params: dict[str, Any],
                      call_order: Callable[[Any, dict[str, Any]], list[tuple[Any, np.ndarray]]]
                      ) -> None:
    """Note the row whose window the function failed on.

    Nothing ran per window to count the calls, so the window is read back from the
    function's own frame in the traceback, and its row is the first (in pandas' call
    order) whose window holds the same values (and, for ``raw=False``, labels): a
    function that fails on a window fails on the first window equal to it. Not found
    (a function pandas' C code calls directly, an argument rebound in the function, a
    failure in pandas itself): no row is named.
    """
    window = _window_argument(exc, func)
    if window is None:
        return
    try:
        row = _first_equal_window(window, raw, part, params, call_order)
    except Exception:  # noqa: BLE001 - the user's error is the one to report
        return
    if row is not None:
        ctx.note_row(part.index[row])


def _window_argument(exc: BaseException, func: Callable[..., Any]) -> Any:
    """The first argument of ``func``'s outermost frame in ``exc``'s traceback."""
    skip = 0
    if inspect.ismethod(func):
        func, skip = func.__func__, 1
    elif not inspect.isfunction(func):
        call = next((vars(k)["__call__"] for k in type(func).__mro__  # its class's method
                     if "__call__" in vars(k)), None)
        if not inspect.isfunction(call):
            return None
        func, skip = call, 1
    code = getattr(func, "__code__", None)
    if code is None or code.co_argcount <= skip:
        return None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return tb.tb_frame.f_locals.get(code.co_varnames[skip])
        tb = tb.tb_next
    return None


def _first_equal_window(window: Any, raw: bool, part: Any, params: dict[str, Any],
                        call_order: Callable[[Any, dict[str, Any]],
                                             list[tuple[Any, np.ndarray]]]) -> int | None:
    if raw:
        values, labels = np.asarray(window, dtype="float64"), None
    elif isinstance(window, pd.Series):
        values, labels = window.to_numpy(dtype="float64", na_value=np.nan), window.index
    else:
        return None
    bounds = params["window"]
    lengths = bounds.end - bounds.start
    for column, rows in call_order(part, params):
        column_values = column.to_numpy(dtype="float64", na_value=np.nan)
        for row in rows[lengths[rows] == len(values)]:
            s, e = bounds.start[row], bounds.end[row]
            if np.array_equal(column_values[s:e], values, equal_nan=True) and (
                    labels is None or labels.equals(part.index[s:e])):
                return int(row)
    return None
