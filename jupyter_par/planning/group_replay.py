"""A GroupBy call with the user's functions run in workers, its result built by pandas.

pandas decides a groupby result's shape, index and dtypes from every group's value at
once, and may call a function several times per group (one pass per column for
``agg``, a retry after an error). So partitions never build results of their own::

    kernel: whole groups per partition (groups.split)
    worker: pandas' own call on the partition's GroupBy, each user function wrapped
            in a Recorder: every value (or error) it returns, pass by pass
    kernel: pandas' own call on the caller's GroupBy, each user function replaced by
            a Replayer that hands back those values in the order pandas asks

For ``apply``, and for ``agg`` with one function, pandas' loop over the groups is
answered whole from the tapes instead (:mod:`.group_assembly`): pandas does not make
every group again in the caller. The replay stays for every other call and path.

A *pass* is pandas calling one function once on every group, in group order: the
caller's pass ``p`` at group ``g`` is pass ``p`` of the partition holding ``g``.
Calls on empty objects (groups of unobserved categories, pandas' probes) are not
recorded: pandas makes them in the caller too, and they run there. When pandas asks
for something no partition recorded (it took another path on the whole input than on
a partition), the call runs again in the caller, as pandas, with a warning.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SerialFallbackWarning
from ..worker import task as _worker
from . import group_assembly, series_transform
from .group_source import regroup
from .groups import Keyed

#: Functions pandas knows by name (numpy's reductions, builtins): pandas may run its own
#: vectorised code instead of calling them, so they are left to pandas as they are.
_NATIVE_MODULES = ("numpy", "pandas", "builtins")


#: How many ``SeriesGroupBy.transform`` results were placed from the workers' pieces
#: without a replay (tests read it).
series_transforms_placed = 0


class Mismatch(BaseException):  # a signal: pandas must not catch it
    """pandas asked the replay for a value no partition recorded."""


def wrappable(func: Any) -> bool:
    """Whether ``func`` is the user's own function (called per group), not pandas' or numpy's."""
    if isinstance(func, str | type | np.ufunc) or not callable(func):
        return False
    module = getattr(func, "__module__", None) or ""
    return module.split(".")[0] not in _NATIVE_MODULES


def swap(spec: Any, kwargs: dict[str, Any], named: bool,
         make: Callable[[Any, int], Any]) -> tuple[Any, dict[str, Any]]:
    """``spec`` (and named aggregations in ``kwargs``) with each user function ``f``
    replaced by ``make(f, slot)``; slots number the functions in the order met.

    One function given twice gets one stand-in, so that pandas sees the same object twice
    (it refuses ``agg([f, f])`` by identity, as it would the user's).
    """
    made: dict[int, Any] = {}

    def stand_in(func: Any) -> Any:
        if id(func) not in made:
            made[id(func)] = make(func, len(made))
        return made[id(func)]

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, pd.NamedAgg):
            return pd.NamedAgg(item.column, walk(item.aggfunc))
        if isinstance(item, tuple):
            # (output name, func) in a list, (column, func) in a named aggregation
            return (item[0], walk(item[1])) if len(item) == 2 else tuple(walk(v) for v in item)
        return stand_in(item) if wrappable(item) else item

    new_spec = walk(spec)
    if named:
        kwargs = {k: walk(v) for k, v in kwargs.items()}
    return new_spec, kwargs


def has_user_function(spec: Any, kwargs: dict[str, Any], named: bool) -> bool:
    found: list[int] = []
    swap(spec, kwargs, named, lambda f, slot: found.append(slot))
    return bool(found)


def _size(arg: Any) -> int:
    try:
        return len(arg)
    except TypeError:
        return -1


def name_like(func: Any, wrapper: Any) -> None:
    """Give ``wrapper`` the name pandas reads from ``func`` (result columns are named after
    it, "<lambda>" is mangled): a partial's function's name, else the object's type's."""
    inner = func
    while isinstance(inner, functools.partial) and not hasattr(inner, "__name__"):
        inner = inner.func
    wrapper.__name__ = getattr(inner, "__name__", type(inner).__name__)
    qualname = getattr(func, "__qualname__", None)
    if qualname is not None:
        wrapper.__qualname__ = qualname


@dataclass(frozen=True)
class Entry:
    """One recorded call: the argument's kind and length, and what the function gave."""

    frame: bool
    size: int
    value: Any
    raised: bool = False


@dataclass(frozen=True)
class Tape:
    """A partition's recorded calls: per function slot, per pass; ``groups`` with rows."""

    groups: int
    passes: dict[int, list[Any]] = field(default_factory=dict)  # lists of Entry, or Packed
    #: A Series transform's rows, ``Series(value, index=group.index)`` of each group in
    #: order, concatenated (labels kept): pandas' own pieces (see
    #: :func:`_series_transform`), or None.
    aligned: Any = None
    #: ``apply``: pandas' ``mutated`` over the partition's groups (see group_assembly),
    #: None where not known.
    mutated: bool | None = None


class Packed:
    """A run of recorded calls whose values are Series (or frames) of one shape of type,
    sent as one concatenated object: thousands of small pandas objects cost far more to
    pickle and unpickle than their rows. Reads back as the list of :class:`Entry` it
    stands for; each value a slice of the whole, with the index, name and dtype it had.
    """

    def __init__(self, entries: list[Entry], whole: Any,
                 lengths: list[int] | None = None) -> None:
        self.frame = entries[0].frame
        self.sizes = [e.size for e in entries]
        self.bounds = np.cumsum([0, *(lengths if lengths is not None
                                      else (len(e.value) for e in entries))])
        self.names = [getattr(e.value, "name", None) for e in entries] if isinstance(
            whole, pd.Series) else None
        self.whole = whole

    @classmethod
    def of_pieces(cls, entries: list[Entry], aligned: pd.Series) -> list[Entry] | Packed:
        """A Series transform's pass, read from its concatenated pieces (one per group,
        each as long as its group) rather than concatenated again."""
        sizes = [e.size for e in entries]
        if len(entries) < 2 or sum(sizes) != len(aligned):
            return pack(entries)
        return cls(entries, aligned, lengths=sizes)

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> Entry:
        value = self.whole.iloc[self.bounds[i]:self.bounds[i + 1]]
        if self.names is not None:
            value.name = self.names[i]  # a group's result is often named after its key
        return Entry(self.frame, self.sizes[i], value)


def _same_shape(a: Any, b: Any) -> bool:
    if type(a) is not type(b) or type(a.index) is not type(b.index) \
            or a.index.dtype != b.index.dtype or a.index.names != b.index.names \
            or a.attrs or b.attrs:
        return False
    if isinstance(a, pd.Series):
        return a.dtype == b.dtype  # names travel apart
    return (a.columns.equals(b.columns) and a.columns.dtype == b.columns.dtype
            and a.columns.names == b.columns.names and a.dtypes.equals(b.dtypes))


def pack(entries: list[Entry]) -> list[Entry] | Packed:
    """``entries`` as one :class:`Packed` run where their values allow it, else as given."""
    if len(entries) < 2 or any(e.raised for e in entries):
        return entries
    first = entries[0].value
    if type(first) not in (pd.Series, pd.DataFrame) or isinstance(first.index, pd.MultiIndex):
        return entries
    if not all(_same_shape(first, e.value) for e in entries[1:]):
        return entries
    whole = pd.concat([e.value for e in entries])
    if not _same_shape(first, whole):  # concat changed a dtype or the kind of index
        return entries
    return Packed(entries, whole)


class _Book:
    """In a worker: the calls of every Recorder of one partition, cut into passes."""

    def __init__(self, groups: int, rows: int) -> None:
        self.tape = Tape(groups)
        self.rows_left = rows
        self.raised: list[BaseException] = []
        self.pieces: list[pd.Series] | None = None  # a Series transform's, when kept
        self.mutated: bool | None = None  # apply's, when tracked

    def add(self, slot: int, entry: Entry) -> None:
        passes = self.tape.passes.setdefault(slot, [[]])
        passes[-1].append(entry)
        if entry.raised or len(passes[-1]) >= self.tape.groups:
            passes.append([])
        if entry.size > 0 and self.rows_left > 0:  # progress: the rows of the first pass
            done = min(entry.size, self.rows_left)
            self.rows_left -= done
            _worker.current_context().add_rows(done)


class Recorder:
    """In a worker: calls the user's function and records what it returns or raises."""

    def __init__(self, func: Callable[..., Any], slot: int, book: _Book) -> None:
        self.func, self.slot, self.book = func, slot, book
        name_like(func, self)

    def __call__(self, arg: Any, *args: Any, **kwargs: Any) -> Any:
        size = _size(arg)
        if size == 0:
            return self.func(arg, *args, **kwargs)
        frame = isinstance(arg, pd.DataFrame)
        axes = getattr(arg, "axes", None) if self.book.mutated is False else None
        try:
            value = self.func(arg, *args, **kwargs)
        except Exception as exc:
            _worker.current_context().note_row(getattr(arg, "name", None))
            self.book.raised.append(exc)
            self.book.add(self.slot, Entry(frame, size, exc, raised=True))
            raise
        self.book.add(self.slot, Entry(frame, size, value))
        if self.book.mutated is False:
            self.book.mutated = None if axes is None else not group_assembly.indexed_like(
                value, axes)
        if self.book.pieces is not None:
            try:  # what SeriesGroupBy.transform makes of each group's value
                self.book.pieces.append(value if type(value) is pd.Series
                                        and value.index is arg.index
                                        else pd.Series(value, index=arg.index))
            except Exception:  # noqa: BLE001 - pandas raises it again in the replay
                self.book.pieces = None
        return value


def _from_function(exc: BaseException, raised: list[BaseException]) -> bool:
    """Whether ``exc`` is (or was raised from) an error of the user's function."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if any(exc is r for r in raised):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True)
class GroupCall:
    """In a worker: ``getattr(partition's GroupBy, method)(spec, *args, **kwargs)``,
    recorded (see the module docstring); pandas' own result on the partition is dropped."""

    method: str
    spec: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    named: bool
    by: Any
    flags: dict[str, Any]
    selection: Any = None

    def __call__(self, part: Keyed | pd.DataFrame | pd.Series) -> Tape:
        data, by = (part.data, part.by) if isinstance(part, Keyed) else (part, self.by)
        grouped = regroup(data, by, self.flags, self.selection)
        book = _Book(grouped.ngroups, len(data))
        if self.method == "transform" and isinstance(data, pd.Series):
            book.pieces = []
        if self.method == "apply" and group_assembly.supported():
            book.mutated = False
        spec, kwargs = swap(self.spec, self.kwargs, self.named,
                            lambda f, slot: Recorder(f, slot, book))
        try:
            if book.pieces is not None and series_transform.supported() and callable(spec):
                book.pieces = None  # the loop makes them, not the Recorder
                book.pieces = series_transform.pieces(grouped, spec, self.args, kwargs)
            else:
                getattr(grouped, self.method)(spec, *self.args, **kwargs)
        except Exception as exc:
            if _from_function(exc, book.raised):
                raise  # the user's error, as the serial call raises it
            # pandas refused what it got on this partition: the caller's own call on the
            # whole input decides (it refuses the same way, or asks for what was recorded)
        pieces = book.pieces
        if (pieces and len(pieces) == book.tape.groups and not book.raised
                and all(p.dtype == pieces[0].dtype for p in pieces)):
            # one dtype: concatenating here first changes nothing pandas would infer
            aligned = pd.concat(pieces)
            tape = Tape(book.tape.groups, book.tape.passes, aligned)
            # Should the caller replay pandas' loop after all (unobserved categories), each
            # group's piece (its group's labels) stands for its value: pandas makes the
            # same piece of either.
            for passes in tape.passes.values():
                passes[:] = [Packed.of_pieces(p, aligned) for p in passes]
        else:
            tape = book.tape
            for passes in tape.passes.values():
                passes[:] = [pack(p) for p in passes]
        return replace(tape, mutated=book.mutated)


class _Replay:
    """In the caller: the partitions' tapes, read in the order pandas asks."""

    def __init__(self, tapes: list[Tape]) -> None:
        self.tapes = tapes
        self.starts = list(itertools.accumulate((t.groups for t in tapes), initial=0))
        self.total = self.starts[-1]
        self.where: dict[int, tuple[int, int]] = {}

    def next(self, slot: int, arg: Any) -> Any:
        pass_, group = self.where.get(slot, (0, 0))
        if self.total == 0:
            raise Mismatch
        part = bisect.bisect_right(self.starts, group) - 1
        passes = self.tapes[part].passes.get(slot, [])
        local = group - self.starts[part]
        if pass_ >= len(passes) or local >= len(passes[pass_]):
            raise Mismatch
        entry = passes[pass_][local]
        if entry.frame != isinstance(arg, pd.DataFrame) or entry.size != _size(arg):
            raise Mismatch
        group += 1
        if entry.raised or group == self.total:
            pass_, group = pass_ + 1, 0
        self.where[slot] = (pass_, group)
        if entry.raised:
            raise entry.value
        return entry.value


    def whole_pass(self, slot: int, sizes: np.ndarray) -> list[Any] | None:
        """The next pass of ``slot`` over every group at once, where pandas is at its start
        and every partition recorded it whole, on Series groups of ``sizes`` rows, without
        an error; else None (and nothing read)."""
        pass_, group = self.where.get(slot, (0, 0))
        if group != 0 or self.total != len(sizes) or self.total == 0:
            return None
        values: list[Any] = []
        for tape in self.tapes:
            passes = tape.passes.get(slot, [])
            if pass_ >= len(passes) or len(passes[pass_]) != tape.groups:
                return None
            entries = passes[pass_]
            for i in range(len(entries)):
                entry = entries[i]
                if entry.raised or entry.frame or entry.size != sizes[len(values)]:
                    return None
                values.append(entry.value)
        self.where[slot] = (pass_ + 1, 0)
        return values


class Replayer:
    """In the caller: stands for one user function in pandas' own call."""

    def __init__(self, func: Callable[..., Any], slot: int, replay: _Replay) -> None:
        self.func, self.slot, self.replay = func, slot, replay
        name_like(func, self)

    def __call__(self, arg: Any, *args: Any, **kwargs: Any) -> Any:
        if _size(arg) == 0:  # an empty group or pandas' probe: as serially, here
            return self.func(arg, *args, **kwargs)
        return self.replay.next(self.slot, arg)


def answered_without_loop(grouped: Any, call: GroupCall) -> bool:
    """Whether :func:`assemble` can answer ``call`` without walking pandas' loop over the
    groups again (pandas' apply or one-function agg answered from the tapes, a Series'
    transform put back in place): its assembly then costs next to nothing per group."""
    if call.method == "transform":
        return isinstance(grouped.obj, pd.Series)
    if call.method == "apply":
        return group_assembly.supported()
    return (call.method in ("agg", "aggregate") and not call.named and wrappable(call.spec)
            and group_assembly.agg_supported())


def assemble(grouped: Any, call: GroupCall, tapes: list[Tape], serial: Callable[[], Any],
             label: str) -> Any:
    """What ``getattr(grouped, call.method)(...)`` returns, from the partitions' tapes."""
    if call.method == "transform" and isinstance(grouped.obj, pd.Series):
        fast = _series_transform(grouped, tapes)
        if fast is not None:
            return fast
    if call.method == "apply":
        result = group_assembly.apply_from_tapes(grouped, call.spec, call.args, call.kwargs,
                                                 tapes)
        if result is not group_assembly.UNANSWERED:
            return result
    replay = _Replay(tapes)
    spec, kwargs = swap(call.spec, call.kwargs, call.named,
                        lambda f, slot: Replayer(f, slot, replay))
    target, answering = grouped, contextlib.nullcontext()
    if (call.method in ("agg", "aggregate") and not call.named and wrappable(call.spec)
            and group_assembly.agg_supported()):
        # one user function: pandas' loop over a Series' groups is answered a pass at a
        # time from the tapes, without making every group again
        own = group_assembly.own_copy(grouped)
        if own is not None:
            target = own
            answering = group_assembly.agg_answered(own,
                                                    lambda sizes: replay.whole_pass(0, sizes))
    try:
        with answering:
            return getattr(target, call.method)(spec, *call.args, **kwargs)
    except Mismatch:
        pass
    warnings.warn(f"{label}: pandas called the function differently on the whole input than "
                  "on its partitions (a path chosen from the values); ran again in the caller",
                  SerialFallbackWarning, stacklevel=2)
    return serial()


def _series_transform(grouped: Any, tapes: list[Tape]) -> pd.Series | None:
    """``SeriesGroupBy.transform``'s own assembly, from the workers' pieces, or None.

    pandas makes ``Series(value, index=group.index)`` of each group's value, concatenates
    them in group order, and puts the rows back in input order by their positions (rows
    of dropped keys as missing). The workers made the pieces and concatenated them (one
    dtype per partition); the caller concatenates the partitions and places the rows as
    pandas does, without pandas' loop over every group again. Only where every group
    has rows (no unobserved categories: pandas calls the function on those here).
    """
    if not tapes or any(t.aligned is None for t in tapes):
        return None
    if sum(t.groups for t in tapes) != grouped.ngroups:
        return None
    obj = grouped.obj
    numbers = grouped.ngroup().to_numpy(dtype=float, na_value=np.nan)
    kept = ~np.isnan(numbers)
    ids = numbers[kept].astype(np.uint16 if grouped.ngroups <= 2**16 else np.intp)
    # The kept rows in group order (a stable sort of small integers is a radix sort), and
    # where each kept row, in input order, lies in that order: what sorting the pieces by
    # their positions does, in linear time.
    order = np.argsort(ids, kind="stable")
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    concatenated = pd.concat([t.aligned for t in tapes], ignore_index=True)
    if len(concatenated) != len(order):
        return None
    result = concatenated.take(where).set_axis(pd.Index(np.flatnonzero(kept)))
    if not kept.all():
        result = result.reindex(pd.RangeIndex(len(obj)))
    result = result.set_axis(obj.index)
    result.name = obj.name
    global series_transforms_placed
    series_transforms_placed += 1
    return result
