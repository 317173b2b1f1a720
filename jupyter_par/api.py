"""The plain Python API: pandas' own calls, run in parallel, returning what pandas returns.

Each function checks its input, takes jupyter_par's own keywords out of the call,
asks :mod:`jupyter_par.planning.builders` for the plan that gives pandas' serial result, and runs
it through :func:`jupyter_par.run.pipeline.execute` — the same pipeline the magic and the
panel use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from typing import Any, TextIO

import pandas as pd

from .errors import UsageError
from .planning import builders as plans
from .planning import sources
from .planning import stream as stream_plans
from .planning.groups import GROUPBY_KEYWORDS
from .planning.plan import Plan
from .progress.chooser import sinks_for
from .run import background, pipeline
from .run.options import OPTION_NAMES, Options, resolve


def _split_options(
    kwargs: dict[str, Any],
) -> tuple[Options, Mapping[str, Any] | None, dict[str, Any]]:
    """Take jupyter_par's own keywords out of ``kwargs`` and resolve them.

    Returns the run options, the ``shared`` objects, and the keywords left for pandas
    or the function.
    """
    ours = {name: kwargs.pop(name) for name in OPTION_NAMES if name in kwargs}
    shared = kwargs.pop("shared", None)
    with pipeline.warnings_at_caller():  # oversubscription: a notice at the caller's line
        options = resolve(**ours)
    return options, shared, kwargs


def _run(plan: Plan, options: Options, shared: Mapping[str, Any] | None,
         fold: Callable[[Any], None] | None = None,
         value_of: Callable[[Any], Any] | None = None) -> Any:
    """Run ``plan``: its value, or with ``background=True`` a handle to it at once."""
    __tracebackhide__ = True
    if options.background:
        return _start_background(plan, options, shared, fold, value_of)
    with pipeline.warnings_at_caller():  # memory, shared memory: at the caller's line
        value, _ = pipeline.execute(plan, options, shared=shared, fold=fold)
    return value if value_of is None else value_of(value)


def _start_background(plan: Plan, options: Options, shared: Mapping[str, Any] | None,
                      fold: Callable[[Any], None] | None,
                      value_of: Callable[[Any], Any] | None) -> background.BackgroundRun:
    # The view is made here, so that it shows under the calling cell.
    sinks = sinks_for(options.progress, plan.label, options.frontend)

    def work(cancel: threading.Event, sinks: list[Any], output: TextIO) -> Any:
        value, _ = pipeline.execute(plan, options, shared=shared, fold=fold, sinks=sinks,
                                    cancel=cancel, output=output)
        return value if value_of is None else value_of(value)

    return background.start(plan.label, work, sinks)


def _planned(build: Callable[..., Plan], *args: Any) -> Plan:
    """``build(*args)``, timed: cutting the partitions is the kernel's serial work."""
    started = time.perf_counter()
    plan = build(*args)
    plan.split_seconds = time.perf_counter() - started
    return plan


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
        ``retries``, ``on_error``, ``start_method``, ``progress``; ``resume=True``
        to compute only the partitions an earlier failed, cancelled or interrupted
        call did not finish, ``cache=PATH`` to keep finished partitions on disk,
        ``background=True`` for a :class:`~jupyter_par.BackgroundRun` handle at
        once); every other keyword goes to pandas' ``apply`` (``raw``,
        ``result_type``, ``args``, ...).

    Examples
    --------
    >>> jp.apply(df, score, axis=1, jobs=8)  # doctest: +SKIP
    """
    _check_pandas(obj, (pd.DataFrame, pd.Series), "apply")
    if not isinstance(func, str | list | tuple | dict):  # names and lists go to pandas
        _check_callable(func)
    options, objects, pandas_kwargs = _split_options(dict(kwargs))
    if isinstance(obj, pd.Series):
        plan = _planned(plans.series_call, obj, func, "apply", pandas_kwargs, options.jobs,
                                 options.partitions)
    else:
        plan = _planned(plans.frame_apply, obj, func, axis, pandas_kwargs, options.jobs,
                                 options.partitions)
    return _run(plan, options, objects)


def map(obj: pd.Series | Sequence[Any] | Iterable[Any], func: Callable[..., Any] | Any,
        **kwargs: Any) -> Any:
    """Parallel ``series.map(func)`` (or ``df.map(func)``, element-wise); for a list or
    other iterable, ``[func(x) for x in obj]``.

    Returns a Series for a Series (same index, name and dtype pandas would give), a
    list in input order otherwise. Keywords as in :func:`apply` (``na_action`` for a
    Series goes to pandas). A dict or Series mapper is one vectorised lookup in pandas
    and runs in the caller.
    """
    if isinstance(obj, pd.DataFrame):
        return frame_map(obj, func, **kwargs)
    options, objects, pandas_kwargs = _split_options(dict(kwargs))
    if isinstance(obj, pd.Series):
        if not callable(func) and not isinstance(func, Mapping | pd.Series):
            _check_callable(func)
        plan = _planned(plans.series_call, obj, func, "map", pandas_kwargs, options.jobs,
                                 options.partitions)
        return _run(plan, options, objects)
    _check_callable(func)
    if pandas_kwargs:
        msg = f"unexpected keyword(s) for a list input: {', '.join(pandas_kwargs)}"
        raise UsageError(msg)
    if isinstance(obj, str | bytes) or not isinstance(obj, Iterable):
        msg = f"map needs a Series, a list or another iterable, got {type(obj).__name__}"
        raise UsageError(msg)
    items = obj if isinstance(obj, Sequence) else list(obj)
    return _run(_planned(plans.items_map, items, func, options.jobs, options.partitions), options,
                objects)


def groupby_apply(obj: pd.DataFrame | pd.Series, by: Any, func: Callable[..., Any],
                  *args: Any, **kwargs: Any) -> Any:
    """Parallel ``obj.groupby(by).apply(func, *args)``, each group wholly in one worker.

    ``by`` takes every form pandas' ``groupby`` does (labels, lists, Series, arrays,
    functions, ``pd.Grouper``); use ``by=None, level=...`` to group by index levels.
    Keywords of ``DataFrame.groupby`` (``level``, ``as_index``, ``sort``,
    ``group_keys``, ``observed``, ``dropna``) go to ``groupby``, ``include_groups`` to
    ``apply``; jupyter_par's options are taken out; the rest go to ``func``. The result
    is assembled by pandas itself from every group's result, so its shape, index and
    dtypes are those of the serial call.
    """
    _check_pandas(obj, (pd.DataFrame, pd.Series), "groupby_apply")
    if not isinstance(func, str):
        _check_callable(func)
    options, objects, rest = _split_options(dict(kwargs))
    groupby_kwargs = {k: rest.pop(k) for k in GROUPBY_KEYWORDS if k in rest}
    labels = [by] if isinstance(by, str) else by if isinstance(by, list) and len(by) != len(
        obj) and all(isinstance(k, str) for k in by) else []
    if isinstance(obj, pd.DataFrame) and labels:
        known = set(obj.columns) | {n for n in obj.index.names if n is not None}
        missing = [k for k in labels if k not in known]
        if missing:
            msg = (f"groupby column(s) {missing} not found; the columns are "
                   f"{list(obj.columns)[:20]}")
            raise UsageError(msg)
    plan = _planned(plans.groupby_apply, obj, by, func, groupby_kwargs, args, rest, options.jobs,
                               options.partitions)
    return _run(plan, options, objects)


def frame_map(df: pd.DataFrame, func: Callable[..., Any], na_action: str | None = None,
              **kwargs: Any) -> pd.DataFrame:
    """Parallel ``df.map(func, na_action=na_action, **kwargs)``: element-wise, same result.

    jupyter_par's options are taken out of ``kwargs``; the rest go to ``func``. Each
    column's dtype is inferred by pandas over the whole column, as serially.
    """
    _check_pandas(df, (pd.DataFrame,), "map")
    options, objects, func_kwargs = _split_options(dict(kwargs))
    plan = _planned(plans.frame_map, df, func, na_action, func_kwargs, options.jobs,
                    options.partitions)
    return _run(plan, options, objects)


def group_call(grouped: Any, method: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Parallel ``getattr(grouped, method)(func, *args, **kwargs)`` for a pandas
    ``DataFrameGroupBy`` / ``SeriesGroupBy`` (``apply``, ``transform``, ``agg``,
    ``aggregate``, ``filter``): what ``grouped.par.<method>`` runs.

    Each group is whole in one worker; the result is put together by pandas from every
    group's value, so it is the serial call's. jupyter_par's options are taken out of
    ``kwargs``; the rest go to pandas (and from there to ``func``).
    """
    from .planning.group_calls import METHODS

    if method not in METHODS:
        msg = f"{method!r} is not a GroupBy call jupyter_par runs; use one of {METHODS}"
        raise UsageError(msg)
    options, objects, rest = _split_options(dict(kwargs))
    plan = _planned(plans.group_call, grouped, method, func, args, rest, options.jobs,
                    options.partitions)
    return _run(plan, options, objects)


def _grouped(obj: Any, by: Any, kwargs: dict[str, Any], call: str) -> tuple[Any, dict]:
    """``obj.groupby(by, ...)`` with the groupby keywords taken out of ``kwargs``."""
    _check_pandas(obj, (pd.DataFrame, pd.Series), call)
    groupby_kwargs = {k: kwargs.pop(k) for k in GROUPBY_KEYWORDS if k in kwargs}
    return obj.groupby(by, **groupby_kwargs), kwargs


def groupby_transform(obj: pd.DataFrame | pd.Series, by: Any, func: Any, *args: Any,
                      **kwargs: Any) -> Any:
    """Parallel ``obj.groupby(by).transform(func, *args, **kwargs)``.

    Keywords of ``groupby`` (``level``, ``sort``, ``observed``, ``dropna``, ...) go to
    ``groupby``; jupyter_par's options are taken out; the rest go to ``transform``.
    """
    grouped, rest = _grouped(obj, by, dict(kwargs), "groupby_transform")
    return group_call(grouped, "transform", func, *args, **rest)


def groupby_agg(obj: pd.DataFrame | pd.Series, by: Any, func: Any = None, *args: Any,
                **kwargs: Any) -> Any:
    """Parallel ``obj.groupby(by).agg(func, *args, **kwargs)``: a function, a list or dict
    of functions, or named aggregation (``func=None``, ``total=("b", f)``)."""
    grouped, rest = _grouped(obj, by, dict(kwargs), "groupby_agg")
    return group_call(grouped, "agg", func, *args, **rest)


def groupby_filter(obj: pd.DataFrame | pd.Series, by: Any, func: Any, *args: Any,
                   **kwargs: Any) -> Any:
    """Parallel ``obj.groupby(by).filter(func, *args, **kwargs)``."""
    grouped, rest = _grouped(obj, by, dict(kwargs), "groupby_filter")
    return group_call(grouped, "filter", func, *args, **rest)


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
    available to ``func`` (see :mod:`jupyter_par.wire.shared_objects`).
    """
    _check_callable(func)
    if reduce is not None:
        _check_callable(reduce, "reduce")
    options, objects, func_kwargs = _split_options(dict(kwargs))
    plan = _planned(plans.partitions_call, obj, func, args, func_kwargs, options.jobs,
                                 options.partitions)
    if reduce is None:
        return _run(plan, options, objects)
    folding = sources.Fold(reduce)
    return _run(plan, options, objects, fold=folding, value_of=lambda _: folding.value)


def imap(func: Callable[..., Any], iterable: Iterable[Any], *, ordered: bool = True,
         chunksize: int | None = None, **kwargs: Any) -> Iterator[Any]:
    """``func(x)`` for each item of ``iterable``, yielded as workers finish them.

    Unlike :func:`map`, nothing waits for the last item and nothing holds all of them:
    the input is read only as workers free up and the loop takes results (at most
    about twice ``jobs`` partitions ahead of the oldest result not yet taken), so a
    million items or an endless generator stream through with live progress.
    ``ordered=True`` yields in input order; ``ordered=False`` as they finish (faster
    when items take uneven time). Breaking out of the loop stops the workers at once.
    ``chunksize`` items travel together (default: adapted to about 0.1 s of work per
    partition, starting from one). Options as in :func:`apply` (``jobs``, ``backend``,
    ``progress``, ``worker_init``, ``on_error``, ...). Until the loop ends (or the
    generator is closed) its workers serve it alone: a parallel call on the same
    backend inside the loop is refused.

    Examples
    --------
    >>> for row in jp.imap(fetch, urls, ordered=False, backend="threads"):  # doctest: +SKIP
    ...     save(row)
    """
    _check_callable(func)
    if isinstance(iterable, str | bytes | pd.DataFrame) or not isinstance(iterable, Iterable):
        msg = (f"imap needs a list, a generator or another iterable of items, got "
               f"{type(iterable).__name__}")
        raise UsageError(msg)
    if chunksize is not None and (not isinstance(chunksize, int) or isinstance(chunksize, bool)
                                  or chunksize < 1):
        msg = f"chunksize must be a whole number of at least 1, got {chunksize!r}"
        raise UsageError(msg)
    options, objects, rest = _split_options(dict(kwargs))
    if rest:
        msg = f"unexpected keyword(s) for imap: {', '.join(rest)}"
        raise UsageError(msg)
    total = len(iterable) if isinstance(iterable, Sized) else None
    return _imap(func, iterable, ordered, chunksize, options, objects, total)


def _imap(func: Callable[..., Any], iterable: Iterable[Any], ordered: bool,
          chunksize: int | None, options: Options, objects: Mapping[str, Any] | None,
          total: int | None) -> Iterator[Any]:
    """The generator behind :func:`imap` (its checks ran at the call, not at first use)."""
    chunks = stream_plans.Chunker(iterable, chunksize)
    plan = Plan(chunks, stream_plans.TimedItemMap(func), list, f"imap({plans.name_of(func)})",
                unit="items")
    for seconds, values in pipeline.stream(plan, options, ordered=ordered, rows_total=total,
                                           shared=objects):
        chunks.observe(seconds, len(values))
        yield from values
