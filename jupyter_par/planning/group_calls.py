"""Plans for a GroupBy's calls with user functions: ``transform``, ``agg``, ``filter``,
``apply`` (with a column selection) on ``DataFrameGroupBy`` and ``SeriesGroupBy``.

Each group lies wholly in one partition (:func:`.groups.split`); workers run the
user's functions, and pandas builds the result in the caller from their values
(:mod:`.group_replay`, and :mod:`.group_transform` for a frame's transform). What pandas
runs by name (``agg("sum")``, ``transform("mean")``, numpy's reductions) is pandas' own
vectorised code and runs in the caller; so do forms a partition cannot reproduce.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd

from . import group_transform, groups
from .group_live import KernelFinish
from .group_replay import GroupCall, assemble, has_user_function, name_like, swap, wrappable
from .group_source import Source, can_iterate, describe, function_kwargs
from .partition import partition_count
from .plan import Plan

#: The GroupBy methods that take a user function, and their one alias.
METHODS = ("apply", "transform", "agg", "aggregate", "filter")


def _name_of(func: Any) -> str:
    if func is None:
        return "named"
    return getattr(func, "__name__", type(func).__name__)


class _Stop(BaseException):  # a signal through pandas, never shown
    """pandas reached the first call of a user function: the arguments are good."""


class _Stopper:
    def __init__(self, func: Any) -> None:
        name_like(func, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _Stop


def refused(grouped: Any, method: str, func: Any, args: tuple[Any, ...],
            kwargs: dict[str, Any], named: bool) -> bool:
    """Whether pandas refuses these arguments; found before any worker starts.

    pandas' own call runs on the caller's GroupBy up to the first call of a user
    function, which stops it: what pandas checks before that (the spec, column names,
    keywords) raises there. A refused call then runs in the caller as pandas, which
    raises pandas' own error with its warnings.
    """
    spec, checked = swap(func, dict(kwargs), named, lambda f, slot: _Stopper(f))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real call warns as the serial one does
        try:
            getattr(grouped, method)(spec, *args, **checked)
        except _Stop:
            return False
        except Exception:  # noqa: BLE001 - pandas' own error, raised again by the serial call
            return True
    return False


def group_call(grouped: Any, method: str, func: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any], jobs: int, partitions: int | None,
               apply_plan: Callable[[Source], Plan] | None = None) -> Plan:
    """``getattr(grouped, method)(func, *args, **kwargs)`` with the functions in workers.

    ``apply_plan`` builds the plan of an ``apply`` without a column selection (the
    proven path of ``jp.groupby_apply``).
    """
    label = f"groupby.{method}({_name_of(func)})"
    named = method in ("agg", "aggregate") and func is None

    def serial() -> Any:
        return getattr(grouped, method)(func, *args, **kwargs)

    engine = kwargs.get("engine")
    if engine not in (None, "cython", "python") and wrappable(func):
        return Plan.in_caller(serial, label, f"engine={engine!r} compiles the function for "
                              "the whole input; ran in the caller")
    if not has_user_function(func, kwargs, named):
        return Plan.in_caller(serial, label)  # pandas' own functions, by name or numpy's
    source = describe(grouped)
    if isinstance(source, str):
        return Plan.in_caller(serial, label, f"{source}; ran in the caller")
    if method == "apply" and apply_plan is not None and _as_given(grouped, source):
        return apply_plan(source)
    if refused(grouped, method, func, args, kwargs, named) or len(source.obj) == 0:
        return Plan.in_caller(serial, label)
    first = groups.FIRST_SHARE if partitions is None else None
    parts = groups.split(source.obj, source.by, partition_count(len(source.obj), jobs,
                                                               partitions),
                         source.split_flags(), first=first, numbered=grouped)
    if isinstance(parts, str):
        return Plan.in_caller(serial, label, f"{parts}; ran in the caller")
    if not parts:
        return Plan.in_caller(serial, label)
    if method == "transform" and isinstance(source.obj, pd.DataFrame):
        return _frame_transform(grouped, source, parts, func, args, kwargs, serial, label)
    op = GroupCall(method, func, args, kwargs, named, source.by, source.worker_flags(),
                   source.selection)
    return Plan(parts, op, lambda results: assemble(grouped, op, results, serial, label), label,
                kernel_finish=KernelFinish(grouped, op, parts.filled, serial, label))


def _as_given(grouped: Any, source: Source) -> bool:
    """Whether ``source.obj.groupby(source.by, **source.flags)`` is the caller's GroupBy
    (no selection, keys as given, and a Series that did not lose ``as_index=False``)."""
    return source.selection is None and source.by is grouped.keys and (
        isinstance(source.obj, pd.DataFrame) or getattr(grouped, "as_index", True))


def _frame_transform(grouped: Any, source: Source, parts: Any, func: Any,
                     args: tuple[Any, ...], kwargs: dict[str, Any],
                     serial: Callable[[], Any], label: str) -> Plan:
    if not can_iterate(grouped):
        return Plan.in_caller(serial, label, "this pandas does not show transform's groups; "
                              "ran in the caller")
    probed = group_transform.probe(grouped, func, args, kwargs)
    if isinstance(probed, tuple):  # one group: pandas finished in the probe
        value = probed[0]
        return Plan.in_caller(lambda: value, label)
    func_kwargs = function_kwargs(kwargs)
    op = group_transform.FrameTransform(func, args, func_kwargs, probed.fast,
                                        probed.first_name, source.by, source.worker_flags(),
                                        source.selection)

    def combine(results: list[Any]) -> Any:
        call = group_transform.FrameTransform(func, args, kwargs, probed.fast,
                                              probed.first_name, None, {})
        return group_transform.assemble(grouped, probed, call, results, serial, label)

    return Plan(parts, op, combine, label)
