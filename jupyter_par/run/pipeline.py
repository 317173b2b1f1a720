"""The one run pipeline behind the API, the magic and the panel.

Data flow::

    adapter (api / %%parallel / panel) ──Plan: partitions, op, combine──▶ execute
    execute ──sample: the first rows in the kernel, kept──▶ verdict (kernel or workers)
    execute ──the rest, shared objects, progress front end──▶ engine.run
    engine ──results in order, outputs, warnings, failures──▶ execute
    execute ──prints shown, warnings raised again, skips reported──▶ plan.combine ──▶ value

A behaviour that every entry point needs (the fallback, sharing, warnings, output,
cancel, combining) lives here once; the adapters only turn their inputs into a
:class:`Plan` and decide where the value goes.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TextIO

import numpy as np

from ..errors import InlineFallbackWarning, PartialResultWarning, SerialFallbackWarning
from ..machine import load
from ..machine.load import Stopwatch
from ..planning.group_live import NOT_FINISHED
from ..planning.plan import Plan
from ..progress import timings
from ..progress.chooser import sinks_for
from ..progress.records import ProgressSink
from ..shown_errors import hidden_frame, show_short
from ..wire import shared_objects as _shared
from ..worker import display as _display
from ..worker import task as _worker
from ..worker.task import CapturedWarning
from . import engine, resume, verdicts
from . import fallback as cost
from .backend_choice import BackendChoice, choose_backend
from .column_sample import ColumnSample
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


def warn_at_caller(text: str, category: type[Warning],
                   where: tuple[str, int] | None = None) -> None:
    """Raise a warning of jupyter_par's or pandas' at the user's line: ``where`` (the
    magic's cell) or the first frame outside both, under the caller's own filters."""
    filename, lineno, module_globals = _caller_location()
    if where is not None:
        filename, lineno = where
    registry = module_globals.setdefault("__warningregistry__", {}) if where is None else None
    warnings.warn_explicit(text, category, filename, lineno,
                           module=module_globals.get("__name__"), registry=registry)


def _raise_again(captured: Iterable[CapturedWarning | warnings.WarningMessage],
                 where: tuple[str, int] | None) -> None:
    """Raise each distinct warning again in the caller, under the caller's own filters.

    A warning from the user's code keeps its file and line; one from pandas or
    jupyter_par points where the call was made, as pandas' own warnings do, so
    ``simplefilter``, ``pytest.warns`` and ``-W error`` act as in a serial run.
    """
    seen: set[tuple[type[Warning], str]] = set()
    for item in captured:
        text = item.message if isinstance(item, CapturedWarning) else str(item.message)
        if (item.category, text) in seen:
            continue
        seen.add((item.category, text))
        if hidden_frame(item.filename) or not item.filename:
            warn_at_caller(text, item.category, where)
        else:
            warnings.warn_explicit(text, item.category, item.filename, item.lineno)


class warnings_at_caller:
    """Warnings that jupyter_par or pandas raise inside the block point at the user's
    line (``where``, or the caller's frame) instead of a line of jupyter_par's own: one
    line at the user's cell or call, with the user's line under it.

    A class, not a generator: the frames between a warning and the user's line must all
    be jupyter_par's own for the caller's frame to be found (contextlib's are not).
    """

    def __init__(self, where: tuple[str, int] | None = None) -> None:
        self.where = where
        self._catching = warnings.catch_warnings(record=True)

    def __enter__(self) -> None:
        self._caught = self._catching.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._catching.__exit__(*exc)
        _raise_again(self._caught, self.where)


def _report_skipped(outcome: engine.RunOutcome, where: tuple[str, int] | None) -> None:
    """One warning naming each skipped partition and its error (``on_error="skip"``)."""
    if not outcome.failures:
        return
    lines = [f"{f.site.describe()}: {type(f.error).__name__}: {f.error}".splitlines()[0]
             for f in outcome.failures[:5]]
    if len(outcome.failures) > 5:
        lines.append(f"... and {len(outcome.failures) - 5} more")
    warn_at_caller(
        f"{len(outcome.failures)} partition(s) failed and were left out of the result "
        f"({outcome.partitions} in all):\n  " + "\n  ".join(lines), PartialResultWarning, where)


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

    The steps: a serial plan runs as pandas; otherwise the in-kernel fallback's sample
    runs the start of the input (kept, never run again) and gives its verdict; the rest
    runs where the verdict says; outputs are shown, results combined, the run's timings
    remembered, and warnings raised again at the caller.
    """
    if plan.serial is not None:
        return _run_serially(plan, where), None
    run = _Steps(plan, options, shared, cancel, fold, output)
    run.choose_backend(where, output)
    if sinks is None:
        sinks = sinks_for(run.options.progress, plan.label, run.options.frontend)
    value, outcome = run.finish_in_kernel(output)
    if outcome is None:
        outcome = _joined(run.head, run.the_rest(sinks, output))
        run.recheck(outcome)
        show_outputs(outcome, output)
        value, combined, combining = _combined(plan.combine, outcome)
        if plan.kernel_finish is not None and run.options.chosen.in_kernel is None:
            cost.note_assembly(plan.kernel_finish.call.method, combined.seconds,
                               plan.kernel_finish.groups)
    else:
        combined, combining = value[1], value[2]
        value = value[0]
    _explain(outcome, plan, combined.wall, run.options.chosen.in_kernel, sinks)
    _raise_again([*(w for out in outcome.outputs for w in out.warnings), *combining], where)
    _report_skipped(outcome, where)
    return value, outcome


def _run_serially(plan: Plan, where: tuple[str, int] | None) -> Any:
    """A plan that runs in the caller as pandas: why (if the user expected workers)."""
    assert plan.serial is not None
    if plan.serial_reason:
        warn_at_caller(f"{plan.label}: {plan.serial_reason}", SerialFallbackWarning, where)
    try:
        with _worker.recording_warnings() as caught:
            value = plan.serial()
    finally:
        # pandas' own warnings, pointing at the caller; also those it gave before
        # raising (a deprecated spelling that then fails warns first, serially)
        _raise_again(caught, where)
    timings.remember(timings.RunRecord(
        plan.label, explain=plan.serial_reason or "ran in the kernel as pandas"))
    return value


class _Steps:
    """One run's state between its steps: where it runs, and what is left to run."""

    def __init__(self, plan: Plan, options: Options, shared: Mapping[str, Any] | None,
                 cancel: Any, fold: Callable[[Any], None] | None,
                 output: TextIO | None) -> None:
        self.plan, self.options, self.shared = plan, options, shared
        self.cancel, self.fold = cancel, fold
        # Finished partitions of an earlier run are reused (resume=True); this run's are
        # kept for a later one (run/resume.py), unless the sample re-cut the partitions.
        self.keeper = resume.Keeper(plan.parts, plan.label, resume=options.resume,
                                    cache=options.cache, output=output)
        self.parts = self.keeper.parts
        self.head: engine.RunOutcome | None = None  # the sample's pieces, run in the kernel
        self.done_before = (0, 0)  # rows and partitions the sample ran
        #: The call, input and workers of a remembered verdict that sent this run to the
        #: workers with no sample (run/verdicts.py), or None.
        self.remembered: tuple[Any, cost.Input, int] | None = None

    def choose_backend(self, where: tuple[str, int] | None, output: TextIO | None) -> None:
        """Where the run goes (:func:`choose_backend`, the one place that decides it),
        asking the fallback's sample where it may apply; a kept-in-kernel run says why."""
        def sample(in_kernel: BackendChoice) -> str | None:
            return self.sample_in_kernel(in_kernel, output)

        # A worker_init is setup the user wants in the workers, however small the data; a
        # resumed run's first partitions may be reused already: no sample for either.
        may_sample = (isinstance(self.parts, Sequence) and self.options.worker_init is None
                      and not self.keeper.reused)
        choice = choose_backend(self.options, sample if may_sample else None)
        if choice.detail is not None and choice != self.options.runs_on:  # the fallback's
            warn_at_caller(choice.detail, InlineFallbackWarning, where)
        self.options = with_backend(self.options, choice)

    def sample_in_kernel(self, in_kernel: BackendChoice, output: TextIO | None) -> str | None:
        """The in-kernel fallback's verdict (``None``: to the workers). It times the
        function on the first rows, in the kernel (``in_kernel``), through the engine, so
        errors, output and warnings are the run's own; the pieces are the run's first
        partitions, never run again (:attr:`head`), and the rest follows. Where rows may
        not be cut anywhere, the one piece is the first partition itself."""
        # The sample runs here, so shared objects are handed to it as they are.
        with _shared.sharing(self.shared, to_processes=False) as here:
            size = cost.measure(self.parts)
            sharing = cost.sharing_seconds(self.shared) if self.shared else 0.0
            if size is None or not cost.worth_a_sample(size, sharing):
                return None
            call = verdicts.key(self.plan.label, self.plan.op, in_kernel.jobs, size.partitions)
            if verdicts.clear_for(call, size):
                # The workers clearly won this call before: no sample again; the run's
                # own compute checks the verdict afterwards (recheck).
                self.remembered = (call, size, in_kernel.jobs)
                return None
            finish = self._kernel_finish()
            op = finish.timed(self.plan.op) if finish is not None else self.plan.op
            kind = ColumnSample if self.plan.columns_cuttable else cost.Sample
            sample = kind(size, here(_with_callers_numpy_errors(op)),
                          self.options.jobs, sharing, whole_first=not self.plan.cuttable,
                          finish=finish)
            self.head = _engine_run(sample.pieces(), sample.clock,
                                    with_backend(self.options, in_kernel), output,
                                    label=self.plan.label, unit=self.plan.unit,
                                    cancel=self.cancel, fold=self.fold,
                                    check_first=self.plan.check_first)
        if sample.count and not self.head.failures:  # a kernel verdict forgets a clear one
            verdicts.note(call, size, in_kernel.jobs, sample.clock.mean_busy, sample.margin)
        assert isinstance(self.parts, Sequence)
        self.parts = sample.rest(self.parts)
        self.done_before = (sample.units_done, sample.count)
        return sample.verdict

    def _kernel_finish(self) -> Any:
        """The plan's kernel finish (what the verdict counts as its assembly), where the
        results are kept; none with a fold."""
        return self.plan.kernel_finish if self.fold is None else None

    def recheck(self, outcome: engine.RunOutcome) -> None:
        """A run a remembered verdict sent to the workers: keep the verdict if the run's
        own compute still clearly beats moving, else forget it (sampled next time)."""
        if self.remembered is None or outcome.timings is None or outcome.failures:
            return
        call, size, jobs = self.remembered
        busy = load.busy_elsewhere()
        margin = cost.margin_seen(size, jobs, outcome.timings.worker_compute, busy,
                                  self._kernel_finish())
        verdicts.note(call, size, jobs, busy, margin)

    def finish_in_kernel(self, output: TextIO | None) -> tuple[Any, engine.RunOutcome | None]:
        """Where the verdict kept the run here and the plan finishes in the kernel as
        pandas' own call (a GroupBy call: the sample's values, the rest called here, no
        assembly): ``((value, time, warnings), the sample's outcome)``; else
        ``(None, None)`` and the rest runs as partitions."""
        finish = self.plan.kernel_finish
        head = self.head
        if (finish is None or head is None or self.fold is not None or head.failures
                or self.options.chosen.in_kernel is None):
            return None, None
        show_outputs(head, output)  # the sample's, before what the rest prints here
        value, watch, combining = _combined(finish.finish, head)
        if value is NOT_FINISHED:  # the rest runs as partitions; the sample's shown
            self.head = replace(head, outputs=[])
            return None, None
        return (value, watch, combining), head

    def the_rest(self, sinks: Sequence[ProgressSink], output: TextIO | None
                 ) -> engine.RunOutcome:
        """Run what the sample left, on the backend chosen."""
        backend, parts = self.options.chosen.cls, self.parts
        known = isinstance(parts, Sequence)
        rows_before, parts_before = self.done_before
        with _shared.sharing(self.shared, to_processes=backend.uses_processes,
                             in_band=not backend.shares_host_memory) as wrap:
            op = with_worker_init(_with_callers_numpy_errors(self.plan.op), self.options, backend)
            keeping = self.head is None  # the sample renumbered the partitions: not kept
            try:
                outcome = _engine_run(
                    parts, wrap(op), self.options, output,
                    sinks=sinks,
                    rows_total=rows_before + sum(p.size for p in parts) if known else None,
                    partitions_total=parts_before + len(parts) if known else None,
                    label=self.plan.label, unit=self.plan.unit, cancel=self.cancel,
                    fold=self.fold, check_first=self.plan.check_first,
                    done_before=self.done_before,
                    kept=self.keeper.reused if keeping else None,
                    on_done=self.keeper.record if keeping else None,
                )
            except BaseException as exc:
                if keeping:
                    self.keeper.failed(exc)
                raise
        if keeping:
            self.keeper.succeeded()
        return outcome


def _engine_run(parts: Any, op: Any, options: Options, output: TextIO | None,
                **kwargs: Any) -> engine.RunOutcome:
    """:func:`engine.run`; on a failure, what the partitions printed before it is shown
    (it is what one debugs with), and a shipping error's message, which names the object
    and what to do, is not buried under the engine's frames and the pickler's error."""
    try:
        return engine.run(parts, op, options, **kwargs)
    except BaseException as exc:
        show_outputs(engine.RunOutcome([], list(getattr(exc, "partition_outputs", []))), output)
        if show_short(exc):
            raise exc.with_traceback(None) from None
        raise


def _joined(head: engine.RunOutcome | None, rest: engine.RunOutcome) -> engine.RunOutcome:
    """The sample's pieces and the rest as one run: results, outputs and skips in order."""
    if head is None:
        return rest
    return replace(rest, results=[*head.results, *rest.results],
                   outputs=[*head.outputs, *rest.outputs],
                   failures=[*head.failures, *rest.failures],
                   partitions=head.partitions + rest.partitions)


def _combined(combine: Callable[[list[Any]], Any], outcome: engine.RunOutcome
              ) -> tuple[Any, Stopwatch, list[warnings.WarningMessage]]:
    """The combined value, the time combining took (``wall``, and ``seconds`` less any
    wait for a CPU), and what pandas warned meanwhile (a replayed groupby-apply warns as
    the serial call does)."""
    with warnings.catch_warnings(record=True) as combining:
        warnings.simplefilter("always")
        watch = Stopwatch().start()
        value = combine(outcome.results)
        watch.stop()
    return value, watch, combining


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
