"""Plans for pandas' window calls: ``rolling(...).apply`` and ``expanding(...).apply``.

A window's value depends on rows outside its own row, so a partition travels with the
rows before it (and after it, for ``center=True``) that its windows reach::

    kernel: window parameters read from the pandas object; own rows [a, b) per partition;
            overlap found by rows (``window``) or by time (searchsorted on the index)
    worker: data[s:e].rolling(same parameters).apply(func), func called only for the
            windows of rows [a, b) (each window runs exactly once), own rows returned
    kernel: the partitions' own rows concatenated, in order

Where pandas' own window bounds can be read (rows or time, ``expanding``, no ``step``,
``min_periods`` of at least 1), the worker hands them back to pandas with the overlap
rows' windows emptied, in pieces (``window_bounds.py``): pandas never calls the
function for those, and nothing of jupyter_par runs per window. Elsewhere,
which windows pandas calls ``func`` for (those with at least ``min_periods`` finite
values) is found first, vectorised, by the same pandas call on a frame of 0/NaN marks,
and a wrapper skips the function on the overlap rows' windows without guessing
pandas' window bounds.

``expanding`` needs every row before a partition: partition ``k`` of ``P`` carries
``k/P`` of the input, so the rows moved grow with the partition count (about ``P/2``
times the input in all); the function still runs once per window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from ..worker import task as _worker
from .partition import LazyPartition, combine, partition_count
from .plan import Plan
from .window_bounds import pandas_bounds, run_in_pieces

#: Window parameters read back from a ``Rolling`` / ``Expanding`` object (public attributes).
ROLLING_PARAMS = ("window", "min_periods", "center", "win_type", "on", "closed", "step", "method")
EXPANDING_PARAMS = ("min_periods", "method")


@dataclass(frozen=True)
class Windowed:
    """A partition's own rows ``[own_start, own_stop)`` of ``data``, with the overlap around."""

    data: pd.DataFrame | pd.Series
    own_start: int
    own_stop: int

    def __len__(self) -> int:
        return self.own_stop - self.own_start


def kind_of(window: Any) -> str:
    """``"rolling"`` or ``"expanding"``: the pandas method that made ``window``."""
    return "expanding" if isinstance(window, pd.api.typing.Expanding) else "rolling"


def params_of(window: Any) -> dict[str, Any]:
    """The keywords that rebuild ``window`` on another slice of the same object."""
    names = EXPANDING_PARAMS if kind_of(window) == "expanding" else ROLLING_PARAMS
    return {name: getattr(window, name) for name in names if hasattr(window, name)}


def selection_of(window: Any) -> Any:
    """The column selection of ``df.rolling(...)[cols]`` (pandas keeps it private)."""
    return getattr(window, "_selection", None)


def _time_key(obj: pd.DataFrame | pd.Series, on: Any) -> pd.Index | None:
    if on is None:
        key = obj.index
    elif isinstance(obj, pd.DataFrame) and on in obj.columns:
        key = pd.Index(obj[on])
    elif on in [n for n in obj.index.names if n is not None]:
        key = obj.index.get_level_values(on)
    else:
        return None
    return key if isinstance(key, pd.DatetimeIndex | pd.TimedeltaIndex) else None


def _time_reach(key: pd.Index, window: Any, edges: list[int], center: bool
                ) -> list[tuple[int, int]] | None:
    """Rows each partition's windows reach on a time key: ``(start, stop)`` per partition."""
    try:
        span = pd.Timedelta(pd.tseries.frequencies.to_offset(window))
        values = key.as_unit("ns").asi8.astype(np.int64)
    except (TypeError, ValueError, AttributeError):
        return None
    reach = int(span.value)
    if key.is_monotonic_increasing:
        ordered = values
    elif key.is_monotonic_decreasing:
        ordered = -values
    else:
        return None
    out = []
    for a, b in itertools.pairwise(edges):
        start = int(np.searchsorted(ordered, ordered[a] - reach, side="left"))
        stop = int(np.searchsorted(ordered, ordered[b - 1] + reach, side="right")) if center else b
        out.append((start, stop))
    return out


def _edges(n_rows: int, n_parts: int, step: int) -> list[int]:
    """Partition boundaries, on pandas' step grid so each output row has one owner."""
    raw = np.linspace(0, n_rows, n_parts + 1)
    edges = sorted({min(n_rows, round(e / step) * step) for e in raw} | {0, n_rows})
    return edges


def plan(window: Any, func: Any, raw: Any, engine: Any, engine_kwargs: Any,
         args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None, jobs: int,
         partitions: int | None) -> Plan:
    """``window.apply(func, raw=raw, ...)`` for a ``Rolling`` or ``Expanding`` object."""
    kind = kind_of(window)
    name = getattr(func, "__name__", type(func).__name__)
    label = f"{kind}.apply({name})"
    call = {"raw": raw, "engine": engine, "engine_kwargs": engine_kwargs, "args": args,
            "kwargs": kwargs}

    def serial() -> Any:
        return window.apply(func, **call)

    checked = serial_checks(window, func, call, label)
    if checked is not None:
        return checked
    params, obj, selection = params_of(window), window.obj, selection_of(window)
    if getattr(window, "axis", 0) not in (0, "index", "rows"):
        return Plan.in_caller(serial, label, "axis=1 windows run along columns; ran in the caller")
    step = int(params.get("step") or 1)
    n = len(obj)
    edges = _edges(n, partition_count(n, jobs, partitions), step)
    if len(edges) < 3:
        return Plan.in_caller(serial, label)
    size = params.get("window")
    if kind == "expanding":
        reach = [(0, b) for b in edges[1:]]
    elif isinstance(size, BaseIndexer):
        return Plan.in_caller(serial, label, f"a custom window indexer "
                              f"({type(size).__name__}) gives bounds only while it runs; "
                              "ran in the caller")
    elif isinstance(size, int | np.integer):
        # A window of w rows reaches w rows back (closed="both"); pandas' window of 0
        # rows ends a row early (its offset is -1) and reaches one.
        back, ahead = max(int(size), 1), (int(size) // 2 + 1) if params.get("center") else 0
        reach = [(max(0, (max(0, a - back) // step) * step), min(n, b + ahead))
                 for a, b in itertools.pairwise(edges)]
    else:
        key = _time_key(obj, params.get("on"))
        found = None if key is None else _time_reach(key, size, edges, bool(params.get("center")))
        if found is None:
            return Plan.in_caller(serial, label, f"the window {size!r} is not a fixed time span "
                                  "over a sorted datetime key; ran in the caller")
        reach = [(min(s, a), e) for (s, e), a in zip(found, edges[:-1], strict=True)]
    op = WindowApply(kind, params, selection, func, bool(raw), tuple(args or ()),
                     dict(kwargs or {}))
    cuts = list(zip(edges[:-1], edges[1:], reach, strict=True))

    def cut(i: int) -> tuple[Any, Any]:
        a, b, (s, e) = cuts[i]
        return Windowed(obj.iloc[s:e], a - s, b - s), None

    parts = [LazyPartition(i, b - a, f"rows {a}-{b - 1}", cut)
             for i, (a, b, _) in enumerate(cuts)]
    return Plan(parts, op, combine, label)


def serial_checks(window: Any, func: Any, call: dict[str, Any], label: str) -> Plan | None:
    """The in-caller plan pandas' own rules call for, or ``None``; arguments pandas rejects
    raise here, as pandas raises them, before any worker starts."""
    kind, params = kind_of(window), params_of(window)

    def serial() -> Any:
        return window.apply(func, **call)

    engine = call.get("engine")
    if engine == "numba" or (engine is None and pd.get_option("compute.use_numba")):
        return Plan.in_caller(serial, label, "engine='numba' compiles the function for the "
                              "whole object; ran in the caller")
    if params.get("method") == "table":
        return Plan.in_caller(serial, label, "method='table' hands the function every column "
                              "at once; ran in the caller")
    # The same call on none of the rows checks the arguments and calls nothing.
    try:
        empty = _rebuild(window.obj.iloc[:0], kind, params, selection_of(window))
    except Exception:  # noqa: BLE001 - pandas builds this window only on the whole object
        empty = None
    if empty is not None:
        empty.apply(func, **call)
    if len(window.obj) == 0 or not callable(func):
        return Plan.in_caller(serial, label)
    return None


def _rebuild(data: Any, kind: str, params: dict[str, Any], selection: Any) -> Any:
    window = getattr(data, kind)(**params)
    return window if selection is None else window[selection]


@dataclass(frozen=True)
class WindowApply:
    """In a worker: ``data.<kind>(**params).apply(func, ...)`` on the own rows' windows only."""

    kind: str
    params: dict[str, Any]
    selection: Any
    func: Callable[..., Any]
    raw: bool = False
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: Windowed) -> Any:
        data = part.data
        step = int(self.params.get("step") or 1)
        lo, hi = -(-part.own_start // step), -(-part.own_stop // step)
        window = _rebuild(data, self.kind, self.params, self.selection)
        bounds = pandas_bounds(window, len(data)) if hi > lo else None
        if bounds is not None:
            return run_in_pieces(data, lo, hi, bounds, self._apply,
                                 lambda piece, params: _rebuild(piece, "rolling", params,
                                                                self.selection),
                                 self._call_order(data), self.func, self.raw)
        try:
            order = _calls(data, self.kind, self.params, self.selection, lo, hi)
        except Exception:  # noqa: BLE001 - a column pandas refuses: let pandas say so below
            order = None
        func: Callable[..., Any] = self.func
        finish = None
        if order is not None:
            func, finish = _own_windows(self.func, order, data.index[::step],
                                        _worker.current_context(), hi - lo,
                                        bool(self.args or self.kwargs))
        out = self._apply(window, func)
        if finish is not None:
            finish()
        return out.iloc[lo:hi]

    def _apply(self, window: Any, func: Callable[..., Any]) -> Any:
        return window.apply(func, raw=self.raw, args=self.args, kwargs=self.kwargs)

    def _call_order(self, data: Any) -> Callable[[Any, dict[str, Any]],
                                                 list[tuple[Any, np.ndarray]]]:
        """For a piece: column by column, in pandas' order, the column and the rows
        pandas calls the function for (read only to name a failing window's row)."""
        def order(piece: Any, params: dict[str, Any]) -> list[tuple[Any, np.ndarray]]:
            if isinstance(data, pd.Series):
                labels, columns = None, [piece]
            else:
                labels = column_order(data, self.kind, self.params, self.selection)
                columns = [piece[label] for label in labels]
            masks = called(piece, "rolling", params, self.selection, labels)
            return [(column, np.flatnonzero(mask)) for column, mask in zip(columns, masks,
                                                                         strict=True)]
        return order


def _marks(obj: pd.DataFrame | pd.Series, on: Any) -> pd.DataFrame | pd.Series:
    """0.0 where a value is finite, NaN elsewhere: pandas calls the function on a window
    only when its finite values reach ``min_periods``, as a sum of these marks does."""
    def mark(column: pd.Series) -> np.ndarray:
        try:
            values = column.to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            return np.full(len(column), np.nan)
        return np.where(np.isfinite(values), 0.0, np.nan)

    if isinstance(obj, pd.Series):
        return pd.Series(mark(obj), index=obj.index, name=obj.name)
    columns = {i: (obj.iloc[:, i] if obj.columns[i] == on and on is not None
                   else mark(obj.iloc[:, i])) for i in range(obj.shape[1])}
    marked = pd.DataFrame(columns, index=obj.index)
    marked.columns = obj.columns
    return marked


def column_order(data: pd.DataFrame, kind: str, params: dict[str, Any], selection: Any
                  ) -> list[Any]:
    """The labels of the columns, in the order pandas hands them to the function (pandas 2
    sorts them when ``on=`` is given, pandas 3 does not): one window per column of a
    one-row frame whose columns hold their own position."""
    head = data.iloc[:1]
    on = params.get("on")
    probe = pd.DataFrame({i: (head.iloc[:, i] if head.columns[i] == on and on is not None
                              else [float(i)]) for i in range(head.shape[1])}, index=head.index)
    probe.columns = head.columns
    seen: list[int] = []
    quick = {**params, "min_periods": 0}
    if kind == "rolling":
        quick.update(center=False, closed=None, step=None)
        if isinstance(quick.get("window"), int | np.integer):
            quick["window"] = 1
    _rebuild(probe, kind, quick, selection).apply(lambda x: seen.append(int(x[0])) or 0.0,
                                                  raw=True)
    return [data.columns[i] for i in seen]


def called(data: pd.DataFrame | pd.Series, kind: str, params: dict[str, Any],
           selection: Any, order: list[Any] | None = None) -> list[np.ndarray]:
    """For each column pandas hands the function, in its order: which output rows of
    ``data`` the function is called for."""
    marked = _rebuild(_marks(data, params.get("on")), kind, params, selection).sum()
    if isinstance(marked, pd.Series):
        return [marked.notna().to_numpy()]
    if not data.columns.is_unique:
        msg = "duplicate column labels"
        raise ValueError(msg)
    if order is None:
        order = column_order(data, kind, params, selection)
    return [marked[label].notna().to_numpy() for label in order]


def _calls(data: pd.DataFrame | pd.Series, kind: str, params: dict[str, Any], selection: Any,
           lo: int, hi: int) -> list[int]:
    """For each call pandas will make, in order: the output row it is for, or -1 where
    that row is overlap (the function is skipped there)."""
    masks = called(data, kind, params, selection)
    rows = np.arange(len(masks[0]))
    rows[:lo] = -1
    rows[hi:] = -1
    return [r for mask in masks for r in rows[mask].tolist()]


def _own_windows(func: Callable[..., Any], order: list[int], labels: pd.Index, ctx: Any,
                 rows: int, extra: bool) -> tuple[Callable[..., Any], Callable[[], None]]:
    """The user's function, called for the own rows' windows and skipped on the others;
    and a function that reports the rows not yet counted.

    pandas calls it once per window (a million times for a million rows), so it stays a
    bare closure: one ``next`` to learn the window's row, the call, and at every 256th
    row a progress report. A failure names the window's row. ``extra``: pandas passes
    ``args`` / ``kwargs`` along.
    """
    next_row = iter(order).__next__
    columns = max(1, sum(1 for r in order if r >= 0) // max(1, rows))
    reported = [0]

    def tick() -> None:
        # Every 256 rows of each column: 256 / columns rows of the partition done.
        done = min(rows, reported[0] + 256 // columns)
        ctx.add_rows(done - reported[0])
        reported[0] = done

    def failed(row: int) -> None:
        if row >= 0:
            ctx.note_row(labels[row])

    def own_window(window: Any) -> Any:
        try:
            row = next_row()
        except StopIteration:  # more calls than foreseen: run them, never lose a window
            row = -2
        if row == -1:
            return math.nan
        if not row & 255:
            tick()
        try:
            return func(window)
        except BaseException:
            failed(row)
            raise

    def own_window_extra(window: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            row = next_row()
        except StopIteration:  # more calls than foreseen: run them, never lose a window
            row = -2
        if row == -1:
            return math.nan
        if not row & 255:
            tick()
        try:
            return func(window, *args, **kwargs)
        except BaseException:
            failed(row)
            raise

    def finish() -> None:
        ctx.add_rows(rows - reported[0])
        reported[0] = rows

    wrapped = own_window_extra if extra else own_window
    wrapped.__name__ = getattr(func, "__name__", "func")
    return wrapped, finish
