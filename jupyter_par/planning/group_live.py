"""A GroupBy call kept in the kernel by the in-kernel fallback, finished as pandas runs it.

The fallback's sample runs the first partition of groups once (its values recorded on
a :class:`~.group_replay.Tape`). When the verdict is "the kernel", running the other
partitions there and then assembling the result by replaying pandas' loop over every
group (:func:`~.group_replay.assemble`) walks pandas' loop twice: a cheap
``groupby.agg(f)`` then takes about twice as long as pandas. Instead,
:meth:`KernelFinish.finish` runs pandas' own call on the caller's GroupBy once, each user
function replaced by a stand-in that hands back the sample's recorded values for the
first partition's groups and calls the function itself on every later group: each
group runs once, and the result is pandas' own.

:meth:`KernelFinish.timed` times the user's functions within the sample, so that the
verdict can tell pandas' own loop (what an assembly after the workers walks again) from
the functions' work: :meth:`KernelFinish.assembly` is that loop's share of the sample.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import SerialFallbackWarning
from .group_replay import (
    GroupCall,
    Mismatch,
    Tape,
    _size,
    answered_without_loop,
    name_like,
    swap,
)

#: What :meth:`KernelFinish.finish` returns when the sample's values cannot be used
#: before any function ran (the caller then runs the rest as partitions, as usual).
NOT_FINISHED = object()


class _Timed:
    """A user function in the sample, its CPU seconds (this thread's) added to ``clock``:
    CPU, so that a wait for a CPU while other processes run counts on neither side."""

    def __init__(self, func: Callable[..., Any], clock: list[float]) -> None:
        self.func, self.clock = func, clock
        name_like(func, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return self.func(*args, **kwargs)
        finally:
            self.clock[0] += time.thread_time() - started


@dataclasses.dataclass(frozen=True)
class _TimedCall:
    """The sample's :class:`GroupCall`, its own CPU seconds added to ``clock``."""

    call: GroupCall
    clock: list[float]

    def __call__(self, part: Any) -> Any:
        started = time.thread_time()
        try:
            return self.call(part)
        finally:
            self.clock[0] += time.thread_time() - started


class _Tail:
    """Pandas' passes over the caller's groups: the first ``known`` groups of each pass
    from the tapes, the rest called live."""

    def __init__(self, tapes: list[Tape], total: int) -> None:
        self.tapes, self.total = tapes, total
        self.known = sum(t.groups for t in tapes)
        self.where: dict[int, tuple[int, int]] = {}
        self.live = 0  # calls made here

    def _recorded(self, slot: int, pass_: int, group: int, arg: Any) -> Any:
        import pandas as pd

        for tape in self.tapes:
            if group < tape.groups:
                passes = tape.passes.get(slot, [])
                if pass_ >= len(passes) or group >= len(passes[pass_]):
                    raise Mismatch
                entry = passes[pass_][group]
                if entry.frame != isinstance(arg, pd.DataFrame) or entry.size != _size(arg):
                    raise Mismatch
                return entry
            group -= tape.groups
        raise Mismatch

    def call(self, slot: int, func: Callable[..., Any], arg: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        pass_, group = self.where.get(slot, (0, 0))
        raised = False
        try:
            if group < self.known:
                entry = self._recorded(slot, pass_, group, arg)
                raised = entry.raised
                if raised:
                    raise entry.value
                return entry.value
            self.live += 1
            try:
                return func(arg, *args, **kwargs)
            except Exception:
                raised = True
                raise
        finally:
            group += 1
            if raised or group >= self.total:
                pass_, group = pass_ + 1, 0
            self.where[slot] = (pass_, group)


class _Live:
    """Stands for one user function in pandas' own call on the caller's GroupBy."""

    def __init__(self, func: Callable[..., Any], slot: int, tail: _Tail) -> None:
        self.func, self.slot, self.tail = func, slot, tail
        name_like(func, self)

    def __call__(self, arg: Any, *args: Any, **kwargs: Any) -> Any:
        if _size(arg) == 0:  # an empty group or pandas' probe: as serially, here
            return self.func(arg, *args, **kwargs)
        return self.tail.call(self.slot, self.func, arg, args, kwargs)


@dataclasses.dataclass
class KernelFinish:
    """How a GroupBy call with user functions finishes in the kernel (see the module)."""

    grouped: Any
    call: GroupCall
    groups: int  #: groups with rows in the caller's input
    serial: Callable[[], Any]
    label: str
    function_seconds: list[float] = dataclasses.field(default_factory=lambda: [0.0])
    sample_seconds: list[float] = dataclasses.field(default_factory=lambda: [0.0])

    def timed(self, op: Any) -> Any:
        """``op`` (the plan's :class:`GroupCall`) with the user's functions timed."""
        if op is not self.call:
            return op
        spec, kwargs = swap(op.spec, op.kwargs, op.named,
                            lambda f, slot: _Timed(f, self.function_seconds))
        return _TimedCall(dataclasses.replace(op, spec=spec, kwargs=kwargs), self.sample_seconds)

    def assembly(self) -> float:
        """CPU seconds of the sample that were pandas' own loop, not the functions' work:
        what assembling the partition's result from recorded values walks again; none
        where the assembly answers pandas without that loop (scaled from a small first
        partition, the loop's fixed cost per call would read as seconds of assembly)."""
        if answered_without_loop(self.grouped, self.call):
            return 0.0
        return max(0.0, self.sample_seconds[0] - self.function_seconds[0])

    def finish(self, tapes: list[Any]) -> Any:
        """The call's value: pandas' own call here, ``tapes`` (the sample's, in order)
        replayed for the first groups, the functions called on the others; or
        :data:`NOT_FINISHED` where pandas asked for a value the tapes lack before any
        function was called here."""
        if not all(isinstance(t, Tape) for t in tapes):
            return NOT_FINISHED
        tail = _Tail(tapes, self.groups)
        if tail.known > self.groups:
            return NOT_FINISHED
        spec, kwargs = swap(self.call.spec, self.call.kwargs, self.call.named,
                            lambda f, slot: _Live(f, slot, tail))
        try:
            return getattr(self.grouped, self.call.method)(spec, *self.call.args, **kwargs)
        except Mismatch:
            if not tail.live:
                return NOT_FINISHED
        warnings.warn(f"{self.label}: pandas called the function differently on the whole "
                      "input than on its partitions (a path chosen from the values); ran "
                      "again in the caller", SerialFallbackWarning, stacklevel=2)
        return self.serial()
