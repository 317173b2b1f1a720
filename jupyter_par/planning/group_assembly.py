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
import hashlib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

try:  # pandas' own loops and tests, read where they are
    from pandas.core.groupby import ops as _ops
except ImportError:  # pragma: no cover - every supported pandas has it
    _ops = None

#: The loops this module stands in for, known by their source (sha256, first 16 hex
#: digits), so that a pandas whose loop reads otherwise keeps the replay:
#: ``BaseGrouper.apply_groupwise`` -> the pandas whose ``_is_indexed_like`` it calls.
_APPLY_LOOPS = {"bc8c1ad060c8a248": 3,  # pandas 3.1
                "5b2c3ab47e9c6192": 2}  # pandas 2.3 (``axis`` argument, always 0 here)
#: ``BaseGrouper._aggregate_series_pure_python`` -> whether it checks the first result
#: of every grouper (pandas 2) or only of a resampler's (pandas 3).
_AGG_LOOPS = {"72f8593368f5eeac": "resample only",  # pandas 3.1
              "222e210961379874": "always"}  # pandas 2.3


def known_loop(owner: Any, name: str, known: dict[str, Any]) -> Any:
    """What ``known`` says of ``owner.name``, looked up by its source (sha256, first 16
    hex digits): ``None`` where this pandas' code reads otherwise, or cannot be read."""
    loop = getattr(owner, name, None)
    try:
        source = inspect.getsource(loop)
    except (OSError, TypeError):
        return None
    return known.get(hashlib.sha256(source.encode()).hexdigest()[:16])


_GROUPER = getattr(_ops, "BaseGrouper", None)
_LOOP = known_loop(_GROUPER, "apply_groupwise", _APPLY_LOOPS)
_AGG_LOOP = known_loop(_GROUPER, "_aggregate_series_pure_python", _AGG_LOOPS)
#: How many loops over the groups the workers' values answered (tests read them).
answered_calls = 0
answered_agg_passes = 0


class Unanswered(BaseException):  # a signal through pandas: it must not catch it
    """pandas asked the loop for a pass the workers did not make."""


def supported() -> bool:
    """Whether this pandas' ``apply`` loop is the one :func:`answered` stands in for."""
    return _LOOP is not None


def agg_supported() -> bool:
    """Whether this pandas' aggregation loop is the one :func:`agg_answered` stands in for."""
    return _AGG_LOOP is not None


def indexed_like(value: Any, axes: list[pd.Index]) -> bool:
    """pandas' own ``_is_indexed_like(value, axes)`` (the group's axes before the call)."""
    if _LOOP == 2:
        return bool(_ops._is_indexed_like(value, axes, 0))
    return bool(_ops._is_indexed_like(value, axes))


def own_copy(grouped: Any) -> Any:
    """A copy of the user's GroupBy whose loop :func:`answered` may stand in for, the
    user's own left as it is (its computed groups shared, not found again); None where
    this GroupBy does not copy so."""
    try:
        own = copy.copy(grouped)
        own._grouper = copy.copy(grouped._grouper)
    except Exception:  # noqa: BLE001 - a GroupBy unlike pandas' own: the replay
        return None
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


@contextmanager
def agg_answered(grouped: Any, next_pass: Callable[[np.ndarray], list[Any] | None]
                 ) -> Iterator[None]:
    """Within the block, ``grouped``'s aggregation loop (one pass of the function over
    every group of one Series) takes its values from ``next_pass(group sizes)`` where
    that gives them, and runs as pandas' own otherwise (the replay's function then
    answers it group by group). ``grouped``: of the caller's own making (:func:`own_copy`).

    What the loop does with each value is pandas' own: ``extract_result`` (with its
    warning) and, where this pandas does, ``check_result_array`` on the first.
    """
    grouper = grouped._grouper
    loop = grouper._aggregate_series_pure_python
    sizes: list[np.ndarray] = []

    def answer(obj: Any, func: Any) -> Any:
        global answered_agg_passes
        if not sizes:
            sizes.append(np.asarray(grouper.size(), dtype=np.int64))
        values = next_pass(sizes[0])
        if values is None:
            return loop(obj, func)
        check = _AGG_LOOP == "always" or getattr(grouper, "_is_resample", False)
        result = np.empty(len(values), dtype="O")
        for i, value in enumerate(values):
            res = _ops.extract_result(value)
            if check and i == 0:
                _ops.check_result_array(res, obj.dtype)
            result[i] = res
        answered_agg_passes += 1
        return result

    grouper._aggregate_series_pure_python = answer
    try:
        yield
    finally:
        del grouper._aggregate_series_pure_python


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
    if own is None:
        return UNANSWERED
    try:
        with answered(own, values, any(t.mutated for t in tapes)):
            return own.apply(func, *args, **kwargs)
    except Unanswered:
        return UNANSWERED
