"""The code of a ``%%parallel`` cell body: compiled with the cell's line numbers, the
notebook names it reads and binds, and :class:`CellOp`, which runs it on one partition.

:class:`CellOp` is what a worker receives: the body's source, the notebook objects it
reads (by value, with dill) and the cell's lines for tracebacks. Only the standard
library and pandas are needed on the worker side; :mod:`jupyter_par.cell.run` does the
planning and the combining in the kernel.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import dis
import functools
import inspect
import linecache
import os
import types
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from ..planning.windows import Windowed
from ..wire import shared_objects as _shared
from . import row_count as _pandas_hooks
from .overlap import own_rows

#: Names IPython puts in every namespace; the body never means them as data to ship.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___",
                            "_ih", "_oh", "_dh", "_i", "_ii", "_iii"})


# -- compiling the body ---------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _compiled(body: str, filename: str) -> tuple[types.CodeType, types.CodeType | None]:
    """The body as statements plus its trailing expression (``None`` if it has none).

    A newline is put in front of the body because the cell's first line is the magic
    line: body line 1 is cell line 2, and tracebacks should say so.
    """
    tree = ast.parse("\n" + body, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    statements = compile(tree, filename, "exec")
    return statements, (compile(last, filename, "eval") if last is not None else None)


def compile_body(body: str, filename: str) -> tuple[types.CodeType, types.CodeType | None]:
    """Compile the body, turning a syntax error into a one-line UsageError with its line."""
    if not body.strip():
        msg = "the %%parallel cell has no body: write the code to run below the magic line"
        raise UsageError(msg)
    try:
        return _compiled(body, filename)
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        shown = f": {text}" if text else ""
        msg = f"the cell body does not compile: {exc.msg} (cell line {exc.lineno}){shown}"
        raise UsageError(msg) from None


def _code_names(code: types.CodeType) -> set[str]:
    """Every global name the code, and the functions it defines, may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


class _TopLevelNames(ast.NodeVisitor):
    """Collect names bound at the body's top level, not inside functions or classes."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.found.append(node.id)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
                          ) -> None:
        self.found.append(node.name)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        return

    def visit_comprehension(self, node: ast.comprehension) -> None:
        return  # comprehension variables are local to the comprehension

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        self.found += [(a.asname or a.name).split(".")[0] for a in node.names]

    visit_ImportFrom = visit_Import


def assigned_names(body: str) -> list[str]:
    """Names the body binds at its top level (assignments, defs, imports, loops)."""
    visitor = _TopLevelNames()
    visitor.visit(ast.parse(body))
    return list(dict.fromkeys(visitor.found))


def changes_name(body: str, name: str) -> bool:
    """Whether the body changes ``name``: assigns to it, to an item or attribute of it
    (``df["x"] = ...``, ``df.loc[...] = ...``), deletes from it, or calls a method of it
    with ``inplace=True``."""

    def rooted(node: ast.AST) -> bool:
        while isinstance(node, ast.Subscript | ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id == name

    for node in ast.walk(ast.parse(body)):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and rooted(node.func.value) and any(
                    k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value
                    for k in node.keywords):
            return True
        flat = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple | ast.List)
                                             else [t])]
        if any(rooted(t) for t in flat):
            return True
    return False


# -- what travels with the body -------------------------------------------------------
def _global_reads(code: types.CodeType) -> set[str]:
    """Global names the code, and the functions it defines, read.

    Unlike ``co_names`` this leaves out attribute names: ``df.values`` must not send
    a notebook variable that happens to be called ``values``.
    """
    names = {i.argval for i in dis.get_instructions(code)
             if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_reads(const)
    return names


def names_to_ship(codes: Iterable[types.CodeType | None], namespace: Mapping[str, Any],
                  hidden: Mapping[str, Any], skip: Iterable[str]) -> dict[str, Any]:
    """The notebook objects the body uses (functions, constants, modules), by name."""
    wanted: set[str] = set()
    for code in codes:
        if code is not None:
            wanted |= _global_reads(code)
    wanted -= set(skip) | _IPYTHON_NAMES
    return {
        name: namespace[name]
        for name in sorted(wanted)
        if name in namespace and not (name in hidden and hidden[name] is namespace[name])
    }


def shared_objects(namespace: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Objects named by ``--share``, for :mod:`jupyter_par.wire.shared_objects`.

    They reach worker processes once per run through shared memory (numeric data
    mapped read-only, not copied), and a warm worker that already holds the same
    content loads nothing; the body sees each under its own name.
    """
    missing = [n for n in names if n not in namespace]
    if missing:
        msg = f"--share names {', '.join(map(repr, missing))}, not defined in the notebook"
        raise UsageError(msg)
    return {name: namespace[name] for name in names}


def source_files(objects: Iterable[Any], limit: int = 200) -> dict[str, tuple[str, ...]]:
    """The cached source of notebook-defined functions reachable from ``objects``.

    Notebook cells are not files: a worker's linecache cannot find them, so their lines
    travel along and tracebacks in workers show code, not just line numbers.
    """
    queue = [o for o in objects if inspect.isfunction(o) or inspect.isclass(o)]
    seen: set[int] = set()
    files: dict[str, tuple[str, ...]] = {}
    while queue and len(seen) < limit:
        obj = queue.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if inspect.isclass(obj):
            queue += [v for v in vars(obj).values() if inspect.isfunction(v)]
            continue
        code = obj.__code__
        name = code.co_filename
        if name not in files and name in linecache.cache and not os.path.exists(name):
            files[name] = tuple(linecache.cache[name][2])
        refs = _code_names(code)
        queue += [v for k, v in obj.__globals__.items()
                  if k in refs and (inspect.isfunction(v) or inspect.isclass(v))]
    return files


def remember_sources(files: Mapping[str, Sequence[str]]) -> None:
    for name, lines in files.items():
        if name not in linecache.cache:
            # mtime None: linecache.checkcache never drops the entry.
            linecache.cache[name] = (sum(map(len, lines)), None, list(lines), name)


# -- the operation run per partition --------------------------------------------------
def _size(part: Any) -> int:
    return len(part) if isinstance(part, Sized) else 1


def _aligned(value: Any, part: Any, axis: str) -> bool:
    """Whether ``value`` is made of its partition's own rows, in their order.

    Such a value (the partition changed, filtered, or expanded row by row) stacks into
    what a serial run gives. An aggregate (new index labels or names, a scalar) or a
    reordering (``sort_values``) does not.
    """
    import pandas as pd

    if axis == "columns" and isinstance(part, pd.DataFrame):
        if isinstance(value, pd.Series):
            return value.index.equals(part.columns)
        return isinstance(value, pd.DataFrame) and \
            unnamed_columns(value.columns, part.columns) is not None
    if isinstance(part, pd.DataFrame | pd.Series):
        if not isinstance(value, pd.DataFrame | pd.Series):
            return False
        index, own = value.index, part.index
        if index.equals(own):
            return True
        if list(index.names) != list(own.names):
            return False
        if not own.is_unique:
            return bool(index.isin(own).all())
        positions = own.get_indexer(index)
        return bool((positions >= 0).all() and (np.diff(positions) >= 0).all())
    return isinstance(value, list | tuple | pd.DataFrame | pd.Series)


def unnamed_columns(got: Any, own: Any) -> list[int] | None:
    """Positions of ``got`` that ``pd.concat(axis=1)`` numbered (a Series that lost its
    name, as ``.cat.codes`` does: 0, 1, ... among the unnamed), where every other column
    keeps the partition's own name in its place; ``None`` if the columns are not the
    partition's own."""
    if len(got) != len(own):
        return None
    unnamed: list[int] = []
    for j, (label, name) in enumerate(zip(got, own, strict=True)):
        if label == name:
            continue
        if isinstance(label, int) and label == len(unnamed):
            unnamed.append(j)
            continue
        return None
    return unnamed


def _keyed_by(value: Any, by: tuple[str, ...]) -> bool:
    """Whether ``value`` is indexed by the ``--by`` keys (an aggregate of whole groups)."""
    names = set(getattr(getattr(value, "index", None), "names", ()) or ())
    return bool(by) and set(by) <= names


@dataclass(frozen=True)
class CellValue:
    """What one partition's run of the body gave, and how it may be combined.

    ``value`` is the trailing expression's value (``None`` without one, or when it gave
    ``None``); ``target`` TARGET's final value where it is to be written back;
    ``aligned`` / ``keyed`` say whether a value is row-aligned with its partition, or
    indexed by the ``--by`` keys, which decides whether stacking the partitions' values
    gives what a serial run gives.
    """

    value: Any
    target: Any
    has_target: bool
    value_aligned: bool
    value_keyed: bool
    target_aligned: bool
    target_keyed: bool


@dataclass(frozen=True)
class CellOp:
    """Run the body with TARGET's name bound to one partition; return a :class:`CellValue`.

    Every name the body assigns other than TARGET lives and dies in this call's own
    namespace.
    """

    body: str
    filename: str
    target: str
    names: dict[str, Any]
    sources: dict[str, tuple[str, ...]]
    origin_pid: int
    #: ``--share`` names: they arrive through :mod:`jupyter_par.wire.shared_objects`,
    #: not inside the op.
    shared_names: tuple[str, ...] = ()
    #: TARGET travels back too: there is no trailing expression, or the body changes it.
    wants_target: bool = True
    axis: str = "rows"
    by: tuple[str, ...] = ()

    def __call__(self, part: Any) -> CellValue:
        windowed = part if isinstance(part, Windowed) else None
        if windowed is not None:
            part = windowed.data  # own rows and the overlap the body's windows need
        remember_sources(self.sources)
        statements, last = _compiled(self.body, self.filename)
        namespace = {"__builtins__": builtins, "__name__": "__main__", **self.names,
                     self.target: part}
        namespace.update({name: _shared.visible_now()[name] for name in self.shared_names})
        # Patching pandas is process-wide: do it only in a worker process of our own,
        # never in the kernel (threads, inline), where other code may be using pandas.
        counting = (_pandas_hooks.counting_rows(_size(part)) if os.getpid() != self.origin_pid
                    else contextlib.nullcontext())
        with counting:
            exec(statements, namespace)
            value = eval(last, namespace) if last is not None else None
        has_target = self.target in namespace
        if self.wants_target and not has_target:
            msg = f"the cell deleted {self.target!r}, so there is no result to return"
            raise NameError(msg)
        target = namespace.get(self.target) if self.wants_target else None
        if windowed is not None:
            # Only the partition's own rows leave: the overlap's were there for the windows.
            value, target = own_rows(value, windowed), own_rows(target, windowed)
            part = part.iloc[windowed.own_start:windowed.own_stop]
        return CellValue(
            value, target, has_target and self.wants_target,
            _aligned(value, part, self.axis), _keyed_by(value, self.by),
            _aligned(target, part, self.axis), _keyed_by(target, self.by),
        )
