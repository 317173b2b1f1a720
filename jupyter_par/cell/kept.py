"""The finished values of a refused cell, kept for the run that adds the flag it asked for.

A ``%%parallel`` body whose value cannot be combined is stopped at its first finished
partition (see ``check_first`` in :mod:`jupyter_par.planning.plan`); what finished by
then is kept here, keyed by the cell's data and cut, so that running the cell again
with ``--reduce`` or ``--per-partition`` does not compute those partitions again. One
cell's values are kept at a time, and taken (forgotten) by the next run that matches.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..planning.partition import Partition


@dataclass(frozen=True)
class Key:
    """What the kept values depend on: the body, TARGET's object and cut, the names the
    body uses (by identity), and the options that change the cut."""

    target: str
    body: str
    axis: str
    by: tuple[str, ...]
    names: tuple[tuple[str, int], ...]
    spans: tuple[str, ...]


@dataclass
class _Kept:
    key: Key
    data: Any  # a weak reference to TARGET's object where it takes one, else the object
    values: dict[str, Any]  # by partition span


_kept: _Kept | None = None


def key(target: str, body: str, axis: str, by: tuple[str, ...], names: Mapping[str, Any],
        parts: Sequence[Partition]) -> Key:
    """The key of one cell's run over ``parts``."""
    return Key(target, body, axis, by, tuple(sorted((n, id(v)) for n, v in names.items())),
               tuple(p.span for p in parts))


def _ref(obj: Any) -> Any:
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def keep(cell: Key, obj: Any, results: Mapping[str, Any]) -> int:
    """Keep the finished partitions' values (``results`` by partition span) that belong
    to the cell's own cut; how many."""
    global _kept
    values = {span: v for span, v in results.items() if span in cell.spans}
    _kept = _Kept(cell, _ref(obj), values) if values else None
    return len(values)


def take(cell: Key, obj: Any) -> dict[str, Any]:
    """The kept values by partition span, if they were kept for this very cell and data
    (then they are forgotten: a run uses them once); else none."""
    global _kept
    kept, _kept = _kept, None
    if kept is None or kept.key != cell or kept.data() is not obj:
        return {}
    return kept.values


def forget() -> None:
    """Drop what is kept (tests; a kernel that wants the memory back)."""
    global _kept
    _kept = None
