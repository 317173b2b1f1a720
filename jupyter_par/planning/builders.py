"""Plans for pandas' own calls: which partitions, which work, and how to put results back.

Each builder takes what the user asked (a frame, a function, pandas' keywords) and
returns a :class:`~jupyter_par.planning.plan.Plan` whose combined result is what the serial
pandas call returns. A call whose meaning partitions would change runs in the caller
as pandas itself (``Plan.in_caller``), with a warning where workers were expected.
The API and the panel build their runs here; the magic builds its own cell plans.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UsageError
from . import group_calls, groups, operations, sources
from .element_map import frame_map  # noqa: F401 - DataFrame.map's plan, found here
from .partition import (
    Partition,
    combine,
    infer_series,
    is_chunked_reader,
    iter_chunks,
    partition_count,
    split_columns,
    split_indexed_items,
    split_rows,
    split_sequence,
)
from .plan import Plan

_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


def name_of(func: Any) -> str:
    """A short name for a function, for labels and messages."""
    return getattr(func, "__name__", type(func).__name__)


def _serial(obj: Any, method: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: getattr(obj, method)(*args, **kwargs)


# -- DataFrame.apply ----------------------------------------------------------------------
def frame_apply(df: pd.DataFrame, func: Any, axis: Any, kwargs: dict[str, Any],
                jobs: int, partitions: int | None) -> Plan:
    """``df.apply(func, axis=axis, **kwargs)``: rows (axis=1) or columns (axis=0)."""
    if axis not in (0, 1, "index", "columns", "rows"):
        msg = f"No axis named {axis!r} for object type DataFrame"
        raise ValueError(msg)
    axis_number = 1 if axis in (1, "columns") else 0
    label = f"apply({name_of(func)}, axis={axis_number})"
    serial = _serial(df, "apply", func, axis=axis, **kwargs)
    if df.shape[0] == 0 or df.shape[1] == 0:
        return Plan.in_caller(serial, label)
    if not callable(func) or isinstance(func, np.ufunc):
        # A name, list or dict of functions, or a ufunc: pandas' own vectorised call.
        return Plan.in_caller(serial, label)
    if kwargs.get("engine") not in (None, "python"):
        return Plan.in_caller(serial, label, f"engine={kwargs['engine']!r} compiles the "
                              "function for the whole frame; ran in the caller")
    if axis_number == 1:
        parts = split_rows(df, partition_count(len(df), jobs, partitions))
        return Plan(parts, operations.RowApply(func, kwargs), _rows_result, label,
                    cuttable=True)
    parts = split_columns(df, partition_count(df.shape[1], jobs, partitions))
    return Plan(parts, operations.ColumnApply(func, kwargs), _columns_result, label,
                unit="columns", columns_cuttable=True)


def _rows_result(results: list[Any]) -> Any:
    combined = combine(results, infer="block")
    if isinstance(combined, pd.Series) and combined.dtype == object:
        combined = infer_series(combined)  # RowApply sends its values uninferred
    return combined


def _columns_result(results: list[Any]) -> Any:
    if results and all(isinstance(r, pd.DataFrame) for r in results):
        return combine(results, axis=1)
    combined = combine(results)
    if isinstance(combined, pd.Series) and combined.dtype == object:
        combined = infer_series(combined)  # ColumnApply sends its values uninferred
    return combined


# -- Series.map / Series.apply ------------------------------------------------------------
def series_call(series: pd.Series, func: Any, method: str, kwargs: dict[str, Any],
                jobs: int, partitions: int | None) -> Plan:
    """``series.map(func)`` or ``series.apply(func)``, element by element in the workers."""
    label = f"{method}({name_of(func)})"
    serial = _serial(series, method, func, **kwargs)
    if len(series) == 0 or not callable(func) or isinstance(func, np.ufunc):
        # A dict or Series mapper is one vectorised lookup in pandas, a ufunc one
        # vectorised call: nothing to share out.
        return Plan.in_caller(serial, label)
    if method == "apply" and kwargs.get("by_row", "compat") is False:
        return Plan.in_caller(serial, label, "by_row=False calls the function once on the "
                              "whole Series; ran in the caller")
    if _PANDAS_MAJOR < 3 and _masked_with_missing(series):
        # pandas 2 hands the function the values of the WHOLE array as numpy gives them:
        # floats when any value is missing. A slice without missing values would get
        # ints, so every partition gets what the whole array gives.
        series = pd.Series(series.to_numpy(), index=series.index, name=series.name)
    parts = split_rows(series, partition_count(len(series), jobs, partitions))
    op = operations.SeriesMap(func, method, kwargs)
    return Plan(parts, op, lambda results: _series_result(results, series), label,
                cuttable=True)


def _series_result(results: list[Any], series: pd.Series) -> Any:
    if not any(isinstance(r, operations.SeriesRows) for r in results):
        return combine(results)
    # Some element gave a Series: pandas decides the shape from the FIRST element over
    # the whole input, and builds one frame from all of them at once.
    values: list[Any] = []
    for r in results:
        values.extend(r.values if isinstance(r, operations.SeriesRows) else list(r))
    if values and isinstance(values[0], pd.Series):
        return pd.DataFrame(values, index=series.index)
    return pd.Series(np.array([*values, None], dtype=object)[:-1], index=series.index,
                     name=series.name)


def _masked_with_missing(series: pd.Series) -> bool:
    """A nullable numeric or boolean column (Int64, Float64, boolean) holding a missing value."""
    dtype = series.dtype
    return (isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iufb"
            and bool(series.isna().any()))


# -- lists --------------------------------------------------------------------------------
def items_map(items: Sequence[Any], func: Callable[..., Any], jobs: int,
              partitions: int | None) -> Plan:
    """``[func(x) for x in items]``, in input order."""
    label = f"map({name_of(func)})"
    if not items:
        return Plan.in_caller(list, label)
    parts = split_indexed_items(items, partition_count(len(items), jobs, partitions))
    return Plan(parts, operations.ItemMap(func), lambda r: combine(r, concat_lists=True),
                label, unit="items")


# -- groupby(...).apply -------------------------------------------------------------------
def groupby_apply(obj: pd.DataFrame | pd.Series, by: Any, func: Any,
                  groupby_kwargs: dict[str, Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any], jobs: int, partitions: int | None) -> Plan:
    """``obj.groupby(by, **groupby_kwargs).apply(func, *args, **kwargs)``."""
    apply_kwargs = {k: kwargs.pop(k) for k in groups.APPLY_KEYWORDS if k in kwargs}
    label = f"groupby_apply({name_of(func)})"

    def serial() -> Any:
        return obj.groupby(by, **groupby_kwargs).apply(func, *args, **apply_kwargs, **kwargs)

    if len(obj) == 0 or not callable(func):
        return Plan.in_caller(serial, label)
    parts = groups.split(obj, by, partition_count(len(obj), jobs, partitions), groupby_kwargs,
                         first=groups.FIRST_SHARE if partitions is None else None)
    if isinstance(parts, str):
        return Plan.in_caller(serial, label, f"{parts}; ran in the caller")
    if not parts:
        return Plan.in_caller(serial, label)
    op = groups.GroupResults(func, by, groupby_kwargs, args, kwargs, apply_kwargs)
    grouped = groups.reusable(parts, groupby_kwargs)
    return Plan(parts, op,
                lambda results: groups.replay(obj, by, groupby_kwargs, apply_kwargs, op, results,
                                              grouped),
                label)


# -- GroupBy.transform / agg / filter / apply ----------------------------------------------
def group_call(grouped: Any, method: str, func: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any], jobs: int, partitions: int | None) -> Plan:
    """``getattr(grouped, method)(func, *args, **kwargs)`` for a pandas GroupBy
    (see :mod:`.group_calls`); an ``apply`` without a column selection is
    :func:`groupby_apply`'s."""

    def apply_plan(source: Any) -> Plan:
        return groupby_apply(source.obj, source.by, func, dict(source.flags), args,
                             dict(kwargs), jobs, partitions)

    return group_calls.group_call(grouped, method, func, args, kwargs, jobs, partitions,
                                  apply_plan)


# -- map_partitions -----------------------------------------------------------------------
def partitions_call(obj: Any, func: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any], jobs: int, partitions: int | None) -> Plan:
    """``func(partition, *args, **kwargs)`` for each partition of ``obj``, combined."""
    op: Any = operations.PartitionCall(func, args, kwargs)
    label = f"map_partitions({name_of(func)})"
    concat_lists, unit = False, "rows"
    parts: Iterable[Partition]
    if isinstance(obj, pd.DataFrame | pd.Series):
        parts = split_rows(obj, partition_count(len(obj), jobs, partitions))
    elif isinstance(obj, list | tuple):
        parts = split_sequence(obj, partition_count(len(obj), jobs, partitions))
        unit, concat_lists = "items", True
    elif isinstance(obj, str | os.PathLike | sources.FileSet):
        files = obj if isinstance(obj, sources.FileSet) else sources.files(obj)
        parts, op, unit = files.partitions(), files.reading(op), "files"
    elif is_chunked_reader(obj) or (isinstance(obj, Iterable) and not isinstance(obj, bytes)):
        parts = iter_chunks(obj)
    else:
        msg = (f"map_partitions needs a DataFrame, Series, list, iterable, chunked reader "
               f"or glob pattern, got {type(obj).__name__}")
        raise UsageError(msg)
    return Plan(parts, op, lambda r: combine(r, concat_lists=concat_lists), label, unit=unit)


# -- rolling / expanding (and their groupby forms) apply ----------------------------------
def window_apply(window: Any, func: Any, call: dict[str, Any], jobs: int,
                 partitions: int | None) -> Plan:
    """``window.apply(func, **call)`` for ``rolling`` / ``expanding``, grouped or not."""
    from . import group_windows, windows

    grouped = isinstance(window, _GROUPED_WINDOWS)
    build = group_windows.plan if grouped else windows.plan
    return build(window, func, call.get("raw", False), call.get("engine"),
                 call.get("engine_kwargs"), call.get("args"), call.get("kwargs"), jobs,
                 partitions)


# pandas 3 renamed these (…GroupBy) and warns on the old names: read only what is defined.
_GROUPED_WINDOWS = tuple(vars(pd.api.typing)[name] for name in (
    "RollingGroupby", "RollingGroupBy", "ExpandingGroupby", "ExpandingGroupBy")
    if name in vars(pd.api.typing))


def resample_call(resampler: Any, method: str, func: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any], jobs: int, partitions: int | None) -> Plan:
    """``resampler.<method>(func, *args, **kwargs)`` (apply / agg / transform)."""
    from . import resample

    return resample.plan(resampler, method, func, args, kwargs, jobs, partitions)
