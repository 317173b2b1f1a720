"""Run a ``%%parallel`` cell body once per partition, then write the result back.

Data flow::

    cell body ──compile (cell line numbers)──▶ CellOp(body, names it uses) ──┐
    TARGET ──split (rows / groups / columns / items / chunks)──▶ Plan ◀───────┘
    Plan ──pipeline.execute──▶ one CellValue per partition ──▶ combine ──▶ notebook

Spawned and forkserver workers cannot see the notebook's globals, so the names the
body uses travel inside the operation, by value (dill), once per worker per run. The
cell's source travels too, so a worker's traceback shows the cell's own lines.

A cell means what it means when run serially, or says why it cannot: values that are
row-aligned with their partitions are stacked in input order; an aggregate is stacked
only when ``--by`` keeps each of its groups whole in one partition; otherwise the
partitions' values go through ``--reduce``, and without it the cell fails in one line.
Nothing in the notebook changes unless every partition succeeded. This module knows
nothing of IPython beyond the shell's ``user_ns``, ``ev`` and ``compile`` objects;
:mod:`jupyter_par.magic` parses the flags and calls :func:`run_cell`.
"""

from __future__ import annotations

import copy
import dataclasses
import keyword
import linecache
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ShippingError, UsageError
from ..planning import groups
from ..planning.partition import (
    Partition,
    combine,
    is_chunked_reader,
    iter_chunks,
    partition_count,
    split_columns,
    split_rows,
    split_sequence,
)
from ..planning.plan import Plan
from ..planning.windows import Windowed
from ..run import pipeline
from ..run.options import resolve
from ..shown_errors import for_cell
from ..wire import shipping
from . import background as in_background
from . import kept as cell_kept
from . import meaning as cell_meaning
from . import overlap
from .code import (
    CellOp,
    CellValue,
    assigned_names,
    changes_name,
    compile_body,
    names_to_ship,
    remember_sources,
    shared_objects,
    source_files,
    unnamed_columns,
)

_REDUCE_EXAMPLE = '--reduce "lambda parts: pd.concat(parts).groupby(level=0).sum()"'


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
    reduce: str | None = None
    #: ``--per-partition``: the body means each partition's own answer (``df.head()``,
    #: ``df.x.mean()``), so the cross-row check is skipped and values are stacked.
    per_partition: bool = False
    #: ``--overlap N``: rows of overlap for windows whose reach the body does not say.
    overlap: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


# -- planning: TARGET into partitions --------------------------------------------------
@dataclass
class _Split:
    parts: Sequence[Partition] | Iterable[Partition]
    unit: str
    kind: str  # "pandas", "items", "chunks"


def _copied(part: Partition) -> Partition:
    """The partition with its items deep-copied (as they are, if they cannot be copied)."""
    try:
        return dataclasses.replace(part, data=copy.deepcopy(part.data))
    except Exception:  # noqa: BLE001 - a lock or a connection: hand over the original
        return part


def _split(obj: Any, request: CellRequest, jobs: int, partitions: int | None,
           reach: tuple[int, int] = (0, 0)) -> _Split:
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
        parts = groups.split(obj, by, n, {"dropna": False, "sort": True}) if len(obj) else \
            "empty"
        if isinstance(parts, str) or not parts:
            parts = split_rows(obj, 1)
        return _Split(parts, "rows", "pandas")
    if request.axis == "columns":
        if not isinstance(obj, pd.DataFrame):
            msg = f"--axis columns needs a DataFrame TARGET, but {target} is a {kind_name}"
            raise UsageError(msg)
        n = partition_count(obj.shape[1], jobs, partitions)
        return _Split(split_columns(obj, n), "columns", "pandas")
    if isinstance(obj, pd.DataFrame | pd.Series) and any(reach):
        # The body's windows need rows around each partition (see cell.overlap).
        cuts = overlap.windowed_parts(len(obj), partition_count(len(obj), jobs, partitions),
                                      *reach)
        return _Split([Partition(i, Windowed(obj.iloc[s:e], a - s, b - s), b - a,
                                 f"rows {a}-{b - 1}")
                       for i, (s, e, a, b) in enumerate(cuts)], "rows", "pandas")
    if isinstance(obj, pd.DataFrame | pd.Series):
        return _Split(split_rows(obj, partition_count(len(obj), jobs, partitions)), "rows",
                      "pandas")
    if any(reach):
        msg = (f"the body's windows need {reach[0] + reach[1]} rows around each partition, "
               f"which a {kind_name} TARGET cannot give (its partitions are not rows of one "
               "frame); compute the windows before the cell, or pass --per-partition")
        raise UsageError(msg)
    if is_chunked_reader(obj):
        return _Split(iter_chunks(obj), "rows", "chunks")
    if isinstance(obj, str | bytes | Mapping) or not (
        isinstance(obj, Iterable) and isinstance(obj, Sized)
    ):
        msg = (f"TARGET {target} is a {kind_name}; %%parallel runs over a DataFrame, a "
               "Series, a list (or other sized iterable) or a chunked reader "
               "(pd.read_csv(..., chunksize=N))")
        raise UsageError(msg)
    items = obj if isinstance(obj, Sequence) else list(obj)
    return _Split(split_sequence(items, partition_count(len(items), jobs, partitions)),
                  "items", "items")


def _kind(obj: Any) -> str:
    """What the body's TARGET name is bound to, for :func:`cell_meaning.check`."""
    if isinstance(obj, pd.DataFrame) or is_chunked_reader(obj):
        return "frame"
    if isinstance(obj, pd.Series):
        return "series"
    return "items"


# -- combining: what a serial run would have given --------------------------------------
def _with_init_function(namespace: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``--init NAME``: the notebook function of that name, as ``worker_init``."""
    name = options.get("worker_init")
    if not isinstance(name, str):
        return options
    init = namespace.get(name)
    if not callable(init):
        found = "is not defined in the notebook" if name not in namespace else \
            f"is a {type(init).__name__}, not a function"
        msg = f"--init {name!r} {found}; give the name of a function that sets up a worker"
        raise UsageError(msg)
    return {**options, "worker_init": init}


def _reducer(shell: Any, text: str | None) -> Callable[[list[Any]], Any] | None:
    """The ``--reduce`` function: ``list``, ``concat``, or a notebook function/expression."""
    if text is None:
        return None
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]  # IPython's argument splitting keeps the quotes of one argument
    if text == "list":
        return list
    if text == "concat":
        return combine
    try:
        func = shell.ev(text) if hasattr(shell, "ev") else eval(text, shell.user_ns)
    except Exception as exc:  # noqa: BLE001 - the user's expression, reported in one line
        msg = f"--reduce {text!r} could not be evaluated: {type(exc).__name__}: {exc}"
        raise UsageError(msg) from None
    if not callable(func):
        msg = (f"--reduce must name a function taking the list of partition values, got "
               f"{type(func).__name__}; e.g. {_REDUCE_EXAMPLE}")
        raise UsageError(msg)
    return func


def _in_input_order(value: Any, parts: Sequence[Partition]) -> Any:
    """Rows stacked in partition order, put back in the input's own row order."""
    if not parts or all(p.rows is None for p in parts) or \
            not isinstance(value, pd.DataFrame | pd.Series):
        return value
    positions = np.concatenate([p.rows for p in parts])
    if len(positions) != len(value):
        return value
    return value.iloc[np.argsort(positions, kind="stable")]


def _stack(values: list[Any], aligned: bool, keyed: bool, request: CellRequest,
           split: _Split, what: str) -> Any:
    """The partitions' values together, as a serial run would have them, or a UsageError."""
    if aligned:
        if request.axis == "columns":
            if all(isinstance(v, pd.DataFrame) for v in values):
                return combine(_with_unnamed_numbered(values, split.parts), axis=1)
            return combine(values)
        stacked = combine(values, concat_lists=split.kind == "items")
        return _in_input_order(stacked, split.parts if isinstance(split.parts, Sequence)
                               else [])
    if keyed or request.per_partition:
        # each group whole in one partition, or each partition's own value asked for
        return combine(values)
    raise UsageError(_not_combinable(what, request))


def _not_combinable(what: str, request: CellRequest) -> str:
    """Why the partitions' values cannot be put together as a serial run would, and the
    flags that fit the cut (rows or columns)."""
    if request.axis == "columns":
        return (f"the cell's {what} does not keep its partition's columns (each partition "
                "is a slice of the columns; a value with other columns, or a scalar, would "
                "not be the serial run's once put side by side): add --reduce FUNC to combine "
                "the list of partition values (e.g. --reduce list, --reduce \"lambda parts: "
                "pd.concat(parts)\"), or --per-partition to keep each partition's own value")
    return (f"the cell's {what} is not row-aligned with its partition (an aggregate such as "
            "groupby(...).sum(), describe() or a scalar), so stacking the partitions' values "
            "would differ from a serial run: add --by KEYS so each group is whole in one "
            f"partition, or --reduce FUNC to combine the list of partition values (e.g. "
            f"{_REDUCE_EXAMPLE}, --reduce list, --reduce concat), or --per-partition")


def _refusal(cell: CellValue, request: CellRequest, reducer: Any, expression: bool) -> None:
    """Raise at the first finished partition when its value could not be combined the
    way :func:`_combine` would (the run stops there; nothing else is computed)."""
    if request.per_partition:
        return
    if cell.has_target and not (cell.target_aligned or cell.target_keyed) and \
            (reducer is None or expression):
        raise UsageError(_not_combinable(f"value of {request.target}", request))
    if expression and cell.value is not None and reducer is None and \
            not (cell.value_aligned or cell.value_keyed):
        raise UsageError(_not_combinable("last expression", request))


def _with_unnamed_numbered(values: list[Any], parts: Any) -> list[Any]:
    """Column partitions' values with the columns ``pd.concat(axis=1)`` numbered (a
    Series without a name) numbered again over the whole frame, as the serial run's
    one ``pd.concat`` numbers them: 0, 1, ... across every partition."""
    if not isinstance(parts, Sequence) or len(parts) != len(values):
        return values
    numbered, counter = [], 0
    for value, part in zip(values, parts, strict=True):
        unnamed = unnamed_columns(value.columns, part.data.columns) or []
        if unnamed:
            labels = list(value.columns)
            for j in unnamed:
                labels[j], counter = counter, counter + 1
            value = value.set_axis(labels, axis=1)
        numbered.append(value)
    return numbered


def _combine(cells: list[CellValue], request: CellRequest, split: _Split,
             reducer: Callable[[list[Any]], Any] | None, expression: bool) -> tuple[Any, Any]:
    """(the value to write back to TARGET or ``_NOTHING``, the cell's output)."""
    written: Any = _NOTHING
    if cells and all(c.has_target for c in cells):
        targets = [c.target for c in cells]
        aligned, keyed = all(c.target_aligned for c in cells), all(c.target_keyed for c in cells)
        if not aligned and not keyed and reducer is not None and not expression:
            written = reducer(targets)  # TARGET became an aggregate: --reduce combines it
        else:
            written = _stack(targets, aligned, keyed, request, split,
                             f"value of {request.target}")
    values = [c.value for c in cells]
    if not expression or all(v is None for v in values):
        return written, None
    if reducer is not None:
        return written, reducer(values)
    aligned, keyed = all(c.value_aligned for c in cells), all(c.value_keyed for c in cells)
    return written, _stack(values, aligned, keyed, request, split, "last expression")


_NOTHING = object()


# -- the whole cell -------------------------------------------------------------------
def run_cell(shell: Any, request: CellRequest) -> Any:
    """Run the body over TARGET's partitions and write the combined result back.

    Returns the value to show as the cell's output (``Out[n]``), or ``None`` when the
    result was written back to TARGET. Nothing in the notebook changes unless every
    partition succeeded (or was skipped with ``--on-error skip``).
    """
    __tracebackhide__ = True
    filename = _cache_cell(shell, request)
    # What jupyter_par warns about (oversubscription, memory) points at the cell.
    with pipeline.warnings_at_caller((filename, 1)):
        return _run_cell(shell, request, filename)


def _run_cell(shell: Any, request: CellRequest, filename: str) -> Any:
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
    options = resolve(**_with_init_function(namespace, request.options))
    reducer = _reducer(shell, request.reduce)
    statements, last = compile_body(request.body, filename)
    obj = namespace[target]
    reach = (0, 0)
    if not request.per_partition and request.axis == "rows":
        reach = cell_meaning.check(request.body, target, kind=_kind(obj), by=request.by,
                                   reduce=request.reduce is not None, overlap=request.overlap)
    split = _split(obj, request, options.jobs, options.partitions, reach)
    if split.kind == "items" and not options.chosen.cls.uses_processes:
        # Threads and inline hand the body the notebook's own items (dicts, lists):
        # copies keep a failed run from having changed them in place.
        split.parts = [_copied(part) for part in split.parts]
    expression = last is not None
    hidden = getattr(shell, "user_ns_hidden", {})
    shared = shared_objects(namespace, request.share)
    names = names_to_ship([statements, last], namespace, hidden, skip=[target, *shared])
    sources = source_files(names.values())
    sources[filename] = tuple(linecache.cache.get(filename, (0, None, [], ""))[2])
    wants_target = not expression or changes_name(request.body, target)
    op = CellOp(request.body, filename, target, names, sources, os.getpid(), tuple(shared),
                wants_target=wants_target, axis=request.axis, by=request.by)
    known = isinstance(split.parts, Sequence)
    cut = cell_kept.key(target, request.body, request.axis, request.by, names,
                        split.parts) if known else None
    reused = cell_kept.take(cut, obj) if cut and options.on_error != "skip" else {}
    to_run = [p for p in split.parts if p.span not in reused] if reused else split.parts

    def combined(cells: list[CellValue]) -> tuple[Any, Any]:
        if reused:  # the refused run's finished values, in their places
            ran = iter(cells)
            cells = [reused[p.span] if p.span in reused else next(ran) for p in split.parts]
        return _combine(cells, request, split, reducer, expression)

    plan = Plan(
        to_run, op, combined, label=f"%%parallel {target}", unit=split.unit,
        # rows stacked whatever their cut: the fallback's sample may run the first rows
        cuttable=(split.kind == "pandas" and request.axis == "rows" and not request.by
                  and reducer is None and not request.per_partition and not reused),
        check_first=lambda cell: _refusal(cell, request, reducer, expression))

    def execute(sinks: Any = None, cancel: Any = None, output: Any = None) -> tuple[Any, Any]:
        __tracebackhide__ = True
        try:
            (written, value), _ = pipeline.execute(plan, options, shared=shared or None,
                                                   where=(filename, 1), sinks=sinks,
                                                   cancel=cancel, output=output)
        except ShippingError as exc:
            msg = shipping.unshippable_names(names)
            if msg is None:
                raise exc.with_traceback(None) from None
            raise ShippingError(msg) from None
        except UsageError as exc:
            finished = getattr(exc, "partition_results", None)
            kept = cell_kept.keep(cut, obj, finished) if cut is not None and finished else 0
            if kept:
                msg = (f"{exc} (the run stopped at its first finished partition; the {kept} "
                       "finished are kept, and running the cell again with a flag reuses them)")
                raise UsageError(msg) from None
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised, only its traceback trimmed
            cells = getattr(getattr(shell, "compile", None), "_filename_map", {})
            raise exc.with_traceback(for_cell(exc, cells)) from exc.__cause__
        return written, value

    if options.background:
        _note_local_names(request, expression=expression)
        return in_background.start(
            namespace, request, plan.label, options, execute, expression=expression,
            nothing=_NOTHING,
            store=lambda written, value: store_result(namespace, request, expression, written,
                                                      value))
    written, value = execute()
    _note_local_names(request, expression=expression)
    return store_result(namespace, request, expression, written, value)


def store_result(namespace: dict[str, Any], request: CellRequest, expression: bool,
                 written: Any, value: Any) -> Any:
    """Write the combined result where the cell says; return the cell's output."""
    target = request.target
    if not expression:
        if written is not _NOTHING:
            namespace[request.out or target] = written
        return None
    if written is not _NOTHING:
        namespace[target] = written  # the body changed TARGET, as a serial run would
    if request.out:
        namespace[request.out] = value
    return value


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
