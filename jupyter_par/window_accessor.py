"""``.par`` on pandas' window objects: ``df.rolling(50).par.apply(f)``, and the function form.

pandas has a public accessor API for DataFrame, Series and Index only, so ``.par`` is
put on the public window classes (``pandas.api.typing``) as pandas' own accessors are
made: a descriptor that builds the accessor on first use and caches it on the object.
Objects jupyter_par cannot run in parallel get a ``.par`` that says which pandas call
to use instead.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pandas as pd

from .api import _planned, _run, _split_options
from .errors import UsageError
from .planning import builders


class _ParDescriptor:
    """Like pandas' ``CachedAccessor``: ``obj.par`` is ``accessor(obj)``, made once per object."""

    def __init__(self, accessor: type) -> None:
        self._accessor = accessor

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return self._accessor
        made = self._accessor(obj)
        # An object without a __dict__ builds it again on the next use.
        with contextlib.suppress(AttributeError, TypeError):
            object.__setattr__(obj, "par", made)
        return made


def window_apply(window: Any, func: Any, raw: bool = False, engine: str | None = None,
                 engine_kwargs: dict[str, bool] | None = None,
                 args: tuple[Any, ...] | None = None, kwargs: dict[str, Any] | None = None,
                 **options: Any) -> Any:
    """Parallel ``window.apply(func, raw=raw, ...)`` for ``obj.rolling(...)`` /
    ``obj.expanding(...)`` and their groupby forms
    (``df.groupby(k)[col].rolling(20)``), same result as pandas.

    Each partition travels with the rows before it (and after it, ``center=True``)
    that its windows reach, and returns only its own rows; the function runs once per
    window; groups are never split, and pandas assembles a grouped result itself.
    ``options`` are jupyter_par's (``jobs``, ``backend``, ``partitions``,
    ``progress``, ...). ``engine="numba"`` and ``method="table"`` run in the caller
    with a :class:`~jupyter_par.SerialFallbackWarning`.

    Examples
    --------
    >>> jp.window_apply(df["b"].rolling(50), f, raw=True, jobs=4)  # doctest: +SKIP
    """
    if not isinstance(window, pd.api.typing.Rolling | pd.api.typing.Expanding):
        msg = (f"window_apply needs obj.rolling(...) or obj.expanding(...), "
               f"got {type(window).__name__}")
        raise UsageError(msg)
    run_options, objects, rest = _split_options(dict(options))
    if rest:
        msg = (f"unexpected keyword(s) {', '.join(sorted(rest))}; give the function's own "
               "as kwargs={...}, as pandas takes them")
        raise UsageError(msg)
    call = {"raw": raw, "engine": engine, "engine_kwargs": engine_kwargs, "args": args,
            "kwargs": kwargs}
    plan = _planned(builders.window_apply, window, func, call, run_options.jobs,
                    run_options.partitions)
    return _run(plan, run_options, objects)


class WindowParallel:
    """``rolling(...).par`` / ``expanding(...).par``: ``apply`` with pandas' signature plus
    jupyter_par's options (``jobs=``, ``backend=``, ``partitions=``, ``progress=``...)."""

    def __init__(self, window: Any) -> None:
        self._window = window

    def apply(self, func: Any, raw: bool = False, engine: str | None = None,
              engine_kwargs: dict[str, bool] | None = None,
              args: tuple[Any, ...] | None = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Any:
        """Parallel ``apply``; see :func:`window_apply`."""
        return window_apply(self._window, func, raw=raw, engine=engine,
                            engine_kwargs=engine_kwargs, args=args, kwargs=kwargs, **options)


class _Unsupported:
    """``.par`` where jupyter_par has no parallel form: says what to call instead."""

    instead = ""

    def __init__(self, obj: Any) -> None:
        msg = (f"{type(obj).__name__}.par: jupyter_par cannot run {self.instead}; call the "
               f"pandas method directly (e.g. {self.example})")
        raise UsageError(msg)

    example = ""


class _EwmUnsupported(_Unsupported):
    instead = ("exponentially weighted windows in parallel (each value depends on every "
               "row before it, and pandas takes no user function there)")
    example = "obj.ewm(span=10).mean(), or obj.expanding().par.apply(f) for your own function"


class _WeightedUnsupported(_Unsupported):
    instead = "weighted windows (win_type=) in parallel (pandas takes no user function there)"
    example = "obj.rolling(10, win_type='triang').mean(), or obj.rolling(10).par.apply(f)"


def resample_call(resampler: Any, method: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Parallel ``resampler.<method>(func, *args, **kwargs)`` for ``apply``, ``agg`` /
    ``aggregate`` and ``transform`` with a callable: same result as pandas, each bin
    whole in one partition. jupyter_par's options (``jobs``, ``backend``, ...) are
    taken out of ``kwargs``; the rest go to ``func``."""
    if not isinstance(resampler, pd.api.typing.Resampler):
        msg = f"resample_call needs obj.resample(...), got {type(resampler).__name__}"
        raise UsageError(msg)
    run_options, objects, rest = _split_options(dict(kwargs))
    plan = _planned(builders.resample_call, resampler, method, func, args, rest,
                    run_options.jobs, run_options.partitions)
    return _run(plan, run_options, objects)


class ResampleParallel:
    """``resample(...).par``: ``apply``, ``agg`` / ``aggregate``, ``transform`` with
    pandas' signatures plus jupyter_par's options."""

    def __init__(self, resampler: Any) -> None:
        self._resampler = resampler

    def apply(self, func: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Parallel ``Resampler.apply``."""
        return resample_call(self._resampler, "apply", func, *args, **kwargs)

    def agg(self, func: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Parallel ``Resampler.agg``."""
        return resample_call(self._resampler, "agg", func, *args, **kwargs)

    aggregate = agg

    def transform(self, arg: Any, *args: Any, **kwargs: Any) -> Any:
        """Parallel ``Resampler.transform``."""
        return resample_call(self._resampler, "transform", arg, *args, **kwargs)


def _register() -> None:
    """Put ``.par`` on the public window classes (pandas 2.2+ and 3.x names)."""
    # pandas 3 renamed the groupby forms (…GroupBy) and warns on the old names: only
    # the names this pandas defines are read.
    typing = vars(pd.api.typing)
    for name in ("Rolling", "Expanding", "RollingGroupby", "RollingGroupBy",
                 "ExpandingGroupby", "ExpandingGroupBy"):
        if name in typing:
            typing[name].par = _ParDescriptor(WindowParallel)
    for name in ("ExponentialMovingWindow", "ExponentialMovingWindowGroupby",
                 "ExponentialMovingWindowGroupBy"):
        if name in typing:
            typing[name].par = _ParDescriptor(_EwmUnsupported)
    typing["Window"].par = _ParDescriptor(_WeightedUnsupported)
    typing["Resampler"].par = _ParDescriptor(ResampleParallel)


_register()
