"""``groupby(...).rolling(...).apply`` / ``groupby(...).expanding(...).apply`` in parallel.

A group's windows never reach into another group, so whole groups travel, in pandas'
group order, and pandas itself assembles the result (its index of keys and row labels,
its order)::

    kernel: the groups' rows (pandas' own grouping) ──runs of whole groups──▶ partitions
    worker: each group: group.<kind>(same parameters).apply(func) ──▶ the values, per column
    kernel: rolling_groupby.apply(replay of those values) ──▶ pandas builds the result

pandas calls the function column by column, each column over every group; the workers
return their values per column so the replay hands them back in that order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..worker import task as _worker
from .partition import LazyPartition, partition_count
from .plan import Plan
from .windows import called, column_order, kind_of, params_of, selection_of, serial_checks


@dataclass(frozen=True)
class GroupRows:
    """Whole groups, one after another, and each group's row count."""

    data: pd.DataFrame | pd.Series
    lengths: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.data)


def _indices(window: Any) -> dict[Any, np.ndarray] | None:
    """Each group's row positions, in the order pandas computes them (pandas keeps the
    grouping private; ``None`` where it is not found)."""
    grouper = getattr(window, "_grouper", None)
    indices = getattr(grouper, "indices", None)
    return indices if isinstance(indices, dict) else None


def plan(window: Any, func: Any, raw: Any, engine: Any, engine_kwargs: Any,
         args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None, jobs: int,
         partitions: int | None) -> Plan:
    """``window.apply(func, ...)`` for a ``RollingGroupby`` / ``ExpandingGroupby``."""
    kind = kind_of(window)
    name = getattr(func, "__name__", type(func).__name__)
    label = f"groupby.{kind}.apply({name})"
    call = {"raw": raw, "engine": engine, "engine_kwargs": engine_kwargs, "args": args,
            "kwargs": kwargs}
    in_caller = serial_checks(window, func, call, label)
    if in_caller is not None:
        return in_caller

    def serial() -> Any:
        return window.apply(func, **call)

    indices = _indices(window)
    obj = window.obj
    if indices is None:
        return Plan.in_caller(serial, label, "this pandas keeps its groups where jupyter_par "
                              "cannot read them; ran in the caller")
    if not indices or len(obj) == 0 or not callable(func):
        return Plan.in_caller(serial, label)
    groups = list(indices.values())
    sizes = np.array([len(g) for g in groups])
    n_parts = max(1, min(partition_count(int(sizes.sum()), jobs, partitions), len(groups)))
    cumulative = np.cumsum(sizes)
    targets = cumulative[-1] * np.arange(1, n_parts) / n_parts
    cuts = np.unique(np.searchsorted(cumulative, targets, side="left") + 1)
    edges = [0, *[int(c) for c in cuts if 0 < c < len(groups)], len(groups)]
    spans = list(itertools.pairwise(edges))

    def cut(i: int) -> tuple[Any, Any]:
        lo, hi = spans[i]
        rows = np.concatenate(groups[lo:hi])
        return GroupRows(obj.take(rows), tuple(int(x) for x in sizes[lo:hi])), rows

    parts = [LazyPartition(i, int(sizes[lo:hi].sum()), f"groups {lo}-{hi - 1}", cut)
             for i, (lo, hi) in enumerate(spans)]
    op = GroupWindowApply(kind, params_of(window), selection_of(window), func, bool(raw),
                          tuple(args or ()), dict(kwargs or {}))
    return Plan(parts, op, lambda results: replay(window, results), label)


@dataclass(frozen=True)
class GroupWindowApply:
    """In a worker: each group's windows, the function's values kept per column."""

    kind: str
    params: dict[str, Any]
    selection: Any
    func: Callable[..., Any]
    raw: bool = False
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: GroupRows) -> list[list[float]]:
        func, ctx = self.func, _worker.current_context()
        columns: list[list[float]] | None = None
        order = None
        if isinstance(part.data, pd.DataFrame) and len(part.data):
            order = column_order(part.data, self.kind, self.params, self.selection)
        start = 0
        for length in part.lengths:
            group = part.data.iloc[start:start + length]
            start += length
            values: list[Any] = []
            record = _Recorder(func, values)

            window = getattr(group, self.kind)(**self.params)
            if self.selection is not None:
                window = window[self.selection]
            counts = [int(m.sum()) for m in called(group, self.kind, self.params,
                                                   self.selection, order)]
            window.apply(record, raw=self.raw, args=self.args, kwargs=self.kwargs)
            if columns is None:
                columns = [[] for _ in counts]
            position = 0
            for column, count in zip(columns, counts, strict=True):
                column.extend(values[position:position + count])
                position += count
            ctx.add_rows(length)
        return columns or []


class _Recorder:
    """The user's function, its values kept in call order."""

    def __init__(self, func: Callable[..., Any], values: list[Any]) -> None:
        self.func, self.values = func, values

    def __call__(self, window: Any, *args: Any, **kwargs: Any) -> Any:
        value = self.func(window, *args, **kwargs)
        self.values.append(value)
        return value


class _Replay:
    """Hands pandas the workers' values, in the order it asks for them."""

    def __init__(self, values: list[Any]) -> None:
        self._next = iter(values).__next__

    def __call__(self, window: Any) -> Any:
        return self._next()


def replay(window: Any, results: list[list[list[float]]]) -> Any:
    """What ``window.apply(func)`` returns, given the workers' values per column."""
    n_columns = max((len(r) for r in results), default=0)
    flat = [v for c in range(n_columns) for r in results if c < len(r) for v in r[c]]
    return window.apply(_Replay(flat), raw=True)
