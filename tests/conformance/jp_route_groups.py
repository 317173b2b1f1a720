"""Routing for jp_route: GroupBy transform / agg / aggregate / filter and DataFrame.map
through ``.par`` (issue 23), kept apart from jp_route's own targets so that each set of
routed calls reads (and merges) on its own.

A call from pandas' test code becomes the call a user writes for it:
``gb.transform(f, ...)`` → ``gb.par.transform(f, ..., jobs=2, partitions=3, ...)``,
``df.map(f)`` → ``df.par.map(f, ...)``. A call that pandas refuses as written, or whose
keywords are named like jupyter_par's options, goes to pandas unchanged (counted as
passed through, with its reason).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd


def _route() -> Any:
    import jp_route  # the plugin: STATE, JP_OPTIONS, _bind, _clash

    import jupyter_par  # noqa: F401 - registers .par on frames and GroupBys

    return jp_route


def plan_frame_map(original: Callable[..., Any], df: Any, args: tuple, kwargs: dict) -> Any:
    """``DataFrame.map`` as ``df.par.map``, or why it cannot be."""
    route = _route()
    bound = route._bind(original, df, args, kwargs)
    if bound is None:
        return "arguments pandas itself refuses"
    named, extra = bound
    func = named.pop("func", named.pop("arg", None))
    if not callable(func):
        return f"func is not callable ({type(func).__name__})"
    reason = route._clash(extra, route.JP_OPTIONS | {"func", "na_action", "self"})
    if reason:
        return reason
    return df.par.map, (func,), {**named, **extra, **route.STATE.options()}


def _plan_group(method: str) -> Callable[..., Any]:
    def plan(original: Callable[..., Any], grouped: Any, args: tuple, kwargs: dict) -> Any:
        route = _route()
        if route._bind(original, grouped, args, kwargs) is None:
            return "arguments pandas itself refuses"
        kwargs = dict(kwargs)
        if "func" in kwargs:
            func = kwargs.pop("func")
        elif args:
            func, args = args[0], args[1:]
        else:
            func = None  # named aggregation
        reason = route._clash(kwargs, route.JP_OPTIONS | {"func", "self"})
        if reason:
            return reason
        return (getattr(grouped.par, method), (func, *args),
                {**kwargs, **route.STATE.options()})

    plan.__name__ = f"plan_groupby_{method}"
    return plan


def plan_groupby_apply_selected(func: Any, grouped: Any, args: tuple, kwargs: dict) -> Any:
    """``gb[cols].apply(func, ...)`` (a column selection) as ``gb[cols].par.apply``."""
    route = _route()
    if getattr(grouped, "axis", 0) not in (0, "index"):
        return "groupby(axis=1)"
    reason = route._clash(kwargs, route.JP_OPTIONS | {"func", "self"})
    if reason:
        return reason
    return grouped.par.apply, (func, *args), {**kwargs, **route.STATE.options()}


def targets() -> list[tuple[type, str, str, Callable[..., Any]]]:
    """(class, method, label, planner) for jp_route's install()."""
    typing = pd.api.typing
    found = [(pd.DataFrame, "map", "DataFrame.map", plan_frame_map)] if hasattr(
        pd.DataFrame, "map") else []
    for cls in (typing.DataFrameGroupBy, typing.SeriesGroupBy):
        for method in ("transform", "agg", "aggregate", "filter"):
            found.append((cls, method, f"{cls.__name__}.{method}", _plan_group(method)))
    return found
