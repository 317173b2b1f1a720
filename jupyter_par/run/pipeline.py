"""The one run pipeline behind the API, the magic and the panel.

Data flow::

    adapter (api / %%parallel / panel) ──Plan: partitions, op, combine──▶ execute
    execute ──in-kernel fallback? shared objects? progress front end──▶ engine.run
    engine ──results in order, outputs, warnings, failures──▶ execute
    execute ──prints shown, warnings raised again, skips reported──▶ plan.combine ──▶ value

A behaviour that every entry point needs (the fallback, sharing, warnings, output,
cancel, combining) lives here once; the adapters only turn their inputs into a
:class:`Plan` and decide where the value goes.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TextIO

import numpy as np

from ..errors import InlineFallbackWarning, PartialResultWarning, SerialFallbackWarning
from ..planning.plan import Plan
from ..progress import timings
from ..progress.chooser import sinks_for
from ..progress.records import ProgressSink
from ..shown_errors import hidden_frame, show_short
from ..wire import shared_objects as _shared
from ..worker import display as _display
from ..worker import task as _worker
from ..worker.task import CapturedWarning
from . import engine, resume
from . import fallback as cost
from .backend_choice import choose_backend
from .options import Options, with_backend
from .worker_setup import with_worker_init


@dataclass(frozen=True)
class WithNumpyErrors:
    """Run ``op`` under the caller's ``np.errstate``: a worker (process or thread) starts
    from numpy's defaults, so ``np.errstate(all="ignore")`` around a call would not
    reach it, and its warnings would be raised again in the caller."""

    op: Any
    settings: dict[str, str]

    def __call__(self, part: Any) -> Any:
        with np.errstate(**self.settings):
            return self.op(part)


def _with_callers_numpy_errors(op: Any) -> Any:
    settings = np.geterr()
    return op if settings == _NUMPY_DEFAULT_ERRORS else WithNumpyErrors(op, settings)


_NUMPY_DEFAULT_ERRORS = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}


def show_outputs(outcome: engine.RunOutcome, stream: TextIO | None = None) -> None:
    """Print what each partition printed, grouped under one heading per partition.

    What a terminal already showed line by line while the run went is not repeated.
    """
    stream = stream or sys.stdout
    for out in outcome.outputs:
        text, displays = out.output, out.displays
        if out.shown_live:
            text = text[out.shown_live:]
            displays = tuple(dataclasses.replace(d, at=max(0, d.at - out.shown_live))
                             for d in displays)
        if text or displays:
            stream.write(f"[partition {out.partition}, worker {out.worker}]\n")
            _display.show_output(text, displays, stream)


def _caller_location() -> tuple[str, int, dict[str, Any]]:
    """Where a serial call would have raised a library warning: the first frame outside
    jupyter_par and pandas (pandas points its own warnings there too)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and hidden_frame(frame.f_code.co_filename):
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno, frame.f_globals


def _raise_again(captured: Iterable[CapturedWarning | warnings.WarningMessage],
                 where: tuple[str, int] | None) -> None:
    """Raise each distinct warning again in the caller, under the caller's own filters.

    A warning from the user's code keeps its file and line; one from pandas or
    jupyter_par points where the call was made, as pandas' own warnings do, so
    ``simplefilter``, ``pytest.warns`` and ``-W error`` act as in a serial run.
    """
    seen: set[tuple[type[Warning], str]] = set()
    filename, lineno, module_globals = _caller_location()
    if where is not None:
        filename, lineno = where
    for item in captured:
        if isinstance(item, CapturedWarning):
            category, text = item.category, item.message
            origin = (item.filename, item.lineno)
        else:
            category, text = item.category, str(item.message)
            origin = (item.filename, item.lineno)
        if (category, text) in seen:
            continue
        seen.add((category, text))
        if hidden_frame(origin[0]) or not origin[0]:
            registry = module_globals.setdefault("__warningregistry__", {})
            warnings.warn_explicit(text, category, filename, lineno,
                                   module=module_globals.get("__name__"), registry=registry)
        else:
            warnings.warn_explicit(text, category, origin[0], origin[1])


def _report_skipped(outcome: engine.RunOutcome, where: tuple[str, int] | None) -> None:
    """One warning naming each skipped partition and its error (``on_error="skip"``)."""
    if not outcome.failures:
        return
    lines = [f"{f.site.describe()}: {type(f.error).__name__}: {f.error}".splitlines()[0]
             for f in outcome.failures[:5]]
    if len(outcome.failures) > 5:
        lines.append(f"... and {len(outcome.failures) - 5} more")
    filename, lineno, module_globals = _caller_location()
    if where is not None:
        filename, lineno = where
    warnings.warn_explicit(
        f"{len(outcome.failures)} partition(s) failed and were left out of the result "
        f"({outcome.partitions} in all):\n  " + "\n  ".join(lines),
        PartialResultWarning, filename, lineno, module=module_globals.get("__name__"),
        registry={})


def _explain(outcome: engine.RunOutcome, plan: Plan, combine_seconds: float,
             in_kernel: str | None, sinks: Sequence[ProgressSink]) -> None:
    """Remember where the run's time went; show it under the bars of a run with workers."""
    if outcome.timings is None:
        return
    run = timings.record_run(outcome, plan.label, combine_seconds,
                             split_seconds=plan.split_seconds, with_workers=in_kernel is None)
    if in_kernel is None:
        timings.tell(sinks, run.explain)
    else:  # the parts of a run in the kernel project nothing: say why it ran there
        timings.remember(replace(run, explain=in_kernel))


def execute(
    plan: Plan,
    options: Options,
    *,
    shared: Mapping[str, Any] | None = None,
    sinks: Sequence[ProgressSink] | None = None,
    cancel: Any = None,
    fold: Callable[[Any], None] | None = None,
    output: TextIO | None = None,
    where: tuple[str, int] | None = None,
) -> tuple[Any, engine.RunOutcome | None]:
    """Run ``plan``; return the combined value and the run's outcome (``None`` if serial).

    ``shared`` objects are visible to the function as ``jp.shared[name]``; ``fold``
    receives each result in partition order instead of keeping them all; ``output``
    gets what the partitions printed (standard output by default); ``where`` is the
    file and line that warnings raised by pandas or jupyter_par point to (the caller's
    frame by default).
    """
    if plan.serial is not None:
        if plan.serial_reason:
            filename, lineno, module_globals = _caller_location()
            warnings.warn_explicit(f"{plan.label}: {plan.serial_reason}", SerialFallbackWarning,
                                   filename, lineno, module=module_globals.get("__name__"))
        try:
            with _worker.recording_warnings() as caught:
                value = plan.serial()
        finally:
            # pandas' own warnings, pointing at the caller; also those it gave before
            # raising (a deprecated spelling that then fails warns first, serially)
            _raise_again(caught, where)
        timings.remember(timings.RunRecord(
            plan.label, explain=plan.serial_reason or "ran in the kernel as pandas"))
        return value, None
    # Finished partitions of an earlier run are reused (resume=True); this run's are kept.
    keeper = resume.Keeper(plan.parts, plan.label, resume=options.resume, cache=options.cache,
                           output=output)
    parts = keeper.parts
    known = isinstance(parts, Sequence)

    def sample() -> str | None:  # the fallback's verdict, asked only where it may apply
        # The sample runs here, so shared objects are handed to it as they are.
        with _shared.sharing(shared, to_processes=False) as here:
            return cost.too_small_to_move(parts, here(plan.op), options.jobs,
                                          cost.sharing_seconds(shared) if shared else 0.0)

    # A worker_init is setup the user wants in the workers, however small the data.
    choice = choose_backend(options, sample if known and options.worker_init is None else None)
    if choice.detail is not None and choice != options.runs_on:  # the fallback said so
        filename, lineno, module_globals = _caller_location()
        warnings.warn_explicit(choice.detail, InlineFallbackWarning, filename, lineno,
                               module=module_globals.get("__name__"))
    options = with_backend(options, choice)
    backend = choice.cls
    if sinks is None:
        sinks = sinks_for(options.progress, plan.label, options.frontend)
    with _shared.sharing(shared, to_processes=backend.uses_processes,
                         in_band=not backend.shares_host_memory) as wrap:
        try:
            outcome = engine.run(
                parts, wrap(with_worker_init(_with_callers_numpy_errors(plan.op), options,
                                             backend)), options,
                sinks=sinks,
                rows_total=sum(p.size for p in parts) if known else None,
                partitions_total=len(parts) if known else None,
                label=plan.label, unit=plan.unit, cancel=cancel, fold=fold,
                kept=keeper.reused, on_done=keeper.record,
            )
        except BaseException as exc:
            keeper.failed(exc)
            # What the partitions printed before the failure is what one debugs with.
            failed = engine.RunOutcome([], list(getattr(exc, "partition_outputs", [])))
            show_outputs(failed, output)
            if show_short(exc):
                raise exc.with_traceback(None) from None
            raise
    keeper.succeeded()
    show_outputs(outcome, output)
    worker_warnings = [w for out in outcome.outputs for w in out.warnings]
    with warnings.catch_warnings(record=True) as combining:
        # pandas may warn while putting results together (a replayed groupby-apply
        # warns as the serial call does); these join the workers' warnings, once each.
        warnings.simplefilter("always")
        started = time.perf_counter()
        value = plan.combine(outcome.results)
        combined = time.perf_counter() - started
    _explain(outcome, plan, combined, choice.in_kernel, sinks)
    _raise_again([*worker_warnings, *combining], where)
    _report_skipped(outcome, where)
    return value, outcome


def stream(
    plan: Plan,
    options: Options,
    *,
    ordered: bool = True,
    rows_total: int | None = None,
    shared: Mapping[str, Any] | None = None,
    output: TextIO | None = None,
) -> Iterator[Any]:
    """Run ``plan``, yielding each partition's result as it finishes (``jp.imap``).

    No in-kernel fallback (the input is read as it goes, never sampled); what a
    partition prints is shown as it finishes; warnings are raised again once each when
    the loop ends; ``jp.last_run()`` tells where the run went.
    """
    backend = options.chosen.cls
    sinks = sinks_for(options.progress, plan.label, options.frontend)
    warned: dict[tuple[str, str], CapturedWarning] = {}

    def show(out: engine.PartitionOutput) -> None:
        show_outputs(engine.RunOutcome([], [out]), output)
        for w in out.warnings:
            warned.setdefault((w.qualname, w.message), w)

    with _shared.sharing(shared, to_processes=backend.uses_processes,
                         in_band=not backend.shares_host_memory) as wrap:
        op = wrap(with_worker_init(_with_callers_numpy_errors(plan.op), options, backend))
        outcome = yield from engine.stream(
            plan.parts, op, options, ordered=ordered, show=show, sinks=sinks,
            rows_total=rows_total, label=plan.label, unit=plan.unit)
    _explain(outcome, plan, 0.0, options.chosen.in_kernel, sinks)
    _raise_again(warned.values(), None)
    _report_skipped(outcome, None)
