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

import copy
import dataclasses
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

from . import api, shipping
from .backends import backend_class
from .cell_code import (
    CellOp,
    EndedInNone,
    assigned_names,
    compile_body,
    names_to_ship,
    remember_sources,
    shared_objects,
    source_files,
)
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
    sources = source_files(names.values())
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
        msg = shipping.unshippable_names(names)
        if msg is None:
            raise exc.with_traceback(None) from None
        raise ShippingError(msg) from None
    except Exception as exc:  # noqa: BLE001 - re-raised, only its traceback trimmed
        _name_cells(exc, getattr(getattr(shell, "compile", None), "_filename_map", {}))
        raise exc.with_traceback(_user_traceback(exc.__traceback__)) from exc.__cause__
    _warn_again(caught, outcome, shell, filename)
    results = outcome.results
    if last is not None and results and all(isinstance(r, EndedInNone) for r in results):
        # A cell ending in print(...) is a statement cell: write TARGET back.
        last, results = None, [r.target_value for r in results]
    else:
        results = [None if isinstance(r, EndedInNone) else r for r in results]
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
    remember_sources({name: [line + "\n" for line in text.splitlines()]})
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
