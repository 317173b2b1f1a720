"""``DataFrame.map(func)``: the function on every element in workers, the frame built by pandas.

pandas infers each result column's dtype from all of its values at once (``None`` beside
floats is NaN, beside strings stays ``None``); a partition sees only some of them. So
the workers send each column's values as the function returned them, and the caller
runs pandas' own ``map`` with a function that hands those values back in the order pandas
asks for them (column by column, row by row), so that pandas infers over the whole
column, as serially.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SerialFallbackWarning
from ..worker import task as _worker
from .group_replay import Mismatch
from .partition import partition_count, split_rows
from .plan import Plan


def _per_element(dtype: Any) -> bool:
    """Whether pandas calls the function once per element of a column of this dtype
    (a categorical maps its categories, a sparse column its stored values)."""
    return not isinstance(dtype, pd.CategoricalDtype | pd.SparseDtype)


@dataclass(frozen=True)
class FrameMap:
    """In a worker: each column's ``Series.map(func)`` values, as returned."""

    func: Callable[..., Any]
    na_action: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: pd.DataFrame) -> list[list[Any]]:
        ctx = _worker.current_context()
        func = functools.partial(self.func, **self.kwargs) if self.kwargs else self.func
        columns: list[list[Any]] = []
        for i in range(part.shape[1]):
            values: list[Any] = []
            append = values.append

            def each(x: Any, func: Any = func, append: Any = append) -> Any:
                value = func(x)
                append(value)
                return value

            column = part.iloc[:, i]
            try:
                column.map(each, na_action=self.na_action)
            except Exception:
                if self.na_action is None and len(values) < len(part):
                    ctx.note_row(part.index[len(values)])
                raise
            columns.append(values)
        ctx.add_rows(len(part))
        return columns


class _Replay:
    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.position = 0

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if self.position >= len(self.values):
            raise Mismatch
        value = self.values[self.position]
        self.position += 1
        return value


def frame_map(df: pd.DataFrame, func: Any, na_action: Any, kwargs: dict[str, Any],
              jobs: int, partitions: int | None) -> Plan:
    """``df.map(func, na_action=na_action, **kwargs)``, element by element in the workers."""
    label = f"map({getattr(func, '__name__', type(func).__name__)})"

    def serial() -> Any:
        return df.map(func, na_action=na_action, **kwargs)

    if (not callable(func) or isinstance(func, np.ufunc) or na_action not in (None, "ignore")
            or df.shape[0] == 0 or df.shape[1] == 0):
        return Plan.in_caller(serial, label)  # pandas' own error, or nothing to share out
    if not all(_per_element(dtype) for dtype in df.dtypes):
        return Plan.in_caller(serial, label, "a categorical or sparse column maps its "
                              "categories, not its rows; ran in the caller")
    parts = split_rows(df, partition_count(len(df), jobs, partitions))
    op = FrameMap(func, na_action, kwargs)

    def combine(results: list[list[list[Any]]]) -> Any:
        values = [v for i in range(df.shape[1]) for part in results for v in part[i]]
        replay = _Replay(values)
        try:
            out = df.map(replay, na_action=na_action, **kwargs)
        except Mismatch:
            out = None
        if out is not None and replay.position == len(values):
            return out
        warnings.warn(f"{label}: pandas called the function differently on the whole frame "
                      "than on its partitions; ran again in the caller",
                      SerialFallbackWarning, stacklevel=2)
        return serial()

    return Plan(parts, op, combine, label)
