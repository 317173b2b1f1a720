"""Routing of pandas' window calls for the conformance plugin (issue 23, windows part).

``Rolling.apply`` and ``Expanding.apply`` (and so their groupby forms,
``RollingGroupby`` / ``ExpandingGroupby``, which inherit them), and
``Resampler.apply / agg / aggregate / transform`` with a callable, called from pandas'
tests, are rewritten as ``window.par.apply(...)`` / ``resampler.par.<method>(...)``
with the run options of :mod:`jp_route`. Imported by :mod:`jp_route`, which installs
the wrappers.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pandas as pd

#: ``apply``'s own keywords (pandas' signature); anything else is not a routable call.
APPLY_KEYWORDS = frozenset({"func", "raw", "engine", "engine_kwargs", "args", "kwargs"})
#: Where the routed window calls ran: "workers" or "caller" (too few rows to cut,
#: numba, method="table"), so the summary says how many windows crossed partitions.
WHERE: collections.Counter[str] = collections.Counter()


def _window_apply(window: Any, func: Any, **kwargs: Any) -> Any:
    """``jp.window_apply``, noting whether workers ran it."""
    import jupyter_par as jp

    try:
        return jp.window_apply(window, func, **kwargs)
    finally:
        WHERE["workers" if jp.last_run() and jp.last_run().with_workers else "caller"] += 1


def _resample_call(resampler: Any, method: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    import jupyter_par as jp

    try:
        return jp.resample_call(resampler, method, func, *args, **kwargs)
    finally:
        WHERE["workers" if jp.last_run() and jp.last_run().with_workers else "caller"] += 1


def plan_resample(method: str) -> Callable[..., Any]:
    """``resample(...).<method>(func, ...)`` as ``resample(...).par.<method>``, or why not."""
    def planner(original: Callable[..., Any], resampler: Any, args: tuple, kwargs: dict
                ) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | str:
        import jp_route

        first = "arg" if method == "transform" else "func"
        if args:
            func, rest = args[0], args[1:]
        elif first in kwargs:
            kwargs = dict(kwargs)
            func, rest = kwargs.pop(first), ()
        else:
            return "arguments pandas itself refuses"
        if not callable(func):
            return f"func is not callable ({type(func).__name__})"
        reason = jp_route._clash(kwargs, jp_route.JP_OPTIONS)
        if reason:
            return reason
        return (_resample_call, (resampler, method, func, *rest),
                {**kwargs, **jp_route.STATE.options()})

    return planner


def summary(write: Callable[[str], None]) -> None:
    """One line for jp_route's terminal summary."""
    write(f"window calls: {WHERE['workers']} ran in workers, {WHERE['caller']} in the caller")


def plan_window_apply(original: Callable[..., Any], window: Any, args: tuple, kwargs: dict
                      ) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | str:
    """``rolling(...).apply`` / ``expanding(...).apply`` as ``window.par.apply``, or why not."""
    import jp_route

    bound = jp_route._bind(original, window, args, kwargs)
    if bound is None:
        return "arguments pandas itself refuses"
    named, extra = bound
    if extra or set(named) - APPLY_KEYWORDS:
        return "keywords apply does not take"
    func = named.pop("func", None)
    if not callable(func):
        return f"func is not callable ({type(func).__name__})"
    return _window_apply, (window, func), {**named, **jp_route.STATE.options()}


def targets() -> list[tuple[type, str, str, Callable[..., Any]]]:
    """The window methods jp_route wraps: (class, method, label, planner)."""
    typing = pd.api.typing
    return [
        (typing.Rolling, "apply", "Rolling.apply", plan_window_apply),
        (typing.Expanding, "apply", "Expanding.apply", plan_window_apply),
        *[(typing.Resampler, name, f"Resampler.{name}", plan_resample(name))
          for name in ("apply", "agg", "aggregate", "transform")],
    ]
