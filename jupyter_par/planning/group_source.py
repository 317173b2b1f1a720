"""What a pandas GroupBy was made from, so that a worker can make the same one on its rows.

``gb.obj``, ``gb.keys`` and the flags (``sort``, ``dropna``, ...) are public. Two things
are not: a column selection (``gb[["b", "c"]]`` keeps ``obj`` whole and the selection in
``_selection``), and the key columns of a Series picked out of a grouped frame
(``df.groupby("k")["c"]`` keeps only the column ``c`` and the name ``"k"``; the key
column itself lives in ``_grouper``). This module is the one place that reads them,
and says "run it in the caller" where they are not what it expects.

:func:`regroup` makes a partition's GroupBy the same way, and :func:`iterate` yields
the groups of ``transform``'s own loop (pandas' order, names pinned, grouping columns
left out), for the one call whose loop must be run by hand (see :mod:`.group_replay`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Keywords of the GroupBy methods that are pandas' own, not the user function's.
ENGINE_KEYWORDS = ("engine", "engine_kwargs")


def function_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without pandas' own keywords: what the user's function is called with."""
    return {k: v for k, v in kwargs.items() if k not in ENGINE_KEYWORDS}

#: The GroupBy flags that travel with it, as ``DataFrame.groupby`` takes them.
FLAGS = ("level", "as_index", "sort", "group_keys", "observed", "dropna")
_MISSING = object()


@dataclass(frozen=True)
class Source:
    """How to make the GroupBy again: ``obj.groupby(by, **flags)[selection]``."""

    obj: pd.DataFrame | pd.Series
    by: Any
    flags: dict[str, Any] = field(default_factory=dict)
    selection: Any = None

    def split_flags(self) -> dict[str, Any]:
        """The flags for cutting whole groups (``groups.split``)."""
        return dict(self.flags)

    def worker_flags(self) -> dict[str, Any]:
        """The flags of a partition's GroupBy: only groups with rows (``observed=True``).

        A partition's categorical key still has every category, so with
        ``observed=False`` it would call the function on the groups of every other
        partition, empty here. The groups empty in the whole input are called by pandas
        in the caller, where the results are put together.
        """
        return {**self.flags, "observed": True}


def describe(grouped: Any) -> Source | str:
    """The :class:`Source` of ``grouped``, or why a worker cannot make it again."""
    if getattr(grouped, "axis", 0) not in (0, "index"):
        return "groupby(axis=1) groups columns"
    obj = grouped.obj
    flags: dict[str, Any] = {}
    for name in FLAGS:
        value = getattr(grouped, name, _MISSING)
        if value is _MISSING or value is pd.api.extensions.no_default:
            continue
        if name == "level" and value is None:
            continue
        flags[name] = value
    if isinstance(obj, pd.Series):
        # A Series picked from a frame grouped with as_index=False keeps the flag, but a
        # Series cannot be grouped with it; it changes only how the result is laid out,
        # which the caller's own GroupBy decides.
        flags.pop("as_index", None)
    by = grouped.keys
    if by is None and "level" not in flags:
        return "a groupby without keys or level"
    if isinstance(obj, pd.DataFrame):
        return Source(obj, by, flags, getattr(grouped, "_selection", None))
    by = _keys_of_series(grouped, obj, by)
    if isinstance(by, str):
        return by
    return Source(obj, by, flags, None)


def _is_label(key: Any) -> bool:
    return key is not None and isinstance(key, Hashable) and not callable(key) and not isinstance(
        key, pd.Grouper | tuple)


def _keys_of_series(grouped: Any, obj: pd.Series, by: Any) -> Any:
    """``by`` with each frame column name (from ``df.groupby("k")["c"]``) replaced by
    that column, which the Series alone does not hold."""
    keys = by if isinstance(by, list) else [by]
    levels = [n for n in obj.index.names if n is not None]
    if any(isinstance(k, pd.Grouper) for k in keys):
        # its key column is not in the Series, and as a plain column it would not
        # order the groups as the Grouper does
        return "a pd.Grouper of a column picked from a grouped frame"
    foreign = [i for i, k in enumerate(keys) if _is_label(k) and k not in levels]
    if not foreign:
        return by
    groupings = getattr(getattr(grouped, "_grouper", None), "groupings", None)
    if groupings is None or len(groupings) != len(keys):
        return "a column of a grouped frame whose key columns pandas does not show"
    keys = list(keys)
    for i in foreign:
        column = getattr(groupings[i], "_orig_grouper", None)
        if not isinstance(column, pd.Series) or not column.index.equals(obj.index):
            return "a column of a grouped frame whose key columns pandas does not show"
        keys[i] = column
    return keys if isinstance(by, list) else keys[0]


def regroup(data: pd.DataFrame | pd.Series, by: Any, flags: dict[str, Any],
            selection: Any) -> Any:
    """``data.groupby(by, **flags)``, with the selection the caller's GroupBy had."""
    grouped = data.groupby(by, **flags)
    return grouped if selection is None else grouped[selection]


def iterate(grouped: Any) -> Iterator[tuple[Any, pd.DataFrame]]:
    """``(name, group)`` as ``DataFrameGroupBy.transform`` loops over them.

    pandas' public iteration includes the grouping columns and wraps a one-key list's
    names in tuples; transform's own loop does neither, so this is its loop.
    """
    obj = grouped._obj_with_exclusions
    for name, group in grouped._grouper.get_iterator(obj):
        object.__setattr__(group, "name", name)
        yield name, group


def can_iterate(grouped: Any) -> bool:
    """Whether :func:`iterate` finds what it reads in this pandas."""
    inner = getattr(grouped, "_grouper", None)
    return hasattr(grouped, "_obj_with_exclusions") and hasattr(inner, "get_iterator")
