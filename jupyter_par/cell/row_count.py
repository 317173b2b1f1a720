"""Row-level progress for a ``%%parallel`` cell body: count rows inside pandas calls.

A cell body is arbitrary code, so the engine cannot cut it into steps the way
:mod:`jupyter_par.planning.operations` does. What it can see is the pandas calls the body makes:
while a body runs, ``DataFrame.apply``/``map``/``agg``, ``Series.apply``/``map``/``agg``
and ``groupby(...).apply`` are replaced by thin wrappers that count rows (per row or
group when the user's function is plain Python, per call otherwise) and remember the
row being worked on, so a failure can name it.

The wrappers are installed only while at least one body runs in this process and
removed when the last one ends. They count only in the thread that runs a body and
only for the outermost call (pandas calling itself is not counted twice); everywhere
else they call straight through to pandas.
"""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from ..worker import task as _worker

_GroupBy = pd.api.typing.DataFrameGroupBy
_SeriesGroupBy = pd.api.typing.SeriesGroupBy

#: (class, method name, how rows are counted)
_HOOKED: tuple[tuple[type, str, str], ...] = (
    (pd.DataFrame, "apply", "frame_apply"),
    (pd.DataFrame, "map", "whole"),
    (pd.DataFrame, "agg", "whole"),
    (pd.DataFrame, "aggregate", "whole"),
    (pd.Series, "apply", "elements"),
    (pd.Series, "map", "elements"),
    (pd.Series, "agg", "whole"),
    (pd.Series, "aggregate", "whole"),
    (_GroupBy, "apply", "groups"),
    (_SeriesGroupBy, "apply", "groups"),
)
_PLAIN = (types.FunctionType, types.MethodType, functools.partial)
_MISSING = object()

_lock = threading.Lock()
_users = 0
_saved: list[tuple[type, str, Any]] = []
_local = threading.local()


class _Counter:
    """Rows counted for the body running in one thread, never more than its partition."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.ctx = _worker.current_context()

    def count(self, n: int) -> None:
        n = min(n, self.limit - self.ctx.rows)
        if n > 0:
            self.ctx.add_rows(n)


def _func_position(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, bool]:
    if args:
        return args[0], True
    return kwargs.get("func"), False


def _with_func(args: tuple[Any, ...], kwargs: dict[str, Any], positional: bool,
               func: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if positional:
        return (func, *args[1:]), kwargs
    return args, {**kwargs, "func": func}


def _row_wise(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    axis = args[1] if len(args) > 1 else kwargs.get("axis", 0)
    return axis in (1, "columns")


def _wrap(func: Callable[..., Any], counter: _Counter, kind: str) -> Callable[..., Any]:
    """The user's function, counting what it is called on and noting its label."""
    ctx = counter.ctx

    @functools.wraps(func)
    def each(item: Any, *args: Any, **kwargs: Any) -> Any:
        if kind != "elements":
            ctx.note_row(getattr(item, "name", None))
        result = func(item, *args, **kwargs)
        counter.count(len(item) if kind == "groups" else 1)
        return result

    return each


def _hook(original: Callable[..., Any], kind: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter: _Counter | None = getattr(_local, "counter", None)
        if counter is None or counter.depth > 0:
            return original(self, *args, **kwargs)
        func, positional = _func_position(args, kwargs)
        per_item = (
            isinstance(func, _PLAIN)
            and kwargs.get("engine") is None
            and (kind in ("elements", "groups") or (kind == "frame_apply"
                                                    and _row_wise(args, kwargs)))
        )
        if per_item:
            item_kind = "rows" if kind == "frame_apply" else kind
            args, kwargs = _with_func(args, kwargs, positional, _wrap(func, counter, item_kind))
        counter.depth += 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            counter.depth -= 1
        if not per_item and kind != "groups":
            counter.count(len(self))
        counter.ctx.has_row_label = False  # the call succeeded: no row is to blame
        return result

    return method


def _install() -> None:
    for cls, name, kind in _HOOKED:
        original = getattr(cls, name)
        _saved.append((cls, name, cls.__dict__.get(name, _MISSING)))
        setattr(cls, name, _hook(original, kind))


def _restore() -> None:
    while _saved:
        cls, name, previous = _saved.pop()
        if previous is _MISSING:
            delattr(cls, name)
        else:
            setattr(cls, name, previous)


@contextmanager
def counting_rows(limit: int) -> Iterator[None]:
    """Count rows done by pandas calls in this thread, up to ``limit``, while the block runs."""
    global _users
    with _lock:
        if _users == 0:
            _install()
        _users += 1
    _local.counter = _Counter(limit)
    try:
        yield
    finally:
        _local.counter = None
        with _lock:
            _users -= 1
            if _users == 0:
                _restore()


def installed() -> bool:
    """Whether the wrappers are in place now (for tests)."""
    return bool(_saved)
