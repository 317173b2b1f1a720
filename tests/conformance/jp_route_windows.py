"""Routing of pandas' window calls for the conformance plugin (issue 23, windows part).

``Rolling.apply`` and ``Expanding.apply`` (and so their groupby forms,
``RollingGroupby`` / ``ExpandingGroupby``, which inherit them) called from pandas'
tests are rewritten as ``window.par.apply(...)`` with the run options of
:mod:`jp_route`. Imported by :mod:`jp_route`, which installs the wrappers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

#: ``apply``'s own keywords (pandas' signature); anything else is not a routable call.
APPLY_KEYWORDS = frozenset({"func", "raw", "engine", "engine_kwargs", "args", "kwargs"})


def plan_window_apply(original: Callable[..., Any], window: Any, args: tuple, kwargs: dict
                      ) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | str:
    """``rolling(...).apply`` / ``expanding(...).apply`` as ``window.par.apply``, or why not."""
    import jp_route

    import jupyter_par as jp

    bound = jp_route._bind(original, window, args, kwargs)
    if bound is None:
        return "arguments pandas itself refuses"
    named, extra = bound
    if extra or set(named) - APPLY_KEYWORDS:
        return "keywords apply does not take"
    func = named.pop("func", None)
    if not callable(func):
        return f"func is not callable ({type(func).__name__})"
    return jp.window_apply, (window, func), {**named, **jp_route.STATE.options()}


def targets() -> list[tuple[type, str, str, Callable[..., Any]]]:
    """The window methods jp_route wraps: (class, method, label, planner)."""
    typing = pd.api.typing
    return [
        (typing.Rolling, "apply", "Rolling.apply", plan_window_apply),
        (typing.Expanding, "apply", "Expanding.apply", plan_window_apply),
    ]
