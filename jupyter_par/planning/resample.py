"""``resample(...).apply / agg / transform`` with a callable, in parallel.

pandas decides which objects a resampled call hands the function (each bin's rows,
empty bins included; a frame's columns one by one; transform's first bin twice) and
how it assembles the values. Rather than imitate that, the kernel asks pandas::

    kernel: resampler.<method>(probe) ──▶ the objects pandas hands the function, in order
    workers: runs of whole bins ──▶ func(object) for each, in order
    kernel: resampler.<method>(replay) ──▶ pandas assembles the workers' values

The probe returns a stand-in (0.0, or the object itself for transform); should the real
values lead pandas down another path (it asks for an object the probe did not see),
the replay notices and the call runs again in the caller, with a
:class:`~jupyter_par.SerialFallbackWarning`.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SerialFallbackWarning
from ..worker import task as _worker
from .partition import LazyPartition, partition_count
from .plan import Plan

METHODS = ("apply", "agg", "aggregate", "transform")


class _Diverged(BaseException):
    """pandas asked the replay for an object the probe did not see (a BaseException, so
    that no ``except Exception`` fallback inside pandas takes it for the function's)."""


@dataclass(frozen=True)
class Call:
    """One call pandas made: the object and the extra arguments it passed."""

    obj: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def _size(obj: Any) -> int:
    return len(obj) if hasattr(obj, "__len__") else 1


def plan(resampler: Any, method: str, func: Any, args: tuple[Any, ...],
         kwargs: dict[str, Any], jobs: int, partitions: int | None) -> Plan:
    """``resampler.<method>(func, *args, **kwargs)`` with whole bins per partition."""
    name = getattr(func, "__name__", type(func).__name__)
    label = f"resample.{method}({name})"

    def serial() -> Any:
        return getattr(resampler, method)(func, *args, **kwargs)

    if not callable(func) or isinstance(func, np.ufunc) or len(resampler.obj) == 0:
        # names, lists and dicts of functions, ufuncs: pandas' own vectorised calls
        return Plan.in_caller(serial, label)
    calls: list[Call] = []
    stand_in = method == "transform"

    def probe(obj: Any, *a: Any, **k: Any) -> Any:
        calls.append(Call(obj, a, k))
        return obj if stand_in else 0.0

    with warnings.catch_warnings():
        # pandas' own warnings come once, from the replay, as the serial call gives them
        warnings.simplefilter("ignore")
        getattr(resampler, method)(probe, *args, **kwargs)
    if not calls:
        return Plan.in_caller(serial, label)
    sizes = np.array([max(1, _size(c.obj)) for c in calls])
    n_parts = max(1, min(partition_count(int(sizes.sum()), jobs, partitions), len(calls)))
    cumulative = np.cumsum(sizes)
    targets = cumulative[-1] * np.arange(1, n_parts) / n_parts
    cuts = np.unique(np.searchsorted(cumulative, targets, side="left") + 1)
    edges = [0, *[int(c) for c in cuts if 0 < c < len(calls)], len(calls)]
    spans = list(itertools.pairwise(edges))
    parts = [LazyPartition(i, int(sizes[lo:hi].sum()), f"calls {lo}-{hi - 1}",
                           lambda i: (calls[spans[i][0]:spans[i][1]], None))
             for i, (lo, hi) in enumerate(spans)]
    return Plan(parts, CallEach(func),
                lambda results: replay(resampler, method, args, kwargs, calls, results,
                                       serial, label), label)


@dataclass(frozen=True)
class CallEach:
    """In a worker: the user's function on each object pandas handed it, in order."""

    func: Callable[..., Any]

    def __call__(self, part: list[Call]) -> list[Any]:
        func, ctx = self.func, _worker.current_context()
        out = []
        for call in part:
            ctx.note_row(getattr(call.obj, "name", None))
            out.append(func(call.obj, *call.args, **call.kwargs))
            ctx.add_rows(max(1, _size(call.obj)))
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame | pd.Series) and isinstance(b, pd.DataFrame | pd.Series):
        return type(a) is type(b) and a.shape == b.shape and a.index.equals(b.index) \
            and getattr(a, "name", None) == getattr(b, "name", None)
    return a is b


def replay(resampler: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
           calls: list[Call], results: list[list[Any]], serial: Callable[[], Any],
           label: str) -> Any:
    """What ``resampler.<method>(func)`` returns, given the workers' values in order."""
    values = iter([v for part in results for v in part])
    seen = iter(calls)

    def replayed(obj: Any, *a: Any, **k: Any) -> Any:
        expected = next(seen, None)
        if expected is None or not _same(obj, expected.obj):
            raise _Diverged
        return next(values)

    try:
        return getattr(resampler, method)(replayed, *args, **kwargs)
    except _Diverged:
        warnings.warn(f"{label}: the function's values led pandas to call it on other "
                      "objects than foreseen; ran again in the caller",
                      SerialFallbackWarning, stacklevel=2)
        return serial()
