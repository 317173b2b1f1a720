"""``groupby(...).apply`` in parallel, with pandas itself putting the results together.

pandas decides the shape of a groupby-apply result from every group's result at once:
Series results that share one index become a wide frame, transform-like results go
back in row order, ``None`` results are dropped, dtypes settle over all groups. A
partition that holds one or two groups sees a different picture, so partitions never
combine their own results. Instead::

    kernel: groupby once ──group numbers──▶ whole groups per partition (keys sliced along)
    worker: for each group, in pandas' order ──▶ func(group) ──▶ raw results, in order
    kernel: obj.groupby(...).apply(func), its loop over the groups answered by
            the workers' results (group_assembly) ──▶ pandas builds the result

pandas gets the results the workers computed, in group order, and its own ``mutated``
test of them, so the result's shape, index, order and dtypes are pandas' own by
construction. Where that loop cannot be answered whole (groups without rows, which only
the kernel sees; a pandas whose loop is another), the replay hands pandas the results in
the order it asks for them, group by group.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SerialFallbackWarning
from ..worker import task as _worker
from . import group_assembly
from .partition import LazyPartition

#: Keywords of ``DataFrame.groupby`` that the API accepts and passes to pandas.
GROUPBY_KEYWORDS = ("level", "as_index", "sort", "group_keys", "observed", "dropna")
#: Keywords of ``GroupBy.apply`` itself (not the function's).
APPLY_KEYWORDS = ("include_groups",)

_PANDAS_MAJOR = int(pd.__version__.split(".")[0])
#: pandas 2 swaps these builtins for numpy reductions before calling them on a group.
_BUILTINS = {sum: np.sum, max: np.maximum.reduce, min: np.minimum.reduce}


@dataclass(frozen=True)
class Keyed:
    """A partition of whole groups and the grouping keys that belong to its rows."""

    data: pd.DataFrame | pd.Series
    by: Any

    def __len__(self) -> int:
        return len(self.data)


def _is_label(key: Any, obj: pd.DataFrame | pd.Series) -> bool:
    if not isinstance(key, Hashable) or callable(key):
        return False
    try:
        in_columns = isinstance(obj, pd.DataFrame) and key in obj.columns
    except TypeError:
        in_columns = False
    return in_columns or key in [n for n in obj.index.names if n is not None]


def _keys_list(by: Any, obj: pd.DataFrame | pd.Series) -> tuple[list[Any], bool]:
    """``by`` as a list of keys, and whether it was one key (as pandas reads it)."""
    if not isinstance(by, list):
        return [by], True
    arraylike = any(isinstance(k, list | tuple | np.ndarray | pd.Series | pd.Index)
                    or callable(k) or isinstance(k, pd.Grouper) for k in by)
    if not arraylike and len(by) == len(obj) and not all(_is_label(k, obj) for k in by):
        return [np.asarray(by, dtype=object) if len({type(k) for k in by}) > 1
                else np.asarray(by)], True  # a list of values, one per row
    return list(by), False


def _slice_key(key: Any, obj: pd.DataFrame | pd.Series, rows: np.ndarray) -> Any:
    """The part of one grouping key that belongs to ``rows``; raises if it cannot be cut."""
    if key is None or _is_label(key, obj) or callable(key) or isinstance(key, dict):
        return key  # column / level names, functions and mappings of labels travel whole
    if isinstance(key, pd.Grouper):
        if getattr(key, "freq", None) is None and key.key is not None:
            return key
        raise _Uncuttable("a pd.Grouper with freq= or level= bins over the whole input")
    if isinstance(key, pd.Series):
        if _is_column_of(key, obj):
            # pandas leaves a column given as its own Series out of the groups; a slice
            # of it would be a new Series and stay in. Its name groups the same way.
            return key.name
        if key.index.equals(obj.index):
            return key.iloc[rows]
        raise _Uncuttable("a Series key whose index differs from the data's is aligned "
                          "by pandas over the whole input")
    if isinstance(key, np.ndarray | pd.Index | pd.api.extensions.ExtensionArray | list | tuple):
        if len(key) != len(obj):
            raise _Uncuttable("an array key that is not one value per row")
        if isinstance(key, list | tuple):
            return [key[i] for i in rows]
        return key[rows]
    return key


def _quiet_keywords(groupby_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keywords with pandas' default for ``observed`` spelled out.

    pandas 2 warns that the default will change whenever a categorical key is grouped
    without ``observed=``; the serial call warns once, and so does the replay in the
    kernel. The splitting and the workers' own groupings say it explicitly and stay quiet.
    """
    return {"observed": _PANDAS_MAJOR >= 3, **groupby_kwargs}


def _is_column_of(key: pd.Series, obj: pd.DataFrame | pd.Series) -> bool:
    """Whether ``key`` is one of ``obj``'s own columns (``df.groupby(df.let)``), as pandas
    decides it: the very column, not a copy with equal values."""
    if not isinstance(obj, pd.DataFrame) or key.name is None:
        return False
    try:
        column = obj[key.name]
    except (KeyError, TypeError, ValueError):
        return False
    if not isinstance(column, pd.Series):
        return False
    same = getattr(getattr(key, "_mgr", None), "references_same_values", None)
    if same is not None:  # pandas' own test (copy-on-write): the same values, not a copy
        try:
            return bool(same(column._mgr, 0))
        except Exception:  # noqa: BLE001 - an internal that changed: the public test below
            pass
    return key is column or np.shares_memory(key.to_numpy(), column.to_numpy())


class _Uncuttable(Exception):
    """This key form cannot be cut into partitions; the call runs in one piece."""


class GroupPartitions(list):  # type: ignore[type-arg]
    """The partitions of :func:`split`, and the grouping they came from.

    ``grouped`` is the ``GroupBy`` the groups were numbered with (keywords as the
    caller gave them, plus pandas' default for ``observed`` spelled out): its group
    numbers are cached, so a replay over it (see :func:`replay`) does not find every
    row's group again.
    """

    grouped: Any = None
    #: Groups with rows (what a replay's passes count).
    filled: int = 0


class _Cutter:
    """Takes each partition's rows out of the input, when the engine first reads it.

    Rows are ordered by partition once (a stable sort of one small integer per row:
    within a partition they stay in input order), so each later cut is one slice of
    that order and one ``take``, done while the workers run the partitions before it.
    """

    def __init__(self, obj: pd.DataFrame | pd.Series, keys: list[Any], single: bool,
                 owner: np.ndarray, counts: np.ndarray) -> None:
        self.obj, self.keys, self.single = obj, keys, single
        self.owner, self.counts = owner, counts
        self.order: np.ndarray | None = None

    def rows(self, i: int) -> np.ndarray:
        if self.order is None and i == 0:
            return np.flatnonzero(self.owner == 0)  # the first at once; the sort after it
        if self.order is None:
            self.order = np.argsort(self.owner, kind="stable")
            dropped = len(self.owner) - int(self.counts.sum())  # rows of no group sort first
            self.starts = dropped + np.concatenate([[0], np.cumsum(self.counts)])
        return self.order[self.starts[i]:self.starts[i + 1]]

    def cut(self, i: int, rows: np.ndarray | None = None) -> tuple[Any, np.ndarray]:
        """Partition ``i``'s data (``Keyed`` where its keys travel sliced) and rows."""
        rows = self.rows(i) if rows is None else rows
        sliced = [_slice_key(k, self.obj, rows) for k in self.keys]
        part_by = sliced[0] if self.single else sliced
        data = self.obj.iloc[rows]
        # Keys that travel whole go with the operation; the partition stays a plain
        # frame, which moves through shared memory.
        whole = all(s is k for s, k in zip(sliced, self.keys, strict=True))
        return (data if whole else Keyed(data, part_by)), rows


#: The share of the rows in a small first partition, where the caller does not fix the
#: partitions: the in-kernel fallback runs it in the kernel as its sample (whole groups
#: cannot be cut anywhere), before any worker starts, so it is serial work: 1/128 keeps
#: it under 0.8% of the run (issue 28: the serial share); smaller, a cheap call's fixed cost
#: per partition, scaled to the whole input, reads as seconds of work (1/512: 0.5 s).
FIRST_SHARE = 1 / 128


def split(obj: pd.DataFrame | pd.Series, by: Any, n_parts: int,
          groupby_kwargs: dict[str, Any], first: float | None = None,
          numbered: Any = None) -> GroupPartitions | str:
    """Partitions of whole groups, in pandas' group order (none if there are no groups);
    or why the call must run in one piece.

    Groups are cut where the cumulative row count crosses equal shares; each partition
    keeps its rows in their original order, so pandas inside the partition sees each
    group exactly as the serial ``groupby`` does. Every row's group is found once, here;
    the partitions' sizes are known at once, but their rows are taken out of the input
    only when each is first read (:class:`~jupyter_par.planning.partition.LazyPartition`), so
    the first partitions run while the later ones are still being cut.
    """
    # ``numbered``: the caller's own GroupBy of these rows, keys and keywords, whose group
    # numbers the caller's assembly needs anyway: found once, for both
    grouped = numbered if numbered is not None else obj.groupby(
        by, **_quiet_keywords(groupby_kwargs))
    numbers = grouped.ngroup().to_numpy()
    if numbers.dtype.kind == "f":  # rows of no group (a missing key, dropna) are NaN
        codes = np.where(np.isnan(numbers), -1, numbers).astype(np.intp)
    else:
        codes = numbers.astype(np.intp, copy=False)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if n_groups == 0:
        return GroupPartitions()  # nothing for a worker: pandas' own call gives the empty result
    sizes = np.bincount(codes + 1, minlength=n_groups + 1)[1:]  # -1 counted apart
    n_parts = max(1, min(n_parts, n_groups))
    cumulative = np.cumsum(sizes)
    targets = cumulative[-1] * np.arange(1, n_parts) / n_parts
    if first is not None and n_groups > n_parts:
        # A small first partition (``first`` of the rows) ahead of ``n_parts`` equal ones:
        # the in-kernel fallback runs it in the kernel as its sample, before the workers.
        head = cumulative[-1] * first
        targets = np.concatenate([[head], head + (cumulative[-1] - head) * targets
                                  / cumulative[-1]])
    cuts = np.unique(np.searchsorted(cumulative, targets, side="left") + 1)
    edges = [0, *[int(c) for c in cuts if 0 < c < n_groups], n_groups]
    small = np.int16 if len(edges) < 2**15 else np.intp  # sorts by radix (see _Cutter)
    # Each group's partition, and -1 (the last entry) for rows of no group.
    table = np.append(np.repeat(np.arange(len(edges) - 1, dtype=small), np.diff(edges)),
                      small(-1))
    owner = table[codes]
    keys, single = _keys_list(by, obj)
    counts = np.add.reduceat(sizes, edges[:-1])
    cutter = _Cutter(obj, keys, single, owner, counts)
    try:
        # Whether the keys can be cut does not depend on the rows: ask with none.
        cutter.cut(0, np.empty(0, dtype=np.intp))
    except _Uncuttable as reason:
        return str(reason)
    parts = GroupPartitions(
        LazyPartition(i, int(counts[i]), f"groups {lo}-{hi - 1}", cutter.cut)
        for i, (lo, hi) in enumerate(itertools.pairwise(edges)))
    parts.grouped = grouped
    parts.filled = int(np.count_nonzero(sizes))
    return parts


@dataclass(frozen=True)
class GroupResults:
    """In a worker: ``func`` on each group of the partition, raw results in pandas' order.

    Empty groups (unobserved categories) are left to the kernel, which sees all of
    them; only groups with rows are computed here.
    """

    func: Callable[..., Any]
    by: Any = None
    groupby_kwargs: dict[str, Any] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    apply_kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, part: Keyed | pd.DataFrame | pd.Series) -> GroupValues:
        func = self.func
        if _PANDAS_MAJOR < 3 and func in _BUILTINS:
            func = _BUILTINS[func]
        ctx = _worker.current_context()
        results: list[Any] = []
        # pandas' ``mutated`` over this partition's groups (see group_assembly), or None
        # where this pandas' loop is not the one it knows
        mutated = [False] if group_assembly.supported() else [None]

        def each_group(group: Any, *args: Any, **kwargs: Any) -> None:
            if len(group) == 0:
                return
            ctx.note_row(getattr(group, "name", None))
            axes = group.axes  # as pandas reads them, before the call
            value = func(group, *args, **kwargs)
            results.append(value)
            if mutated[0] is False and not group_assembly.indexed_like(value, axes):
                mutated[0] = True
            ctx.add_rows(len(group))

        data, by = (part.data, part.by) if isinstance(part, Keyed) else (part, self.by)
        grouped = data.groupby(by, **_quiet_keywords(self.groupby_kwargs))
        with_keys = (_PANDAS_MAJOR < 3 and isinstance(data, pd.DataFrame)
                     and data.columns.is_unique and self.apply_kwargs.get("include_groups", True))
        if with_keys:
            # pandas 2 warns once per apply that the groups include the grouping columns;
            # the replay in the kernel warns as the serial call does. Selecting every
            # column gives the same groups without a warning per partition.
            try:
                grouped[list(data.columns)].apply(each_group, *self.args, **self.kwargs)
            except TypeError:
                # pandas 2 calls func again on the groups without the grouping columns
                # when it raised TypeError with them (a sum over a string key): so here.
                results.clear()
                mutated[0] = False if mutated[0] is not None else None
                grouped.apply(each_group, *self.args, include_groups=False, **self.kwargs)
                return GroupValues(results, without_keys=True, mutated=mutated[0])
            return GroupValues(results, mutated=mutated[0])
        grouped.apply(each_group, *self.args, **self.apply_kwargs, **self.kwargs)
        return GroupValues(results, mutated=mutated[0])


@dataclass(frozen=True)
class GroupValues:
    """A partition's group results, and whether pandas 2 had to leave the keys out."""

    results: list[Any]
    without_keys: bool = False
    #: pandas' ``mutated`` over the partition's groups; None where not known
    mutated: bool | None = None


class Replay:
    """In the kernel: hand pandas the workers' results, in the order it asks for them."""

    def __init__(self, results: list[Any], func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], fail_first: bool = False) -> None:
        self._next = iter(results).__next__
        self._fail_first = fail_first
        self.func, self.args, self.kwargs = func, args, kwargs
        # pandas reads the function's name for some messages; keep the user's.
        self.__name__ = getattr(func, "__name__", "func")

    def __call__(self, group: Any, *args: Any, **kwargs: Any) -> Any:
        if self._fail_first:
            # The workers' func raised TypeError on groups with their keys: pandas 2 then
            # goes on without the keys, and so must the replay, for the same result.
            self._fail_first = False
            msg = "func failed on the groups with their grouping columns"
            raise TypeError(msg)
        if len(group) == 0:  # an unobserved category: pandas calls func on it too
            return self.func(group, *self.args, **self.kwargs)
        return self._next()


def reusable(parts: Any, groupby_kwargs: dict[str, Any]) -> Any:
    """The ``GroupBy`` :func:`split` made, if the replay may use it as its own: the same
    keywords as the caller's (pandas 2 warns about ``observed`` when the caller leaves
    it out, and the replay must warn as the serial call does), else ``None``."""
    grouped = getattr(parts, "grouped", None)
    if _PANDAS_MAJOR < 3 and "observed" not in groupby_kwargs:
        # split spelled out observed=False, which the caller did not: pandas 2 makes the
        # same GroupBy of both (observed=False) and warns only for a categorical grouping
        groupings = getattr(getattr(grouped, "_grouper", None), "groupings", None)
        if groupings is None or any(getattr(g, "_passed_categorical", True) for g in groupings):
            return None
    return grouped


def replay(obj: pd.DataFrame | pd.Series, by: Any, groupby_kwargs: dict[str, Any],
           apply_kwargs: dict[str, Any], op: GroupResults, results: list[list[Any]],
           grouped: Any = None) -> Any:
    """What ``obj.groupby(by).apply(func)`` returns, given each group's result in order.

    ``grouped``: the ``GroupBy`` of :func:`split` (see :func:`reusable`), whose group
    numbers are already known; a new one otherwise.
    """
    func = op.func
    if _PANDAS_MAJOR < 3 and func in _BUILTINS:
        func = _BUILTINS[func]
    if grouped is None:
        grouped = obj.groupby(by, **groupby_kwargs)
    without_keys = {part.without_keys for part in results}
    if without_keys == {True, False}:
        # Some partitions' groups failed with their keys, others did not: serially the
        # first failure sends every group round again without keys. Only the whole
        # input can do that.
        warnings.warn(
            "groupby_apply: func raised TypeError on some groups with their grouping "
            "columns (pandas 2 then calls it again without them); ran in the caller",
            SerialFallbackWarning, stacklevel=2)
        return grouped.apply(func, *op.args, **apply_kwargs, **op.kwargs)
    flat = [r for part in results for r in part.results]
    fail_first = True in without_keys
    if len(flat) == grouped.ngroups and all(p.mutated is not None for p in results):
        # every group has rows (none left for the caller): pandas' apply with its loop
        # answered by the workers' values
        mutated = any(p.mutated for p in results)
        try:
            with group_assembly.answered(grouped, flat, mutated, fail_first):
                return grouped.apply(op.func, *op.args, **apply_kwargs, **op.kwargs)
        except group_assembly.Unanswered:
            pass
    return grouped.apply(Replay(flat, func, op.args, op.kwargs, fail_first=fail_first),
                         **apply_kwargs)
