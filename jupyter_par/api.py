"""The plain Python API: pandas' own calls, run in parallel, returning what pandas returns.

Each function cuts its input into partitions (:mod:`jupyter_par.partition`), picks the
operation that does on one partition what pandas would do on the whole
(:mod:`jupyter_par.operations`), runs it through the engine, and puts the results
back together in the original order.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from . import _display, engine, operations, sources, transport
from . import shared as _shared
from .backends import backend_class
from .config import Options, resolve
from .errors import (
    InlineFallbackWarning,
    JupyterParWarning,
    PartialResultWarning,
    RemoteTraceback,
    ShippingError,
    UsageError,
    short_traceback,
)
from .partition import (
    Partition,
    combine,
    infer_series,
    is_chunked_reader,
    iter_chunks,
    partition_count,
    split_columns,
    split_groups,
    split_indexed_items,
    split_rows,
    split_sequence,
)
from .progress import ProgressSink
from .sinks import sinks_for

_OPTION_NAMES = ("jobs", "backend", "partitions", "timeout", "retries", "on_error",
                 "start_method", "progress", "scheduler", "shared", "inline_fallback")


def _split_options(
    kwargs: dict[str, Any],
) -> tuple[Options, Mapping[str, Any] | None, dict[str, Any]]:
    """Take jupyter_par's own keywords out of ``kwargs`` and resolve them.

    Returns the run options, the ``shared`` objects, and the keywords left for pandas
    or the function.
    """
    ours = {name: kwargs.pop(name) for name in _OPTION_NAMES if name in kwargs}
    shared = ours.pop("shared", None)
    return resolve(**ours), shared, kwargs


def show_outputs(outcome: engine.RunOutcome, stream: Any = None) -> None:
    """Print what each partition printed, grouped under one heading per partition."""
    stream = stream or sys.stdout
    warned: dict[str, list[int]] = {}
    for out in outcome.outputs:
        if out.output or out.displays:
            stream.write(f"[partition {out.partition}, worker {out.worker}]\n")
            _display.show_output(out.output, out.displays, stream)
        for text in out.warnings:
            warned.setdefault(text, []).append(out.partition)
    # The same warning from many partitions is shown once, naming the partitions.
    for text, parts in warned.items():
        where = f"partition {parts[0]}" if len(parts) == 1 else f"{len(parts)} partitions"
        stream.write(f"[warning in {where}] {text}\n")


def execute(
    parts: Sequence[Partition] | Iterable[Partition],
    op: Any,
    options: Options,
    *,
    label: str,
    unit: str = "rows",
    sinks: Sequence[ProgressSink] | None = None,
    cancel: Any = None,
    shared: Mapping[str, Any] | None = None,
    fold: Callable[[Any], None] | None = None,
) -> engine.RunOutcome:
    """Run ``op`` over ``parts``, show captured output, warn about skipped partitions.

    ``shared`` objects are visible to the function as ``jp.shared[name]`` (sent once
    per worker, see :mod:`jupyter_par.shared`); ``fold`` receives each result in
    partition order instead of keeping them all.
    """
    known = isinstance(parts, Sequence)
    to_processes = backend_class(options.backend).uses_processes
    # Only the local process pool falls back: a cluster asked for is a cluster used.
    if known and options.backend == "processes" and options.inline_fallback and not shared:
        reason = transport.too_small_to_move(parts, op, options.jobs)
        if reason is not None:
            warnings.warn(reason, InlineFallbackWarning, stacklevel=3)
            options = replace(options, backend="inline")
            to_processes = False
    # Dask workers may be on other machines, where this one's shared memory is not.
    in_band = options.backend == "dask"
    with _shared.sharing(shared, to_processes=to_processes, in_band=in_band) as wrap:
        try:
            outcome = engine.run(
                parts,
                wrap(op),
                options,
                sinks=sinks_for(options.progress, label) if sinks is None else sinks,
                rows_total=sum(p.size for p in parts) if known else None,
                partitions_total=len(parts) if known else None,
                label=label,
                unit=unit,
                cancel=cancel,
                fold=fold,
            )
        except BaseException as exc:
            # What the partitions printed before the failure is what one debugs with.
            show_outputs(engine.RunOutcome([], list(getattr(exc, "partition_outputs", []))))
            if isinstance(exc, ShippingError) and not isinstance(exc.__cause__, RemoteTraceback):
                # The message names the object and what to do; the engine's frames and
                # the pickler's own error would only bury it.
                exc._render_traceback_ = functools.partial(short_traceback, exc)
                raise exc.with_traceback(None) from None
            raise
    show_outputs(outcome)
    if outcome.failures:
        names = ", ".join(f.site.describe() for f in outcome.failures[:5])
        more = f" and {len(outcome.failures) - 5} more" if len(outcome.failures) > 5 else ""
        warnings.warn(
            f"{len(outcome.failures)} partition(s) failed and were skipped: {names}{more}",
            PartialResultWarning,
            stacklevel=3,
        )
    return outcome


def _check_callable(func: Any, name: str = "func") -> None:
    if not callable(func):
        msg = f"{name} must be callable, got {type(func).__name__}: {func!r}"
        raise UsageError(msg)


def _check_pandas(obj: Any, kinds: tuple[type, ...], call: str) -> None:
    if not isinstance(obj, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        msg = f"{call} needs a {names}, got {type(obj).__name__}"
        raise UsageError(msg)


def apply(obj: pd.DataFrame | pd.Series, func: Callable[..., Any], axis: Any = 0,
          **kwargs: Any) -> Any:
    """Parallel ``obj.apply(func, axis=axis, **kwargs)``, same result as pandas.

    Parameters
    ----------
    obj
        A DataFrame (rows with ``axis=1``, columns with ``axis=0``) or a Series.
    func
        Any function, lambda or closure, including ones defined in a notebook.
    axis
        As in pandas; ignored for a Series.
    **kwargs
        jupyter_par's options (``jobs``, ``backend``, ``partitions``, ``timeout``,
        ``retries``, ``on_error``, ``start_method``, ``progress``); every other
        keyword goes to pandas' ``apply`` (``raw``, ``result_type``, ``args``, ...).

    Examples
    --------
    >>> jp.apply(df, score, axis=1, jobs=8)  # doctest: +SKIP
    """
    _check_pandas(obj, (pd.DataFrame, pd.Series), "apply")
    _check_callable(func)
    options, objects, pandas_kwargs = _split_options(dict(kwargs))
    if isinstance(obj, pd.Series):
        return _series_call(obj, func, "apply", pandas_kwargs, options, objects)
    axis_number = obj._get_axis_number(axis) if hasattr(obj, "_get_axis_number") else axis
    if len(obj.index) == 0 or len(obj.columns) == 0:
        return obj.apply(func, axis=axis, **pandas_kwargs)
    if axis_number == 1:
        n = partition_count(len(obj), options.jobs, options.partitions)
        parts = split_rows(obj, n)
        outcome = execute(parts, operations.RowApply(func, pandas_kwargs), options,
                          label=f"apply({_name(func)}, axis=1)", shared=objects)
        combined = combine(outcome.results, infer="block")
        if isinstance(combined, pd.Series) and combined.dtype == object:
            combined = infer_series(combined)  # RowApply sends its values uninferred
        return combined
    n = partition_count(obj.shape[1], options.jobs, options.partitions)
    parts = split_columns(obj, n)
    outcome = execute(parts, operations.ColumnApply(func, pandas_kwargs), options,
                      label=f"apply({_name(func)}, axis=0)", unit="columns", shared=objects)
    frames = outcome.results
    if frames and all(isinstance(r, pd.DataFrame) for r in frames):
        return pd.concat(frames, axis=1)
    combined = combine(frames)
    if isinstance(combined, pd.Series) and combined.dtype == object:
        combined = infer_series(combined)  # ColumnApply sends its values uninferred
    return combined


def _series_call(series: pd.Series, func: Any, method: str, pandas_kwargs: dict[str, Any],
                 options: Options, objects: Mapping[str, Any] | None = None) -> Any:
    if len(series) == 0:
        return getattr(series, method)(func, **pandas_kwargs)
    if _PANDAS_MAJOR < 3 and callable(func) and _masked_with_missing(series):
        # pandas 2 hands the function the values of the WHOLE array as numpy gives them:
        # floats when any value is missing. A slice without missing values would get
        # ints, so every partition gets what the whole array gives.
        series = pd.Series(series.to_numpy(), index=series.index, name=series.name)
    n = partition_count(len(series), options.jobs, options.partitions)
    outcome = execute(split_rows(series, n), operations.SeriesMap(func, method, pandas_kwargs),
                      options, label=f"{method}({_name(func)})", shared=objects)
    return combine(outcome.results)


_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


def _masked_with_missing(series: pd.Series) -> bool:
    """A nullable numeric or boolean column (Int64, Float64, boolean) holding a missing value."""
    dtype = series.dtype
    return (isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iufb"
            and bool(series.isna().any()))


def map(obj: pd.Series | Sequence[Any] | Iterable[Any], func: Callable[..., Any],
        **kwargs: Any) -> Any:
    """Parallel ``series.map(func)``; for a list or other iterable, ``[func(x) for x in obj]``.

    Returns a Series for a Series (same index, name and dtype pandas would give), a
    list in input order otherwise. Keywords as in :func:`apply` (``na_action`` for a
    Series goes to pandas).
    """
    options, objects, pandas_kwargs = _split_options(dict(kwargs))
    if isinstance(obj, pd.Series):
        if not callable(func) and not isinstance(func, dict | pd.Series):
            _check_callable(func)
        return _series_call(obj, func, "map", pandas_kwargs, options, objects)
    _check_callable(func)
    if pandas_kwargs:
        msg = f"unexpected keyword(s) for a list input: {', '.join(pandas_kwargs)}"
        raise UsageError(msg)
    if isinstance(obj, pd.DataFrame):
        msg = "map needs a Series or a list; for a DataFrame use jp.apply(df, func, axis=1)"
        raise UsageError(msg)
    if isinstance(obj, str | bytes) or not isinstance(obj, Iterable):
        msg = f"map needs a Series, a list or another iterable, got {type(obj).__name__}"
        raise UsageError(msg)
    items = obj if isinstance(obj, Sequence) else list(obj)
    if not items:
        return []
    n = partition_count(len(items), options.jobs, options.partitions)
    outcome = execute(split_indexed_items(items, n), operations.ItemMap(func), options,
                      label=f"map({_name(func)})", unit="items", shared=objects)
    return combine(outcome.results, concat_lists=True)


def groupby_apply(obj: pd.DataFrame | pd.Series, by: Any, func: Callable[..., Any],
                  *args: Any, **kwargs: Any) -> Any:
    """Parallel ``obj.groupby(by).apply(func, *args)``, each group wholly in one worker.

    Keywords of ``DataFrame.groupby`` (``sort``, ``dropna``, ``group_keys``,
    ``observed``, ``as_index``) go to ``groupby``; jupyter_par's options are taken
    out; the rest go to ``func`` as ``apply`` would pass them.
    """
    _check_pandas(obj, (pd.DataFrame, pd.Series), "groupby_apply")
    _check_callable(func)
    options, objects, rest = _split_options(dict(kwargs))
    groupby_names = ("sort", "dropna", "group_keys", "observed", "as_index", "level")
    groupby_kwargs = {k: rest.pop(k) for k in groupby_names if k in rest}
    if isinstance(obj, pd.DataFrame) and isinstance(by, str | list):
        missing = [c for c in ([by] if isinstance(by, str) else by)
                   if isinstance(c, str) and c not in obj.columns and c not in obj.index.names]
        if missing:
            msg = (f"groupby column(s) {missing} not found; the columns are "
                   f"{list(obj.columns)[:20]}")
            raise UsageError(msg)
    if len(obj) == 0:
        return obj.groupby(by, **groupby_kwargs).apply(func, *args, **rest)
    groupby_kwargs, whole = _observed_groups(obj, by, groupby_kwargs)
    if whole:
        warnings.warn(
            "groupby_apply: with observed=False the categorical keys have empty groups, which "
            "pandas passes to func as well; ran as one partition (pass observed=True to run "
            "in parallel)", JupyterParWarning, stacklevel=2)
        parts = [Partition(0, obj, len(obj), "all groups")]
    else:
        n = partition_count(len(obj), options.jobs, options.partitions)
        parts = split_groups(obj, by, n, **groupby_kwargs)
    op = operations.GroupApply(func, by, groupby_kwargs, args, rest)
    outcome = execute(parts, op, options, label=f"groupby_apply({_name(func)})",
                      shared=objects)
    results = outcome.results
    combined = combine(results)
    if groupby_kwargs.get("group_keys") is False and _is_transform_like(combined, obj):
        # pandas puts transform-like results back in the input's row order.
        combined = combined.reindex(obj.index)
    return combined


def _observed_groups(obj: pd.DataFrame | pd.Series, by: Any,
                     groupby_kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Keywords that give each partition only its own groups, or whether to run in one piece.

    With ``observed=False`` (pandas 2's default) every ``groupby`` over categorical keys
    yields every category, so each partition would return every group. Where all
    groups have rows, ``observed=True`` gives the same groups without that; where some
    are empty, pandas calls ``func`` on those too, in order, and only one partition
    holding the whole input can do the same (``True`` then).
    """
    keys = by if isinstance(by, list) else [by]
    columns = isinstance(obj, pd.DataFrame) and all(
        isinstance(k, str) and k in obj.columns for k in keys)
    if columns and not any(isinstance(obj[k].dtype, pd.CategoricalDtype) for k in keys):
        return groupby_kwargs, False  # only categorical keys have unobserved groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas 2: observed's default
        grouped = obj.groupby(by, **groupby_kwargs)
        if grouped.observed:
            return groupby_kwargs, False
        if bool((grouped.size() > 0).all()):
            return {**groupby_kwargs, "observed": True}, False
    return groupby_kwargs, True


def _is_transform_like(result: Any, obj: pd.DataFrame | pd.Series) -> bool:
    return (
        isinstance(result, pd.DataFrame | pd.Series)
        and len(result) == len(obj)
        and result.index.is_unique
        and obj.index.is_unique
        and bool(result.index.isin(obj.index).all())
    )


def map_partitions(obj: Any, func: Callable[..., Any], *args: Any,
                   reduce: Callable[[Any, Any], Any] | None = None, **kwargs: Any) -> Any:
    """``func(partition, *args, **kwargs)`` for each partition of ``obj``, combined.

    ``obj`` may be a DataFrame or Series (row partitions), a list (slices of it), a
    lazy iterable such as ``pd.read_csv(path, chunksize=N)`` (one chunk per partition,
    read as workers free up, so a file larger than memory streams through), or a glob
    pattern such as ``"logs/*.csv"`` / :func:`jupyter_par.files` (one file per
    partition, read in the worker; the frame's ``attrs["path"]`` names the file).
    pandas results are concatenated in order, lists joined, anything else returned
    as a list with one item per partition.

    ``reduce(acc, result)`` folds the results in partition order as they arrive (as
    :func:`functools.reduce` would, the first result starting the fold) and the final
    value is returned, so results need not all be held at once: ``reduce=operator.add``
    sums per-chunk counts. ``shared={"name": obj}`` makes ``jp.shared["name"]``
    available to ``func`` (see :mod:`jupyter_par.shared`).
    """
    _check_callable(func)
    if reduce is not None:
        _check_callable(reduce, "reduce")
    options, objects, func_kwargs = _split_options(dict(kwargs))
    op = operations.PartitionCall(func, args, func_kwargs)
    label = f"map_partitions({_name(func)})"
    concat_lists = False
    unit = "rows"
    parts: Iterable[Partition]
    if isinstance(obj, pd.DataFrame | pd.Series):
        parts = split_rows(obj, partition_count(len(obj), options.jobs, options.partitions))
    elif isinstance(obj, list | tuple):
        n = partition_count(len(obj), options.jobs, options.partitions)
        parts, unit, concat_lists = split_sequence(obj, n), "items", True
    elif isinstance(obj, str | os.PathLike | sources.FileSet):
        files = obj if isinstance(obj, sources.FileSet) else sources.files(obj)
        parts, op, unit = files.partitions(), files.reading(op), "files"
    elif is_chunked_reader(obj) or (isinstance(obj, Iterable) and not isinstance(obj, bytes)):
        parts = iter_chunks(obj)
    else:
        msg = (f"map_partitions needs a DataFrame, Series, list, iterable, chunked reader "
               f"or glob pattern, got {type(obj).__name__}")
        raise UsageError(msg)
    folding = sources.Fold(reduce) if reduce is not None else None
    outcome = execute(parts, op, options, label=label, unit=unit, shared=objects, fold=folding)
    if folding is not None:
        return folding.value
    return combine(outcome.results, concat_lists=concat_lists)


def _name(func: Any) -> str:
    return getattr(func, "__name__", type(func).__name__)
