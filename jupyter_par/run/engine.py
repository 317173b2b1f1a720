"""The one orchestrator: run an operation over partitions on a backend.

Data flow::

    caller ──partitions──▶ engine ──Task──▶ backend ──▶ workers (run op on a partition)
       ▲                     │  ◀──Finished / Died──┘        │
       │                     │  ◀──rows done (shared slots)──┘
       └──results in order───┘──RunProgress──▶ sinks (text bars, widgets)

The engine pulls partitions lazily (a chunked reader is never read ahead by more than
the free workers), keeps results in partition order, turns failures into the user's own
exception with the partition named, enforces timeouts, retries and ``on_error``, and
makes sure that when it returns or raises, nothing of the run is left running.
It imports nothing from IPython or ipywidgets.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import backends
from ..errors import (
    CancelledError,
    FailureSite,
    PartitionTimeoutError,
    RemoteTraceback,
    UsageError,
    WorkerDiedError,
    WorkerError,
)
from ..planning.partition import Partition
from ..progress.records import (
    CANCELLED,
    DONE,
    FAILED,
    ProgressSink,
    ProgressTracker,
    RunProgress,
    shorten_interrupt,
)
from ..shown_errors import add_note, from_worker
from ..worker import output as worker_output
from ..worker import task as _worker
from ..worker.state import init_failure
from ..worker.task import TaskDone, TaskFailed
from .backend_choice import BackendChoice
from .options import Options

#: Seconds between two progress updates sent to the sinks (about ten a second).
TICK = 0.1
_run_ids = itertools.count(1)
#: Warm backends serve one run at a time: a panel run in a background thread and a
#: cell's run would otherwise share (or reshape) the same workers. The second waits.
_one_run_at_a_time = threading.RLock()


@dataclass(frozen=True)
class PartitionOutput:
    """What one partition printed and warned, to be shown under its own heading."""

    partition: int
    worker: str
    output: str
    warnings: tuple[_worker.CapturedWarning, ...] = ()
    #: What display() showed in a worker process (jupyter_par.worker.display.Shown records).
    displays: tuple[Any, ...] = ()
    #: How much of ``output`` a progress sink already printed for good while the run
    #: went (a terminal's live lines); the rest is still to be shown.
    shown_live: int = 0


@dataclass(frozen=True)
class PartitionFailure:
    """A partition that failed for good (reported, and skipped with ``on_error='skip'``)."""

    partition: int
    site: FailureSite
    error: BaseException


@dataclass(frozen=True)
class RunTimings:
    """Where a run's time went, as the engine saw it (seconds); the kernel's own work is
    what no number of workers shortens. :mod:`jupyter_par.progress.timings` turns these
    into a breakdown and a projected speedup."""

    #: The call until the first partition is handed out (workers, shipping, partition).
    to_first_dispatch: float
    #: CPU of the driving thread from the first dispatch to the last result (not waiting).
    kernel_between: float
    #: Its per-partition part: handing partitions out and reading their results.
    kernel_dispatch: float
    #: The last result until the run returns.
    tail: float
    #: The whole call.
    wall: float
    #: Seconds the workers spent in the operation, summed.
    worker_compute: float
    #: The whole kernel process's CPU during the run (all its threads).
    kernel_cpu: float


@dataclass
class RunOutcome:
    """Everything a finished run produced: results of the partitions that succeeded, in
    partition order (skipped partitions are in ``failures`` only)."""

    results: list[Any]
    outputs: list[PartitionOutput] = field(default_factory=list)
    failures: list[PartitionFailure] = field(default_factory=list)
    elapsed: float = 0.0
    backend: str = ""
    jobs: int = 0
    partitions: int = 0
    progress: RunProgress | None = None
    timings: RunTimings | None = None


@dataclass
class _Running:
    partition: Partition
    worker: str
    started: float
    attempt: int


class _Run:
    """The state of one run; :meth:`drive` is the loop."""

    def __init__(
        self,
        partitions: Iterable[Partition],
        op: Any,
        options: Options,
        sinks: Sequence[ProgressSink],
        rows_total: int | None,
        partitions_total: int | None,
        label: str,
        unit: str,
        cancel: threading.Event | None,
        fold: Callable[[Any], None] | None = None,
        ordered: bool = True,
        show: Callable[[PartitionOutput], None] | None = None,
        kept: Mapping[int, Any] | None = None,
        on_done: Callable[[int, Any], None] | None = None,
        check_first: Callable[[Any], None] | None = None,
        done_before: tuple[int, int] = (0, 0),
    ) -> None:
        self.source = iter(partitions)
        self.on_done = on_done
        self.check_first = check_first
        self.spans: dict[int, str] = {}  # finished partitions' spans, for partition_results
        self.refused: Exception | None = None  # what check_first raised
        self.fold, self.folded = fold, 0
        #: With a fold: hand results over as they finish rather than in partition order.
        self.unordered = not ordered
        #: Streaming: each partition's output goes here as it finishes, not kept.
        self.show = show
        self.lazy_total = rows_total is None
        self.op, self.options, self.sinks, self.cancel = op, options, list(sinks), cancel
        self.tracker = ProgressTracker(rows_total, partitions_total, label=label, unit=unit)
        self.retry: deque[tuple[Partition, int]] = deque()
        self.running: dict[int, _Running] = {}
        # Results kept from an earlier run (resume): in order and folded like the others.
        self.results: dict[int, Any] = dict(kept or {})
        self.outputs: list[PartitionOutput] = []
        self.failures: list[PartitionFailure] = []
        self.exhausted = False
        self.skipped_seen = 0
        self.count = 0
        self.done_in_kernel(*done_before)
        self.last_tick = 0.0
        self.run_id = next(_run_ids)
        # Critical-path clocks (RunTimings): the call, first dispatch, last result.
        self.t_call, self.cpu_call = time.monotonic(), time.process_time()
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.thread_first = self.thread_last = 0.0  # the driving thread's CPU clock
        self.compute = 0.0
        self.cpu_dispatch = 0.0  # the thread's CPU handing out partitions and reading results
        # Live output: characters of each partition's output given to the sinks so far.
        self.streamed: dict[int, int] = {}
        self.output_sinks = [s for s in self.sinks if callable(getattr(s, "output", None))]
        self.advance_fold()  # kept results that come first are folded at once

    # -- progress -------------------------------------------------------------------
    def done_in_kernel(self, rows: int, partitions: int) -> None:
        """The in-kernel fallback's sample ran the first ``partitions`` (``rows`` rows)
        before this run: they show as done by the kernel, and count in the totals."""
        if not partitions:
            return
        self.tracker.add_worker("kernel")
        for i in range(partitions):
            self.tracker.assigned("kernel", i, rows if i == 0 else 0)
            self.tracker.finished("kernel")
            self.tracker.workers["kernel"].busy_seconds = 0.0

    def publish(self, *, force: bool = False, state: str = "running", message: str | None = None,
                backend: backends.Backend | None = None) -> RunProgress | None:
        now = time.monotonic()
        if not force and (now - self.last_tick < TICK or not self.sinks):
            return None  # nobody draws it: no snapshot between the first and the last
        self.last_tick = now
        partial = backend.rows_done() if backend is not None else {}
        snapshot = self.tracker.snapshot(partial, state=state, message=message)
        for sink in self.sinks:
            if state == "running":
                sink.update(snapshot)
            else:
                sink.close(snapshot)
        return snapshot

    # -- failures -------------------------------------------------------------------
    def site(self, running: _Running, label: Any = None, has_label: bool = False,
             pid: int | None = None) -> FailureSite:
        part = running.partition
        return FailureSite(
            partition=part.index,
            partitions_total=(
                self.tracker.partitions_total if not self.lazy_total or self.exhausted else None
            ),
            rows=part.span or None,
            row_label=label,
            has_row_label=has_label,
            worker=running.worker,
            pid=pid,
        )

    def error_for(self, failure: TaskFailed, running: _Running, in_caller: bool) -> BaseException:
        site = self.site(running, failure.row_label, failure.has_row_label)
        return from_worker(failure.exception, failure.type_name, failure.message,
                           failure.traceback_text, site, in_caller=in_caller)

    def init_error(self, failure: TaskFailed, said: str, in_caller: bool) -> BaseException:
        """The user's own exception from a failing worker_init: it names the init and the
        worker (the note made there), not a partition; retries and skips do not apply."""
        exc = failure.exception
        if exc is None:
            exc = WorkerError(failure.type_name, failure.message)
            add_note(exc, f"jupyter_par: {said}")
        if not in_caller:
            exc.__cause__ = RemoteTraceback(failure.traceback_text)
            exc.__suppress_context__ = True
        return exc

    def settle_failure(self, running: _Running, error: BaseException,
                       site: FailureSite) -> None:
        """Retry, skip or raise, as the options say."""
        part = running.partition
        if running.attempt < self.options.retries:
            self.tracker.released(running.worker)
            self.retry.append((part, running.attempt + 1))
            return
        self.tracker.failed_on(running.worker, f"{type(error).__name__}: {error}")
        if self.options.on_error == "skip":
            self.failures.append(PartitionFailure(part.index, site, error))
            self.advance_fold()
            return
        raise error

    # -- the loop -------------------------------------------------------------------
    def fill(self, backend: backends.Backend) -> None:
        while not self.cancelled() and self.refused is None and backend.idle_workers() > 0:
            if self.retry:
                part, attempt = self.retry.popleft()
            elif self.exhausted:
                return
            elif self.fold is not None and self.count - self.folded >= 2 * backend.jobs:
                return  # results wait for an earlier one: read no further until it comes
            else:
                try:
                    part = next(self.source)
                except StopIteration:
                    self.exhausted = True
                    return
                except Exception as exc:
                    # The user's own reader or generator broke, not a worker: say so.
                    add_note(exc, f"jupyter_par: raised by the input itself, after "
                                  f"{self.count} partition(s) were read; no result was stored")
                    raise
                attempt = 0
                self.count += 1
                if self.lazy_total:
                    self.tracker.grow_total(part.size)
            self.streamed.pop(part.index, None)  # a retry's output starts afresh
            cpu = time.thread_time()
            # Reading data may cut the partition now (groups): handing-out work too.
            task = backends.Task(part.index, self.run_id, self.op, part.data)
            worker = backend.submit(task)
            if self.t_first is None:
                self.t_first, self.thread_first = time.monotonic(), time.thread_time()
            else:
                self.cpu_dispatch += time.thread_time() - cpu
            self.running[part.index] = _Running(part, worker, time.monotonic(), attempt)
            self.tracker.assigned(worker, part.index, part.size)

    def advance_fold(self) -> None:
        """With a fold, hand results over in partition order and forget them."""
        if self.fold is None:
            return
        if self.unordered:  # as they finish; ``folded`` counts the partitions settled
            for index in list(self.results):
                self.fold(self.results.pop(index))
                self.folded += 1
            self.folded += len(self.failures) - self.skipped_seen
            self.skipped_seen = len(self.failures)
            return
        skipped = {f.partition for f in self.failures}
        while self.folded in self.results or self.folded in skipped:
            if self.folded in self.results:
                self.fold(self.results.pop(self.folded))
            self.folded += 1

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    # -- live output ----------------------------------------------------------------
    def live_output(self, event: backends.Output) -> None:
        """A running partition's new output: log records go to the kernel's loggers,
        text to the sinks that show it while the run goes."""
        if event.records:
            worker_output.reemit(event.records, event.task_id, event.worker)
        if event.text and event.task_id in self.running:
            self.show_live(event.task_id, event.worker, event.text)

    def show_live(self, partition: int, worker: str, text: str) -> None:
        self.streamed[partition] = self.streamed.get(partition, 0) + len(text)
        for sink in self.output_sinks:
            sink.output(partition, worker, text)

    def shown_live(self, partition: int) -> int:
        """How much of a partition's output a sink printed for good (a terminal's lines)."""
        if any(getattr(sink, "keeps_output", False) for sink in self.output_sinks):
            return self.streamed.get(partition, 0)
        return 0

    def handle(self, backend: backends.Backend, event: backends.Event) -> None:
        if event.run_id is not None and event.run_id != self.run_id:
            return  # a task of an earlier run that ended late: its result is not ours
        if isinstance(event, backends.Output):
            self.live_output(event)
            return
        self.t_last = time.monotonic()
        if isinstance(event, backends.Finished):
            outcome = event.outcome
            running = self.running.pop(outcome.task_id, None)
            if running is None:  # a straggler from a stopped run
                return
            if self.output_sinks and len(outcome.output) > self.streamed.get(outcome.task_id, 0):
                # What the last sends did not carry (a backend that sends none, or a
                # piece still on its way): the live view gets the whole of it.
                self.show_live(outcome.task_id, event.worker,
                               outcome.output[self.streamed.get(outcome.task_id, 0):])
            if outcome.output or outcome.warnings or outcome.displays:
                out = PartitionOutput(outcome.task_id, event.worker, outcome.output,
                                      outcome.warnings, outcome.displays,
                                      self.shown_live(outcome.task_id))
                if self.show is not None:
                    self.show(out)
                else:
                    self.outputs.append(out)
            if isinstance(outcome, TaskDone):
                self.spans[outcome.task_id] = running.partition.span
                if self.check_first is not None:
                    check, self.check_first = self.check_first, None
                    try:
                        check(outcome.value)
                    except Exception as exc:  # noqa: BLE001 - raised once the running ones end
                        # A refusal: nothing more is handed out; the partitions already
                        # running finish (killing them would leave half their rows run),
                        # and their results are kept with the refusal.
                        self.refused = exc
                self.compute += outcome.seconds
                self.results[outcome.task_id] = outcome.value
                if self.on_done is not None:
                    self.on_done(outcome.task_id, outcome.value)
                self.advance_fold()
                self.tracker.finished(event.worker)
                return
            if self.refused is not None:
                return  # the run is refused already: this failure changes nothing
            said = init_failure(outcome.exception, outcome.traceback_text)
            if said is not None:  # no partition is to blame, and none would fare better
                self.tracker.failed_on(running.worker, said)
                raise self.init_error(outcome, said, backend.in_caller)
            error = self.error_for(outcome, running, backend.in_caller)
            site = self.site(running, outcome.row_label, outcome.has_row_label)
            self.settle_failure(running, error, site)
            return
        running = self.running.pop(event.task_id, None)
        if running is None or self.refused is not None:
            return
        site = self.site(running, pid=event.pid)
        total = self.tracker.partitions_total if not self.lazy_total else None
        more = f"try partitions={4 * total}" if total else "use more partitions"
        # A local pool starts a new worker in its place; a cluster's own nanny decides.
        replaced = " and the worker replaced" if backend.replaces_dead_workers else ""
        error = WorkerDiedError(
            f"worker {event.worker}{f' (pid {event.pid})' if event.pid else ''} {event.reason} "
            f"while running {site.describe(with_worker=False)}; the run was stopped{replaced}. "
            f"If memory ran out, {more} or fewer jobs."
        )
        self.settle_failure(running, error, site)

    def check_timeouts(self, backend: backends.Backend) -> None:
        limit = self.options.timeout
        if limit is None:
            return
        now = time.monotonic()
        for task_id, running in list(self.running.items()):
            if now - running.started <= limit:
                continue
            del self.running[task_id]
            backend.stop_worker(running.worker)
            site = self.site(running)
            still = "" if backend.can_stop_running else " (a thread cannot be stopped: it "\
                "keeps running in the background, its result discarded)"
            error = PartitionTimeoutError(
                f"{site.describe()} ran longer than timeout={limit:g} s and was stopped{still}. "
                "Allow more time (timeout=) or cut smaller partitions (partitions=)."
            )
            self.settle_failure(running, error, site)

    def drive(self, backend: backends.Backend) -> RunOutcome:
        steps = self.steps(backend)
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value

    def steps(self, backend: backends.Backend) -> Iterator[None]:
        """The run loop, pausing (a ``yield``) after each round of events when streaming,
        so that a consumer takes the results before more partitions are read; closing
        it stops the run's workers. Its return value is the :class:`RunOutcome`."""
        started = time.monotonic()
        for worker in backend.workers:
            self.tracker.add_worker(worker)
        backend.begin_run(self.run_id, self.op, self.cancel)
        self.publish(force=True, backend=backend)
        try:
            while True:
                if self.cancelled():
                    msg = "the run was cancelled; no result was stored"
                    raise CancelledError(msg)
                self.fill(backend)
                if self.refused is not None and not self.running:
                    raise self.refused
                if self.exhausted and not self.running and not self.retry:
                    self.thread_last = time.thread_time()  # just after the last result
                    break
                cpu = time.thread_time()
                events = backend.poll(0.05 if not backend.in_caller else 0)
                for event in events:
                    self.handle(backend, event)
                if events:  # reading results is per-partition work; idle polls are not
                    self.cpu_dispatch += time.thread_time() - cpu
                self.check_timeouts(backend)
                self.publish(backend=backend)
                if self.show is not None:
                    # Hand out more work first, so workers run while the consumer is busy.
                    self.fill(backend)
                    yield
        except BaseException as exc:
            # What finished partitions printed helps most when a run fails: keep it.
            with contextlib.suppress(AttributeError, TypeError):
                exc.partition_outputs = sorted(self.outputs, key=lambda o: o.partition)
                # Finished partitions' results, by partition: a caller may keep them
                # (a refused cell's values, reused when it runs again with the flag).
                exc.partition_results = {self.spans[i]: v for i, v in self.results.items()
                                         if i in self.spans}
            # Always: an interrupt inside submit() leaves a worker busy that ``running``
            # does not list yet.
            backend.stop_running()
            for running in self.running.values():
                self.tracker.released(running.worker)
            state = CANCELLED if isinstance(exc, KeyboardInterrupt | CancelledError
                                            | GeneratorExit) else FAILED
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if isinstance(exc, GeneratorExit):
                done = self.count - len(self.running) - len(self.retry)
                message = f"stopped early: the loop over the results ended ({done} done)"
            final = self.publish(force=True, state=state, message=message)
            if isinstance(exc, KeyboardInterrupt):
                shorten_interrupt(exc, final)  # one line, not frames of the loop's internals
            raise
        finally:
            backend.end_run(self.run_id)
        final = self.publish(force=True, state=DONE, backend=backend)
        timings = self.timings(backend)
        return RunOutcome(
            results=[self.results[i] for i in sorted(self.results)],
            outputs=sorted(self.outputs, key=lambda o: o.partition),
            failures=self.failures,
            elapsed=time.monotonic() - started,
            backend=backend.name,
            jobs=backend.jobs,
            partitions=self.count,
            progress=final,
            timings=timings,
        )

    def timings(self, backend: backends.Backend) -> RunTimings:
        now = time.monotonic()
        first = self.t_first if self.t_first is not None else now
        last = self.t_last if self.t_last is not None else first
        between = (max(0.0, self.thread_last - self.thread_first)
                   if self.t_last is not None else 0.0)
        dispatch = self.cpu_dispatch
        if backend.in_caller:  # the partitions ran in this very thread
            between = max(0.0, between - self.compute)
            dispatch = max(0.0, dispatch - self.compute)
        return RunTimings(
            to_first_dispatch=first - self.t_call, kernel_between=between,
            kernel_dispatch=min(dispatch, between) if self.t_last is not None else dispatch,
            tail=now - max(last, first), wall=now - self.t_call,
            worker_compute=self.compute, kernel_cpu=time.process_time() - self.cpu_call,
        )


def run(
    partitions: Iterable[Partition],
    op: Any,
    options: Options,
    *,
    sinks: Sequence[ProgressSink] = (),
    rows_total: int | None = None,
    partitions_total: int | None = None,
    label: str = "",
    unit: str = "rows",
    cancel: threading.Event | None = None,
    fold: Callable[[Any], None] | None = None,
    kept: Mapping[int, Any] | None = None,
    on_done: Callable[[int, Any], None] | None = None,
    check_first: Callable[[Any], None] | None = None,
    done_before: tuple[int, int] = (0, 0),
) -> RunOutcome:
    """Run ``op`` on every partition on the backend chosen for ``options`` (``runs_on``).

    Parameters
    ----------
    partitions
        Partitions in input order; may be a lazy iterator (it is read as workers free up).
    op
        A picklable callable applied to each partition's data.
    options
        Resolved options (:func:`jupyter_par.run.options.resolve`).
    sinks
        Progress renderers, updated about ten times a second and closed at the end.
    rows_total, partitions_total
        Totals when known in advance (``None`` for lazy inputs).
    cancel
        Set it from another thread to stop the run (the panel's Cancel button).
    fold
        Called with each result in partition order as soon as all earlier ones came;
        results are then not kept (``RunOutcome.results`` is empty), and no more than
        twice ``jobs`` partitions are read ahead of the oldest unfolded one.
    kept, on_done
        Results by partition index that an earlier run finished (``partitions`` then
        holds only the others), and a callback given each partition's result as it
        finishes: :mod:`jupyter_par.run.resume` keeps them for a run that fails.
    check_first
        Called with the first result that comes back; what it raises stops the run:
        nothing more is handed out, the partitions already running finish, and the
        exception is raised carrying ``partition_results`` (the finished ones' results
        by their partitions' spans).
    done_before
        Rows and partitions run before this run (the fallback's sample in the kernel):
        counted in ``rows_total`` and ``partitions_total``, shown as the kernel's.

    Returns
    -------
    RunOutcome
        Results in partition order, captured output, skipped failures, timings.
    """
    state = _Run(partitions, op, options, sinks, rows_total, partitions_total, label, unit, cancel,
                 fold, kept=kept, on_done=on_done, check_first=check_first,
                 done_before=done_before)
    choice = options.chosen
    if choice.nested:
        # In place in a task: the outer run holds the warm workers and the run lock.
        return state.drive(choice.cls(1))
    with _one_run_at_a_time:
        _refuse_while_streaming(options.chosen)
        return state.drive(start_backend(options))


def start_backend(options: Options) -> backends.Backend:
    """The warm backend ``options`` run on, started (or reshaped) for them."""
    choice = options.chosen
    return backends.acquire(choice.name, options.jobs, **choice.cls.options_from(options))


#: Backends serving a stream (jp.imap) that is still being consumed.
_streaming: set[str] = set()


def _refuse_while_streaming(choice: BackendChoice) -> None:
    """A warm backend serves one run at a time; a stream holds it until its loop ends."""
    name = choice.name
    if name in _streaming and not choice.cls.in_caller:
        msg = (f"a jp.imap loop still holds the {name!r} workers: a parallel call made inside "
               "the loop (or a second jp.imap over the same backend) must wait until the loop "
               "ends or breaks; use another backend for it (backend='threads' or 'inline')")
        raise UsageError(msg)


def stream(
    partitions: Iterable[Partition],
    op: Any,
    options: Options,
    *,
    ordered: bool = True,
    show: Callable[[PartitionOutput], None],
    sinks: Sequence[ProgressSink] = (),
    rows_total: int | None = None,
    partitions_total: int | None = None,
    label: str = "",
    unit: str = "rows",
) -> Iterator[Any]:
    """Like :func:`run`, yielding each partition's result as workers finish it.

    With ``ordered`` results come in partition order (no more than twice ``jobs``
    partitions read ahead of the oldest one not yet yielded), otherwise as they finish.
    Partitions are read only while the consumer keeps asking, so an endless input is
    fine; closing the generator (``break`` out of the loop) stops the busy workers at
    once. ``show`` receives each partition's output and warnings as it finishes. The
    generator's return value is the :class:`RunOutcome` (results not kept). Until it
    ends or is closed it holds the warm backend (and the one-run-at-a-time lock of the
    thread that first advanced it): a generator left half-read keeps other runs waiting.
    """
    ready: deque[Any] = deque()
    state = _Run(partitions, op, options, sinks, rows_total, partitions_total, label, unit, None,
                 ready.append, ordered=ordered, show=show)

    def deliver(steps: Iterator[None]) -> Iterator[Any]:
        try:
            while True:
                try:
                    next(steps)
                except StopIteration as stop:
                    yield from ready
                    return stop.value
                while ready:
                    yield ready.popleft()
        finally:
            steps.close()  # the consumer stopped: stop the workers, close the bars

    choice = options.chosen
    if choice.nested:  # in place in a task, as run() does
        return (yield from deliver(state.steps(choice.cls(1))))
    with _one_run_at_a_time:
        _refuse_while_streaming(options.chosen)
        backend = start_backend(options)
        _streaming.add(options.chosen.name)
        try:
            return (yield from deliver(state.steps(backend)))
        finally:
            _streaming.discard(options.chosen.name)
