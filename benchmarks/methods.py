"""The ways to run each workload: serial pandas, the tools people use, and jupyter_par.

Each method is used the way its documentation shows, with its progress bar off
(jupyter_par's too) so that only the work is timed. A method that has no way to
express a workload (mapply has no groupby) is absent for it, and the table says so.
Imports happen inside each method: pandarallel, mapply and parallel-pandas live only
in the second environment (see setup_envs.sh).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import workloads as w

#: Threads (or processes, for tools without threads) used for the I/O workload.
IO_WORKERS = 32


def _slices(obj: pd.DataFrame | pd.Series, n: int) -> list[Any]:
    """The recipe's numpy.array_split, by position.

    ``numpy.array_split(df, n)`` itself returns plain ndarrays on pandas 3 (it used
    the removed ``DataFrame.swapaxes``), so the recipe splits positions instead.
    """
    bounds = np.array_split(np.arange(len(obj)), n)
    return [obj.iloc[b[0] : b[-1] + 1] for b in bounds if len(b)]


def _rows(part: pd.DataFrame) -> pd.Series:
    return part.apply(w.row_score, axis=1)


def _map(part: pd.Series) -> pd.Series:
    return part.map(w.cheap)


def _groups(part: pd.DataFrame) -> pd.Series:
    return part.groupby("k").apply(w.group_stat)


def _group_parts(df: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    """The hand-written group-aware split: whole groups, keys in sorted order."""
    keys = np.array_split(np.sort(df["k"].unique()), n)
    return [df[df["k"].isin(chunk)] for chunk in keys if len(chunk)]


def _by_group(results: list[float], keys: list[Any]) -> pd.Series:
    return pd.Series(results, index=pd.Index(keys, name="k"))


# -- serial -------------------------------------------------------------------------------
def serial(number: int, data: Any, jobs: int) -> Any:
    return w.serial(number, data)


def serial_keep_memory(number: int, data: Any, jobs: int) -> Any:
    """Serial pandas with the allocator setting jupyter_par's workers use.

    Not a tool anyone runs: it shows how much of a workload's speedup comes from the
    workers keeping freed memory (:mod:`jupyter_par.worker.allocator`) rather than from
    running in parallel.
    """
    from jupyter_par.worker import allocator as _allocator

    _allocator.keep_freed_memory()
    return w.serial(number, data)


# -- the common recipe: multiprocessing.Pool + numpy.array_split + pd.concat ------------------
def recipe(number: int, data: Any, jobs: int) -> Any:
    import multiprocessing
    from multiprocessing.pool import ThreadPool

    if number == 6:
        with ThreadPool(IO_WORKERS) as pool:
            return pool.map(w.io_task, data)
    with multiprocessing.Pool(jobs) as pool:
        if number == 1:
            return pd.concat(pool.map(_rows, _slices(data, jobs)))
        if number == 2:
            return pd.concat(pool.map(_map, _slices(data, jobs)))
        if number == 3:
            return pd.concat(pool.map(_groups, _group_parts(data, jobs)))
        if number == 4:
            columns = [data[c] for c in data.columns]
            return pd.Series(pool.map(w.column_stat, columns), index=data.columns)
        if number in (5, 7):
            func = w.heavy_cheap if number == 5 else w.noop
            return pd.concat(pool.map(func, _slices(data, jobs)))
    raise NotImplementedError


# -- joblib ---------------------------------------------------------------------------------
def joblib_(number: int, data: Any, jobs: int) -> Any:
    from joblib import Parallel, delayed

    if number == 6:
        return Parallel(n_jobs=IO_WORKERS, prefer="threads")(delayed(w.io_task)(x) for x in data)
    run = Parallel(n_jobs=jobs)
    if number == 1:
        return pd.concat(run(delayed(_rows)(p) for p in _slices(data, jobs)))
    if number == 2:
        return pd.concat(run(delayed(_map)(p) for p in _slices(data, jobs)))
    if number == 3:
        grouped = list(data.groupby("k"))
        results = run(delayed(w.group_stat)(g) for _, g in grouped)
        return _by_group(results, [k for k, _ in grouped])
    if number == 4:
        return pd.Series(run(delayed(w.column_stat)(data[c]) for c in data.columns),
                         index=data.columns)
    if number in (5, 7):
        func = w.heavy_cheap if number == 5 else w.noop
        return pd.concat(run(delayed(func)(p) for p in _slices(data, jobs)))
    raise NotImplementedError


# -- pandarallel ------------------------------------------------------------------------------
def pandarallel_(number: int, data: Any, jobs: int) -> Any:
    from pandarallel import pandarallel

    workers = IO_WORKERS if number == 6 else jobs
    pandarallel.initialize(nb_workers=workers, progress_bar=False, verbose=0)
    if number == 1:
        return data.parallel_apply(w.row_score, axis=1)
    if number == 2:
        return data.parallel_map(w.cheap)
    if number == 3:
        return data.groupby("k").parallel_apply(w.group_stat)
    if number == 4:
        return data.parallel_apply(w.column_stat, axis=0)
    if number == 5:
        return data.parallel_apply(w.heavy_cheap, axis=0)
    if number == 6:
        return pd.Series(data).parallel_map(w.io_task).tolist()
    if number == 7:
        return data.parallel_apply(w.noop, axis=0)
    raise NotImplementedError


# -- mapply ------------------------------------------------------------------------------------
def mapply_(number: int, data: Any, jobs: int) -> Any:
    import mapply

    workers = IO_WORKERS if number == 6 else jobs
    mapply.init(n_workers=workers, progressbar=False, chunk_size=1)
    if number == 1:
        return data.mapply(w.row_score, axis=1)
    if number == 2:
        return data.mapply(w.cheap)
    if number == 4:
        return data.mapply(w.column_stat, axis=0)
    if number == 5:
        return data.mapply(w.heavy_cheap, axis=0)
    if number == 6:
        return pd.Series(data).mapply(w.io_task).tolist()
    if number == 7:
        return data.mapply(w.noop, axis=0)
    raise NotImplementedError  # no groupby


# -- parallel-pandas -------------------------------------------------------------------------------
def parallel_pandas_(number: int, data: Any, jobs: int) -> Any:
    from parallel_pandas import ParallelPandas

    workers = IO_WORKERS if number == 6 else jobs
    ParallelPandas.initialize(n_cpu=workers, disable_pr_bar=True)
    if number == 1:
        return data.p_apply(w.row_score, axis=1)
    if number == 2:
        return data.p_map(w.cheap)
    if number == 3:
        return data.groupby("k").p_apply(w.group_stat)
    if number == 4:
        return data.p_apply(w.column_stat, axis=0)
    if number == 5:
        return data.p_apply(w.heavy_cheap, axis=0)
    if number == 6:
        return pd.Series(data).p_map(w.io_task).tolist()
    if number == 7:
        return data.p_apply(w.noop, axis=0)
    raise NotImplementedError


# -- jupyter_par (the Python API) ------------------------------------------------------------------
def jupyter_par_(number: int, data: Any, jobs: int) -> Any:
    import jupyter_par as jp

    options = {"jobs": jobs, "progress": False}
    if number == 1:
        return jp.apply(data, w.row_score, axis=1, **options)
    if number == 2:
        return jp.map(data, w.cheap, **options)
    if number == 3:
        return jp.groupby_apply(data, "k", w.group_stat, **options)
    if number == 4:
        return jp.apply(data, w.column_stat, axis=0, **options)
    if number == 5:
        return jp.map_partitions(data, w.heavy_cheap, **options)
    if number == 6:
        return jp.map(data, w.io_task, jobs=IO_WORKERS, backend="threads", progress=False)
    if number == 7:
        return jp.map_partitions(data, w.noop, **options)
    raise NotImplementedError


def jupyter_par_workers(number: int, data: Any, jobs: int) -> Any:
    """Workload 5 with the in-kernel fallback off: what moving the data really costs."""
    import jupyter_par as jp

    return jp.map_partitions(data, w.heavy_cheap, jobs=jobs, progress=False,
                             inline_fallback=False)


#: name → (function, environment, workloads it supports)
METHODS: dict[str, tuple[Callable[[int, Any, int], Any], str, tuple[int, ...]]] = {
    "serial": (serial, "main", (1, 2, 3, 4, 5, 6, 7)),
    "serial-keepmem": (serial_keep_memory, "main", (1, 2, 3, 4, 5)),
    "recipe": (recipe, "main", (1, 2, 3, 4, 5, 6, 7)),
    "joblib": (joblib_, "main", (1, 2, 3, 4, 5, 6, 7)),
    "serial-old": (serial, "old", (1, 2, 3, 4, 5, 6, 7)),
    "pandarallel": (pandarallel_, "old", (1, 2, 3, 4, 5, 6, 7)),
    "mapply": (mapply_, "old", (1, 2, 4, 5, 6, 7)),
    "parallel-pandas": (parallel_pandas_, "old", (1, 2, 3, 4, 5, 6, 7)),
    "jupyter_par": (jupyter_par_, "main", (1, 2, 3, 4, 5, 6, 7)),
    # The same engine beside the other tools, on their pandas: a like-for-like ratio.
    "jupyter_par-old": (jupyter_par_, "old", (1, 2, 3, 4, 5, 6)),
    "jupyter_par (fallback off)": (jupyter_par_workers, "main", (5,)),
}
