"""The work done on one partition, as small picklable objects.

Each operation calls the pandas method the user would have called serially, on its
partition, in steps of about 200 ms so the worker can report rows done as it goes.
These classes are imported by reference in workers; only the user's function inside
them travels by value (see :mod:`jupyter_par.wire.shipping`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..worker import task as _worker
from .partition import combine


def steps(n_rows: int, seconds_per_row: float | None, target_seconds: float = 0.2) -> int:
    """Rows per progress step: about ``target_seconds`` of work, at least one row.

    Each step is one pandas call with a fixed cost of its own: steps of 50 ms cost a
    row-wise apply of 20 µs rows 4-5% of its throughput, steps of 200 ms under 2%
    (``benchmarks/progress_overhead.py --in-process``). Several workers together still
    move the overall bar at every tick.
    """
    if not seconds_per_row or seconds_per_row <= 0:
        return max(1, min(n_rows, 64))
    return max(1, min(n_rows, math.ceil(target_seconds / seconds_per_row)))


def _in_steps(part: pd.DataFrame | pd.Series, call: Callable[[Any], Any],
              infer: str = "columns") -> Any:
    """Run ``call`` on consecutive row slices of ``part``, reporting rows as it goes."""
    n = len(part)
    if n == 0:
        return call(part)
    ctx = _worker.current_context()
    results = []
    position, size, per_row = 0, 1, None
    while position < n:
        piece = part.iloc[position : position + size]
        started = time.perf_counter()
        results.append(call(piece))
        elapsed = time.perf_counter() - started
        position += len(piece)
        ctx.add_rows(len(piece))
        per_row = elapsed / len(piece)
        size = steps(n - position, per_row)
    if len(results) == 1:
        return results[0]
    if all(isinstance(r, pd.DataFrame | pd.Series) for r in results):
        return combine(results, infer=infer)  # dtypes over all steps, as one call infers
    return results


def _locate_failing_row(piece: pd.Series, func: Callable[..., Any]) -> None:
    """Find the first element of ``piece`` on which ``func`` raises, and note its label.

    ``Series.map`` runs in C with no hook per element, so the failing row is found by
    running the failed step again, element by element, its output discarded.
    """
    ctx = _worker.current_context()
    for label, value in piece.items():
        try:
            func(value)
        except Exception:  # noqa: BLE001 - we only want the position
            ctx.note_row(label)
            return


@dataclass(frozen=True)
class RowApply:
    """``DataFrame.apply(func, axis=1, ...)`` on a row partition."""

    func: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: pd.DataFrame) -> Any:
        func = self.func
        values: list[Any] = []
        append = values.append
        if self.kwargs.get("args") or set(self.kwargs) - {"raw", "result_type"}:
            def each_row(row: Any, *args: Any, **kwargs: Any) -> Any:
                result = func(row, *args, **kwargs)
                append(result)
                return result
        else:
            # The common case gets the leanest wrapper: this runs once per row.
            def each_row(row: Any) -> Any:
                result = func(row)
                append(result)
                return result

        try:
            out = _in_steps(part, lambda piece: piece.apply(each_row, axis=1, **self.kwargs),
                            infer="block")
        except BaseException:
            # pandas calls the function row by row, in order: the rows before the
            # failing one each left a value, so the failing row is the next one.
            if len(values) < len(part):
                _worker.current_context().note_row(part.index[len(values)])
            raise
        if isinstance(out, pd.Series) and len(values) == len(out) \
                and out.dtype.kind not in "biufc":
            # One value per row, sent as returned: a dtype inferred from these rows alone
            # can lose what pandas keeps when it infers once over all rows (NaN beside
            # NaT turns NaT); the caller infers once, over every partition. Numbers stay
            # typed: they lose nothing, and pickling them as objects costs ~1.7 s per 1M.
            return pd.Series(values, index=out.index, name=out.name, dtype=object)
        return out


@dataclass(frozen=True)
class ColumnApply:
    """``DataFrame.apply(func, axis=0, ...)`` on a column partition."""

    func: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: pd.DataFrame) -> Any:
        func, ctx = self.func, _worker.current_context()
        values: list[Any] = []

        def each_column(column: Any, *args: Any, **kwargs: Any) -> Any:
            ctx.note_row(getattr(column, "name", None))
            result = func(column, *args, **kwargs)
            values.append(result)
            ctx.add_rows(1)
            return result

        out = part.apply(each_column, axis=0, **self.kwargs)
        if isinstance(out, pd.Series) and len(values) == len(out):
            # Values as the function returned them: inferring a dtype from this slice
            # of columns alone can lose information (NaN next to NaT becomes NaT) that
            # pandas keeps when it infers once over all columns (the caller does that).
            return pd.Series(values, index=out.index, name=out.name, dtype=object)
        return out


@dataclass(frozen=True)
class SeriesRows:
    """The values a partition's ``Series.apply`` returned where they include Series.

    pandas builds one frame from every element's Series at once (dtypes over all of
    them), so the caller does that over all partitions, not each partition alone.
    """

    values: list[Any]


@dataclass(frozen=True)
class SeriesMap:
    """``Series.map(func, ...)`` or ``Series.apply(func, ...)`` on a row partition."""

    func: Callable[..., Any]
    method: str = "map"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: pd.Series) -> Any:
        func, values = self.func, []

        def each(value: Any, *args: Any, **kwargs: Any) -> Any:
            result = func(value, *args, **kwargs)
            values.append(result)
            return result

        # Only Series.apply turns Series results into a frame, so only it needs the raw
        # values; map calls the function bare (a wrapper frame per element costs ~40%).
        called = each if self.method == "apply" else func

        def run(piece: pd.Series) -> Any:
            try:
                return getattr(piece, self.method)(called, **self.kwargs)
            except Exception:
                if callable(self.func) and not self.kwargs:
                    _locate_failing_row(piece, self.func)
                raise

        out = _in_steps(part, run)
        if isinstance(out, pd.DataFrame) or (
                isinstance(out, pd.Series) and out.dtype == object and len(values) == len(part)
                and any(isinstance(v, pd.Series) for v in values)):
            return SeriesRows(values)
        return out


@dataclass(frozen=True)
class GroupApply:
    """``obj.groupby(by, ...).apply(func, ...)`` on a partition of whole groups."""

    func: Callable[..., Any]
    by: Any
    groupby_kwargs: dict[str, Any] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: pd.DataFrame | pd.Series) -> Any:
        func, ctx = self.func, _worker.current_context()

        def each_group(group: Any, *args: Any, **kwargs: Any) -> Any:
            ctx.note_row(getattr(group, "name", None))
            result = func(group, *args, **kwargs)
            ctx.add_rows(len(group))
            return result

        grouped = part.groupby(self.by, **self.groupby_kwargs)
        return grouped.apply(each_group, *self.args, **self.kwargs)


@dataclass(frozen=True)
class ItemMap:
    """``[func(item) for item in items]`` on a slice of a list.

    The partition arrives as ``(start, items)`` so a failure can name the item's
    position in the whole input.
    """

    func: Callable[..., Any]

    def __call__(self, part: tuple[int, list[Any]]) -> list[Any]:
        start, items = part
        func, ctx = self.func, _worker.current_context()
        out = []
        for position, item in enumerate(items, start):
            ctx.note_row(position)
            out.append(func(item))
            ctx.add_rows(1)
        return out


@dataclass(frozen=True)
class PartitionCall:
    """``func(partition, *args, **kwargs)``: user code sees the whole partition."""

    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: Any) -> Any:
        return self.func(part, *self.args, **self.kwargs)
