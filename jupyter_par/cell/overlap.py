"""Windowed cell bodies: how many rows around a partition a body's windows reach.

``df["r"] = df["b"].rolling(50).apply(f)`` needs, for a partition's first row, the 49
rows before it; ``shift(k)``, ``diff(k)`` and ``pct_change(k)`` need ``k`` rows before
(after, for negative ``k``). With literal sizes on TARGET's own rows, the cross-row check
(:mod:`.meaning`) adds up these reaches instead of refusing them; the partition then
runs with that many rows of overlap around it and only its own rows are kept::

    check: rolling(50) + shift(2) on TARGET's columns ──▶ 51 rows before, 0 after
    split: partition [a, b) travels as rows [a - 51, b) (Windowed)
    worker: the body runs on all of them ──▶ value and TARGET trimmed to rows [a, b)

Adding the reaches of every window in the body bounds any chain of them
(``df.b.shift(1).rolling(3)``). What the syntax cannot bound (a time window, a size in a
variable, a window inside a loop or function, TARGET's rows filtered first) is covered
by ``--overlap N``, else refused. ``expanding()`` and cumulative methods reach every row
before a partition, so they stay refused: the body would run again over all earlier rows.
"""

from __future__ import annotations

import ast
import itertools
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..planning.windows import Windowed

#: Methods whose reach in rows is bounded by a literal argument.
BOUNDED = frozenset({"rolling", "shift", "diff", "pct_change"})
_PANDAS_MAJOR = int(pd.__version__.split(".")[0])
#: Keywords that do not change how far a window reaches, per method.
_HARMLESS = {
    "rolling": {"window", "min_periods", "center", "win_type", "closed", "method", "on"},
    "shift": {"periods", "fill_value"},
    "diff": {"periods"},
    "pct_change": {"periods", "fill_method", "limit"},
}


def _int(node: ast.AST | None) -> int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _argument(call: ast.Call, name: str) -> tuple[bool, ast.AST | None]:
    """(given, node) for the first positional argument or the keyword ``name``."""
    if call.args:
        return True, call.args[0]
    for keyword in call.keywords:
        if keyword.arg == name:
            return True, keyword.value
    return False, None


def literal_reach(call: ast.Call, name: str) -> tuple[int, int] | None:
    """Rows before and after each row that ``call`` (a ``BOUNDED`` method) reads, or
    ``None`` where the syntax does not say."""
    if len(call.args) > 1 or any(k.arg is None or k.arg not in _HARMLESS[name]
                                 for k in call.keywords):
        return None
    keywords = {k.arg: k.value for k in call.keywords}
    if name == "rolling":
        given, node = _argument(call, "window")
        size = _int(node) if given else None
        if size is None or size < 0:
            return None
        center = keywords.get("center")
        if center is not None and not isinstance(center, ast.Constant):
            return None
        ahead = size // 2 + 1 if center is not None and center.value else 0
        return max(size, 1), ahead  # rolling(0, closed="both") still reads one row back
    given, node = _argument(call, "periods")
    periods = _int(node) if given else 1
    if periods is None:
        return None
    if name == "pct_change" and _PANDAS_MAJOR < 3:
        method = keywords.get("fill_method")
        # pandas 2 fills missing values forward first (fill_method="pad"): unbounded.
        if not (isinstance(method, ast.Constant) and method.value is None):
            return None
    return (periods, 0) if periods >= 0 else (0, -periods)


def may_look_ahead(call: ast.Call, name: str) -> bool:
    """Whether a window whose reach is not known might read rows after its own."""
    if name == "rolling":
        return any(k.arg == "center" for k in call.keywords)
    given, node = _argument(call, "periods")
    periods = _int(node) if given else 1
    return periods is None or periods < 0


def plain_rows(node: ast.AST, target: str) -> bool:
    """Whether ``node`` is TARGET's rows as they are: TARGET, its columns
    (``df.b``, ``df["b"]``, ``df[["a", "b"]]``), or bounded windows of them."""
    while True:
        if isinstance(node, ast.Name):
            return node.id == target
        if isinstance(node, ast.Attribute):
            if node.attr in ("loc", "iloc", "at", "iat", "str", "dt", "cat", "T"):
                return False
            node = node.value
        elif isinstance(node, ast.Subscript):
            key = node.slice
            names = key.elts if isinstance(key, ast.List) else [key]
            if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in names):
                return False
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in BOUNDED:
            node = node.func.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(
                node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Attribute) \
                and node.func.value.func.attr == "rolling":
            node = node.func.value  # df.b.rolling(3).mean()
        else:
            return False


def windowed_parts(n_rows: int, n_parts: int, before: int, after: int
                   ) -> list[tuple[int, int, int, int]]:
    """``(start, stop, own_start, own_stop)`` of each partition: its own rows
    ``[own_start, own_stop)`` and the overlap around them."""
    edges = np.unique(np.linspace(0, n_rows, n_parts + 1).round().astype(int))
    return [(max(0, int(a) - before), min(n_rows, int(b) + after), int(a), int(b))
            for a, b in itertools.pairwise(edges) if b > a]


def own_rows(value: Any, part: Windowed) -> Any:
    """``value`` without the overlap's rows: only the rows of the partition's own range.

    A value that is not made of the partition's rows (an aggregate, a scalar) is left
    as it is; the cell's alignment check then decides about it.
    """
    if not isinstance(value, pd.DataFrame | pd.Series):
        return value
    index, a, b = part.data.index, part.own_start, part.own_stop
    if value.index.equals(index):
        return value.iloc[a:b]
    if not index.is_unique:
        msg = ("the body changed which rows TARGET holds, and its index has duplicate "
               "labels, so the overlap rows a window needed cannot be told from the "
               "partition's own: reset_index() before the cell, or pass --per-partition")
        raise UsageError(msg)
    positions = index.get_indexer(value.index)
    if (positions < 0).any():
        return value  # new labels: not the partition's rows (the alignment check says so)
    return value.iloc[np.flatnonzero((positions >= a) & (positions < b))]
