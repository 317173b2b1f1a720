"""``GroupBy.apply``'s result from the workers' values, through pandas' own code.

pandas' ``apply`` is, in every version this package supports::

    values, mutated = grouper.apply_groupwise(f, data)     # the loop over the groups
    result = self._wrap_applied_output(data, values, mutated, ...)

(with, around it, pandas' own argument handling, warnings and pandas 2's retry
without the grouping columns). The loop is the only part that calls the user's
function, and the only costly one in the kernel: it sorts the whole input by group
and makes every group's object again. The workers ran the same loop on their
partitions: each group's value, in group order, and ``mutated``, which is pandas'
own test (``_is_indexed_like``) of each value against its group's axes, read before
the call. So the kernel calls pandas' ``apply`` with that loop answered by the
workers' values (:func:`answered`): everything else is pandas' own code, run as the
serial call runs it.

Where this pandas' loop is not the one described here, or the call would ask it for
something the workers did not compute (groups without rows, which only the caller
sees; a second pass), :func:`answered` says so and the caller replays instead.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

try:  # pandas' own test, read where it is; absent in a pandas that changed it
    from pandas.core.groupby import ops as _ops
except ImportError:  # pragma: no cover - every supported pandas has it
    _ops = None

#: The parameters of ``BaseGrouper.apply_groupwise`` this module knows (pandas 3; pandas 2
#: adds ``axis``, always 0 here: ``groupby(axis=1)`` runs in the caller).
_KNOWN_LOOPS = (["self", "f", "data"], ["self", "f", "data", "axis"])


def _loop_parameters() -> list[str] | None:
    loop = getattr(getattr(_ops, "BaseGrouper", None), "apply_groupwise", None)
    test = getattr(_ops, "_is_indexed_like", None)
    if loop is None or test is None:
        return None
    try:
        return list(inspect.signature(loop).parameters)
    except (TypeError, ValueError):
        return None


_LOOP = _loop_parameters()
#: How many times the kernel's ``apply`` was answered by the workers' values (tests read it).
answered_calls = 0


class Unanswered(BaseException):  # a signal through pandas: it must not catch it
    """pandas asked the loop for a pass the workers did not make."""


def supported() -> bool:
    """Whether this pandas' ``apply`` loop is the one :func:`answered` stands in for."""
    return _LOOP in _KNOWN_LOOPS


def indexed_like(value: Any, axes: list[pd.Index]) -> bool:
    """pandas' own ``_is_indexed_like(value, axes)`` (the group's axes before the call)."""
    if _LOOP == ["self", "f", "data", "axis"]:
        return bool(_ops._is_indexed_like(value, axes, 0))
    return bool(_ops._is_indexed_like(value, axes))


def own_copy(grouped: Any) -> Any:
    """A copy of the user's GroupBy whose loop :func:`answered` may stand in for, the
    user's own left as it is (its computed groups shared, not found again)."""
    own = copy.copy(grouped)
    own._grouper = copy.copy(grouped._grouper)
    return own


@contextmanager
def answered(grouped: Any, values: list[Any], mutated: bool,
             fail_first: bool = False) -> Iterator[None]:
    """Within the block, ``grouped``'s loop over its groups gives back ``values``.

    ``grouped`` must be a GroupBy of the caller's own making (not the user's), with one
    value per group in ``values``. ``fail_first``: the workers' function raised
    ``TypeError`` on the groups with their grouping columns, so the first pass raises it
    too and pandas 2 asks again without them (the pass the workers made). Any other
    further pass raises :class:`Unanswered`.
    """
    grouper = grouped._grouper
    passes = [0]

    def apply_groupwise(f: Any, data: Any, *rest: Any) -> tuple[list[Any], bool]:
        global answered_calls
        passes[0] += 1
        if fail_first and passes[0] == 1:
            msg = "func failed on the groups with their grouping columns"
            raise TypeError(msg)
        if passes[0] > 1 + fail_first:
            raise Unanswered
        answered_calls += 1
        return list(values), mutated

    grouper.apply_groupwise = apply_groupwise
    try:
        yield
    finally:
        del grouper.apply_groupwise


#: :func:`apply_from_tapes` could not answer: replay.
UNANSWERED = object()


def _one_pass(tapes: list[Any]) -> list[Any] | None:
    """Every group's value, in group order, where ``apply`` made one pass of its one
    function over every partition's groups with no error and ``mutated`` known; else None.
    (``tapes``: :class:`~.group_replay.Tape`, one per partition.)"""
    values: list[Any] = []
    for tape in tapes:
        if tape.mutated is None or set(tape.passes) != {0}:
            return None
        made = [p for p in tape.passes[0] if len(p)]
        if len(made) != 1 or len(made[0]) != tape.groups:
            return None
        entries = made[0]
        for i in range(len(entries)):
            entry = entries[i]
            if entry.raised:
                return None
            values.append(entry.value)
    return values


def apply_from_tapes(grouped: Any, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     tapes: list[Any]) -> Any:
    """``grouped.apply(func, *args, **kwargs)`` from the workers' recorded values (the
    user's GroupBy left as it is), or :data:`UNANSWERED` where the replay must do it."""
    if not supported():
        return UNANSWERED
    values = _one_pass(tapes)
    if values is None or len(values) != grouped.ngroups:
        return UNANSWERED  # groups without rows, an error, a second pass: the replay's
    own = own_copy(grouped)
    try:
        with answered(own, values, any(t.mutated for t in tapes)):
            return own.apply(func, *args, **kwargs)
    except Unanswered:
        return UNANSWERED
