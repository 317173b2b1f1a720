"""``DataFrameGroupBy.transform(func)`` in workers: the one call whose path pandas picks
from the first group's values.

pandas calls ``func`` on the first group column by column (the "slow path"), then on the
whole group (the "fast path"), and keeps the fast path for every later group only when
both gave the same values. A partition cannot know what the first group decided, and
running that probe on every partition's first group would call ``func`` more often than
pandas does. So::

    caller: pandas' own transform, stopped at the second group: the first group's
            calls (exactly pandas' own) and the path pandas chose
    worker: func on each later group of its partition by that path, once per group
            (per column on the slow path, as pandas)
    caller: pandas' own transform again, its calls answered from the first group's
            record and then the workers', in order: pandas assembles the result
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import SerialFallbackWarning
from ..shown_errors import hidden_frame
from ..worker import task as _worker
from .group_replay import Entry, Mismatch, _size, pack
from .group_source import iterate, regroup
from .groups import Keyed

_NOTHING = object()


class _Decided(BaseException):  # a signal through pandas, never shown
    """pandas made its first call for the second group: the path is known."""

    def __init__(self, fast: bool) -> None:
        super().__init__()
        self.fast = fast


class _Probe:
    """Runs ``func`` for pandas on the first group; stops pandas at the second."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.entries: list[Entry] = []
        self.first_name: Any = _NOTHING
        self.after_first = False

    def __call__(self, arg: Any, *args: Any, **kwargs: Any) -> Any:
        frame = isinstance(arg, pd.DataFrame)
        if self.after_first:
            raise _Decided(frame)
        if frame:  # the fast path's call: the last one for the first group
            self.after_first = True
            if _size(arg) > 0:
                self.first_name = arg.name
        try:
            value = self.func(arg, *args, **kwargs)
        except Exception as exc:
            self.entries.append(Entry(frame, _size(arg), exc, raised=True))
            raise
        self.entries.append(Entry(frame, _size(arg), value))
        return value


@dataclass(frozen=True)
class Probed:
    """What the first group decided: pandas' path, its calls, and the group's name."""

    fast: bool
    entries: list[Entry]
    first_name: Any


def probe(grouped: Any, func: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> Probed | tuple[Any]:
    """Run pandas' transform up to its choice of path; ``(result,)`` where pandas
    finished without choosing (one group: nothing left for workers)."""
    prober = _Probe(func)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = grouped.transform(prober, *args, **kwargs)
        except _Decided as decided:
            result: Probed | tuple[Any] = Probed(decided.fast, prober.entries, prober.first_name)
        else:
            result = (value,)
        finally:
            kept = [w for w in caught if not hidden_frame(w.filename)]
    for w in kept:  # the function's own warnings; pandas warns again in the replay
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _same(name: Any, other: Any) -> bool:
    if isinstance(name, tuple) and isinstance(other, tuple):
        return len(name) == len(other) and all(_same(a, b) for a, b in zip(name, other,
                                                                           strict=True))
    try:
        if pd.isna(name) and pd.isna(other):
            return True
    except (TypeError, ValueError):
        pass
    try:
        return bool(name == other)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class FrameTransform:
    """In a worker: ``func`` on each group of the partition by the path pandas chose."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    fast: bool
    skip: Any  # the first group's name: the caller ran it
    by: Any
    flags: dict[str, Any]
    selection: Any = None

    def __call__(self, part: Keyed | pd.DataFrame) -> Any:
        data, by = (part.data, part.by) if isinstance(part, Keyed) else (part, self.by)
        grouped = regroup(data, by, self.flags, self.selection)
        ctx = _worker.current_context()
        entries: list[Entry] = []
        func, args, kwargs = self.func, self.args, self.kwargs

        def each(arg: Any) -> Any:
            value = func(arg, *args, **kwargs)
            entries.append(Entry(isinstance(arg, pd.DataFrame), _size(arg), value))
            return value

        for name, group in iterate(grouped):
            if group.size == 0 or (self.skip is not _NOTHING and _same(name, self.skip)):
                continue
            ctx.note_row(name)
            if self.fast:
                each(group)
            else:
                group.apply(each, axis=0)
            ctx.add_rows(len(group))
        return pack(entries)


class _TapeReplayer:
    """In the caller: answers pandas' transform from the recorded calls, in order."""

    def __init__(self, func: Callable[..., Any], entries: list[Entry]) -> None:
        self.func = func
        self.entries = iter(entries)

    def __call__(self, arg: Any, *args: Any, **kwargs: Any) -> Any:
        entry = next(self.entries, None)
        if entry is None or entry.frame != isinstance(arg, pd.DataFrame) \
                or entry.size != _size(arg):
            raise Mismatch
        if entry.raised:
            raise entry.value
        return entry.value


def assemble(grouped: Any, probed: Probed, call: FrameTransform, results: list[Any],
             serial: Callable[[], Any], label: str) -> Any:
    """What ``grouped.transform(func)`` returns, from the first group's and the workers' calls."""
    entries = [*probed.entries, *(part[i] for part in results for i in range(len(part)))]
    try:
        return grouped.transform(_TapeReplayer(call.func, entries), *call.args, **call.kwargs)
    except Mismatch:
        pass
    warnings.warn(f"{label}: pandas called the function differently on the whole input than "
                  "on its partitions; ran again in the caller", SerialFallbackWarning,
                  stacklevel=2)
    return serial()
