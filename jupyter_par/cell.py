"""Run a ``%%parallel`` cell body once per partition, then write the result back.

Data flow::

    cell body ──compile (cell line numbers)──▶ CellOp(body, names it uses) ──▶ engine
    TARGET ──split (rows / groups / columns / items / chunks)──▶ partitions ──┘
    engine ──results in order──▶ combine ──▶ notebook (only if every partition succeeded)

Spawned and forkserver workers cannot see the notebook's globals, so the names the
body uses travel inside the operation, by value (dill), once per worker per run. The
cell's source travels too, so a worker's traceback shows the cell's own lines. This
module knows nothing of IPython beyond the shell's ``user_ns`` and ``compile`` objects
handed to it; :mod:`jupyter_par.magic` parses the flags and calls :func:`run_cell`.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import dataclasses
import dis
import functools
import inspect
import keyword
import linecache
import os
import sys
import types
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import _pandas_hooks, api, shipping
from . import shared as _shared
from .backends import backend_class
from .config import resolve
from .errors import PartialResultWarning, RemoteTraceback, ShippingError, UsageError
from .partition import (
    Partition,
    combine,
    is_chunked_reader,
    iter_chunks,
    partition_count,
    split_columns,
    split_groups,
    split_rows,
    split_sequence,
)

#: Names IPython puts in every namespace; the body never means them as data to ship.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___",
                            "_ih", "_oh", "_dh", "_i", "_ii", "_iii"})
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True)
class CellRequest:
    """One ``%%parallel`` invocation, flags parsed, defaults not yet decided."""

    target: str
    body: str
    header: str = ""
    by: tuple[str, ...] = ()
    axis: str = "rows"
    out: str | None = None
    share: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


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
    """Objects named by ``--share``, for :mod:`jupyter_par.shared`.

    They reach worker processes once per run through shared memory (numeric data
    mapped read-only, not copied), and a warm worker that already holds the same
    content loads nothing; the body sees each under its own name.
    """
    missing = [n for n in names if n not in namespace]
    if missing:
        msg = f"--share names {', '.join(map(repr, missing))}, not defined in the notebook"
        raise UsageError(msg)
    return {name: namespace[name] for name in names}


def _source_files(objects: Iterable[Any], limit: int = 200) -> dict[str, tuple[str, ...]]:
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


def _remember_sources(files: Mapping[str, Sequence[str]]) -> None:
    for name, lines in files.items():
        if name not in linecache.cache:
            # mtime None: linecache.checkcache never drops the entry.
            linecache.cache[name] = (sum(map(len, lines)), None, list(lines), name)


# -- the operation run per partition --------------------------------------------------
def _size(part: Any) -> int:
    return len(part) if isinstance(part, Sized) else 1


@dataclass(frozen=True)
class CellOp:
    """Run the body with TARGET's name bound to one partition; return its result.

    The result is the value of the body's trailing expression if it has one, else
    the final value of TARGET's name. Every other name the body assigns lives and
    dies in this call's own namespace.
    """

    body: str
    filename: str
    target: str
    names: dict[str, Any]
    sources: dict[str, tuple[str, ...]]
    origin_pid: int
    #: ``--share`` names: they arrive through :mod:`jupyter_par.shared`, not inside the op.
    shared_names: tuple[str, ...] = ()

    def __call__(self, part: Any) -> Any:
        _remember_sources(self.sources)
        statements, last = _compiled(self.body, self.filename)
        namespace = {"__builtins__": builtins, "__name__": "__main__", **self.names,
                     self.target: part}
        namespace.update({name: _shared.current()[name] for name in self.shared_names})
        # Patching pandas is process-wide: do it only in a worker process of our own,
        # never in the kernel (threads, inline), where other code may be using pandas.
        counting = (_pandas_hooks.counting_rows(_size(part)) if os.getpid() != self.origin_pid
                    else contextlib.nullcontext())
        with counting:
            exec(statements, namespace)
            value = eval(last, namespace) if last is not None else None
        if value is not None:
            return value
        if last is not None:
            return _EndedInNone(namespace.get(self.target))
        if self.target not in namespace:
            msg = f"the cell deleted {self.target!r}, so there is no result to return"
            raise NameError(msg)
        return namespace[self.target]


@dataclass(frozen=True)
class _EndedInNone:
    """The body's trailing expression gave None (``print(...)``, ``df.info()``).

    IPython shows nothing for such a cell, and a serial run keeps what the body did to
    TARGET, so TARGET's final value travels back in case every partition ends this way.
    """

    target_value: Any


# -- planning: TARGET into partitions --------------------------------------------------
@dataclass
class _Plan:
    parts: Sequence[Partition] | Iterator[Partition]
    unit: str
    kind: str  # "pandas", "items", "chunks"


def _copied(part: Partition) -> Partition:
    """The partition with its items deep-copied (as they are, if they cannot be copied)."""
    try:
        return dataclasses.replace(part, data=copy.deepcopy(part.data))
    except Exception:  # noqa: BLE001 - a lock or a connection: hand over the original
        return part


def _plan(obj: Any, request: CellRequest, jobs: int, partitions: int | None) -> _Plan:
    target = request.target
    kind_name = type(obj).__name__
    if request.by and request.axis == "columns":
        msg = "--by and --axis columns cannot be combined: choose groups or columns"
        raise UsageError(msg)
    if request.by:
        if not isinstance(obj, pd.DataFrame | pd.Series):
            msg = f"--by needs a DataFrame or Series TARGET, but {target} is a {kind_name}"
            raise UsageError(msg)
        known = set(getattr(obj, "columns", ())) | {n for n in obj.index.names if n}
        missing = [c for c in request.by if c not in known]
        if missing:
            choices = ", ".join(map(str, sorted(known, key=str)[:20])) or "none (unnamed index)"
            msg = (f"--by column(s) {', '.join(map(repr, missing))} not in {target}; the "
                   f"{'columns and ' if isinstance(obj, pd.DataFrame) else ''}index levels "
                   f"it can group by are: {choices}")
            raise UsageError(msg)
        by = request.by[0] if len(request.by) == 1 else list(request.by)
        # dropna=False keeps rows whose key is missing: the body must see every row.
        n = partition_count(len(obj), jobs, partitions)
        return _Plan(split_groups(obj, by, n, dropna=False), "rows", "pandas")
    if request.axis == "columns":
        if not isinstance(obj, pd.DataFrame):
            msg = f"--axis columns needs a DataFrame TARGET, but {target} is a {kind_name}"
            raise UsageError(msg)
        n = partition_count(obj.shape[1], jobs, partitions)
        return _Plan(split_columns(obj, n), "columns", "pandas")
    if isinstance(obj, pd.DataFrame | pd.Series):
        return _Plan(split_rows(obj, partition_count(len(obj), jobs, partitions)), "rows",
                     "pandas")
    if is_chunked_reader(obj):
        return _Plan(iter_chunks(obj), "rows", "chunks")
    if isinstance(obj, str | bytes | Mapping) or not (
        isinstance(obj, Iterable) and isinstance(obj, Sized)
    ):
        msg = (f"TARGET {target} is a {kind_name}; %%parallel runs over a DataFrame, a "
               "Series, a list (or other sized iterable) or a chunked reader "
               "(pd.read_csv(..., chunksize=N))")
        raise UsageError(msg)
    items = obj if isinstance(obj, Sequence) else list(obj)
    return _Plan(split_sequence(items, partition_count(len(items), jobs, partitions)), "items",
                 "items")


def _combine(results: list[Any], request: CellRequest, plan: _Plan, original: Any,
             expression: bool) -> Any:
    """Put partition results together as DESIGN.md section 2 says."""
    if request.axis == "columns" and results and all(
            isinstance(r, pd.DataFrame) for r in results):
        return results[0] if len(results) == 1 else pd.concat(results, axis=1)
    value = combine(results, concat_lists=plan.kind == "items")
    if (request.by and not expression and isinstance(value, pd.DataFrame | pd.Series)
            and _same_rows(value, original)):
        # The body kept TARGET's rows: a serial run would keep them in their own order.
        value = value.reindex(original.index)
    return value


def _same_rows(value: pd.DataFrame | pd.Series, original: Any) -> bool:
    return (len(value) == len(original) and value.index.is_unique
            and original.index.is_unique and bool(value.index.isin(original.index).all()))


# -- errors shown as the user's own ---------------------------------------------------
def _user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback from the first frame outside jupyter_par (the cell's own)."""
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return tb


def _name_cells(exc: BaseException, cell_names: Mapping[str, int]) -> None:
    """Write ``Cell In[n]`` where a worker's traceback names a notebook cell's file."""
    cause = exc.__cause__
    if not isinstance(cause, RemoteTraceback):
        return
    text = cause.traceback_text
    for filename, number in cell_names.items():
        if filename in text:
            text = text.replace(f'File "{filename}"', f"Cell In[{number}]")
    cause.traceback_text = text
    cause.args = (text,)


def _unshippable(names: Mapping[str, Any]) -> str | None:
    for name, value in names.items():
        try:
            shipping.dumps_code(value, what=repr(name))
        except ShippingError as exc:
            # A function fails because of what it uses: name that, it is what to fix.
            inner = shipping.find_unshippable(value) if inspect.isfunction(value) else None
            uses = f", which uses {inner}" if inner else ""
            return f"{name!r} ({type(value).__qualname__}{uses}): {exc.__cause__}"
    return None


# -- the whole cell -------------------------------------------------------------------
def run_cell(shell: Any, request: CellRequest) -> Any:
    """Run the body over TARGET's partitions and write the combined result back.

    Returns the value to show as the cell's output (``Out[n]``), or ``None`` when the
    result was written back to TARGET. Nothing in the notebook changes unless every
    partition succeeded (or was skipped with ``--on-error skip``).
    """
    __tracebackhide__ = True
    namespace = shell.user_ns
    target = request.target
    if not target.isidentifier():
        msg = f"TARGET must be the name of a notebook variable, got {target!r}"
        raise UsageError(msg)
    if target not in namespace:
        msg = f"TARGET {target!r} is not defined in the notebook; run the cell that creates it"
        raise UsageError(msg)
    for name in filter(None, [request.out]):
        if not name.isidentifier() or keyword.iskeyword(name):
            msg = f"--out must be a variable name, got {name!r}"
            raise UsageError(msg)
    options = resolve(**request.options)
    filename = _cache_cell(shell, request)
    statements, last = compile_body(request.body, filename)
    obj = namespace[target]
    plan = _plan(obj, request, options.jobs, options.partitions)
    if plan.kind == "items" and not backend_class(options.backend).uses_processes:
        # Threads and inline hand the body the notebook's own items (dicts, lists):
        # copies keep a failed run from having changed them in place.
        plan.parts = [_copied(part) for part in plan.parts]
    hidden = getattr(shell, "user_ns_hidden", {})
    shared = shared_objects(namespace, request.share)
    names = names_to_ship([statements, last], namespace, hidden, skip=[target, *shared])
    sources = _source_files(names.values())
    sources[filename] = tuple(linecache.cache.get(filename, (0, None, [], ""))[2])
    op = CellOp(request.body, filename, target, names, sources, os.getpid(), tuple(shared))
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Always record the skip report: the default filter would show it once per
            # session, and pointing at api.py, not at this cell.
            warnings.simplefilter("always", PartialResultWarning)
            outcome = api.execute(plan.parts, op, options, label=f"%%parallel {target}",
                                  unit=plan.unit, shared=shared or None)
    except ShippingError as exc:
        culprit = _unshippable(names)
        if culprit is None:
            raise exc.with_traceback(None) from None
        msg = (f"cannot send {culprit} to the workers; the cell uses it. Create it inside "
               "the cell, pass plain data instead, or use --backend threads.")
        raise ShippingError(msg) from None
    except Exception as exc:  # noqa: BLE001 - re-raised, only its traceback trimmed
        _name_cells(exc, getattr(getattr(shell, "compile", None), "_filename_map", {}))
        raise exc.with_traceback(_user_traceback(exc.__traceback__)) from exc.__cause__
    _warn_again(caught, outcome, shell, filename)
    results = outcome.results
    if last is not None and results and all(isinstance(r, _EndedInNone) for r in results):
        # A cell ending in print(...) is a statement cell: write TARGET back.
        last, results = None, [r.target_value for r in results]
    else:
        results = [None if isinstance(r, _EndedInNone) else r for r in results]
    value = _combine(results, request, plan, obj, expression=last is not None)
    if last is not None and all(r is None for r in results):
        value = None
    _note_local_names(request, expression=last is not None)
    if last is not None:
        if request.out:
            namespace[request.out] = value
        return value
    namespace[request.out or target] = value
    return None


def _warn_again(caught: list[warnings.WarningMessage], outcome: Any, shell: Any,
                filename: str) -> None:
    """Re-issue the run's warnings; the skip report names the cell and each error."""
    number = getattr(getattr(shell, "compile", None), "_filename_map", {}).get(filename)
    where = f"Cell In[{number}]" if number is not None else filename
    for w in caught:
        if not issubclass(w.category, PartialResultWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            continue
        skipped = [f"{f.site.describe()}: {type(f.error).__name__}: {f.error}".splitlines()[0]
                   for f in outcome.failures]
        text = (f"--on-error skip: {len(skipped)} of {outcome.partitions} partition(s) failed "
                "and were left out of the result:\n  " + "\n  ".join(skipped))
        warnings.warn_explicit(text, PartialResultWarning, where, 1, registry={})


def _running_cell_number(shell: Any) -> int:
    """The ``In[n]`` of the cell calling the magic.

    IPython 9 counts the cell before running it, so ``execution_count`` is already the
    next cell's number; the calling cell's own code is cached under its real number.
    """
    numbers = getattr(getattr(shell, "compile", None), "_filename_map", {})
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename in numbers:
            return numbers[frame.f_code.co_filename]
        frame = frame.f_back
    return getattr(shell, "execution_count", 0)


def _cache_cell(shell: Any, request: CellRequest) -> str:
    """Register the whole cell in linecache under a name IPython maps to ``In[n]``."""
    text = f"%%parallel {request.header}".rstrip() + "\n" + request.body
    compiler = getattr(shell, "compile", None)
    if compiler is not None and hasattr(compiler, "cache"):
        return compiler.cache(text, _running_cell_number(shell))
    name = f"<parallel-cell-{abs(hash(text))}>"
    _remember_sources({name: [line + "\n" for line in text.splitlines()]})
    return name


def _note_local_names(request: CellRequest, expression: bool) -> None:
    """Say in one line that names the body assigned were not written back."""
    kept = {request.target, request.out}
    others = [n for n in assigned_names(request.body) if n not in kept]
    if not others:
        return
    if request.out or not expression:
        where = f"only the result is written back (to {request.out or request.target})"
    else:
        where = "only the last expression's value is returned"
    print(f"jupyter_par: {', '.join(others)} stayed in the workers; {where}.")
