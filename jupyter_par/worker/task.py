"""What runs around every partition, in every backend.

:func:`run_task` runs one operation on one partition and turns whatever happens into a
plain record (:class:`TaskDone` or :class:`TaskFailed`), with the partition's printed
output and warnings captured so they can be shown grouped, never interleaved.

Progress travels through a :class:`ProgressSlot`: the worker stores its running row
count there (a shared-memory integer for processes, a list cell for threads) at most a
few dozen times a second; the parent reads it on its own clock. No message per row.
"""

from __future__ import annotations

import io
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import CancelledError
from ..shown_errors import format_worker_traceback
from . import display as _display
from . import output as worker_output

#: How often, at most, a worker publishes its row count.
FLUSH_SECONDS = 0.02


class ProgressSlot(Protocol):
    """Where a worker publishes the rows it has done on its current partition."""

    def publish(self, rows: int) -> None: ...


@dataclass
class TaskContext:
    """The state of the partition a worker is running now (one per worker thread)."""

    slot: ProgressSlot | None = None
    cancel: threading.Event | None = None
    rows: int = 0
    row_label: Any = None
    has_row_label: bool = False
    last_flush: float = 0.0
    #: The backend a parallel call made inside this task runs on.
    nested_backend: str = "inline"

    def add_rows(self, n: int) -> None:
        """Count ``n`` more rows done; publish if enough time passed; honour cancel."""
        self.rows += n
        now = time.monotonic()
        if now - self.last_flush >= FLUSH_SECONDS:
            self.last_flush = now
            if self.slot is not None:
                self.slot.publish(self.rows)
            if self.cancel is not None and self.cancel.is_set():
                msg = "run cancelled"
                raise CancelledError(msg)

    def note_row(self, label: Any) -> None:
        """Remember the row being worked on, so a failure can name it."""
        self.row_label = label
        self.has_row_label = True


_local = threading.local()
#: Set once in a process that exists to run partitions (a process-pool worker), so that
#: threads the user's code starts there count as inside a task too.
_worker_process = False


def in_task() -> bool:
    """Whether the caller runs inside a jupyter_par task (any backend, any depth).

    A jupyter_par call made there runs inline in that worker: the outer run holds the
    workers, and a pool started from inside one (under fork, a copy of the parent's
    pool and its held locks) would hang or multiply processes.
    """
    return _worker_process or getattr(_local, "depth", 0) > 0


def mark_worker_process() -> None:
    """Called once by a process-pool worker at start: everything it runs is in a task."""
    global _worker_process
    _worker_process = True


@contextmanager
def task_scope():
    """Mark the current thread as running a task for the length of a ``with`` block."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def active() -> TaskContext | None:
    """The context of the task this thread is running, or ``None`` outside any task.

    A parallel call made from inside a task (user code calling ``jp.map`` in a worker)
    sees one here and runs in place instead of starting workers of its own.
    """
    return getattr(_local, "ctx", None)


def enter(ctx: TaskContext) -> TaskContext | None:
    """Make ``ctx`` this thread's task context; return the one it replaces."""
    previous = getattr(_local, "ctx", None)
    _local.ctx = ctx
    return previous


def leave(previous: TaskContext | None) -> None:
    """Restore the context :func:`enter` replaced."""
    _local.ctx = previous


def current_context() -> TaskContext:
    """The context of the partition this thread runs (a throwaway one outside a run)."""
    ctx = getattr(_local, "ctx", None)
    # Outside a task, a throwaway: it must not make later calls look nested.
    return ctx if ctx is not None else TaskContext()


def progress(n: int = 1) -> None:
    """Report ``n`` more rows (or steps) done from inside user code running in a worker."""
    current_context().add_rows(n)


@dataclass(frozen=True)
class CapturedWarning:
    """A warning raised in a worker, as plain data, to be raised again in the caller.

    The category travels by name: a warning class defined in the notebook is found
    again in the caller's ``__main__``; one that cannot be found falls back to the
    nearest builtin warning class it derives from.
    """

    module: str
    qualname: str
    builtin: str
    message: str
    filename: str
    lineno: int

    @classmethod
    def of(cls, record: warnings.WarningMessage) -> CapturedWarning:
        """The record of one caught warning."""
        category = record.category
        builtin = next((c.__name__ for c in category.__mro__
                        if c.__module__ == "builtins" and issubclass(c, Warning)), "UserWarning")
        return cls(category.__module__, category.__qualname__, builtin, str(record.message),
                   record.filename, record.lineno)

    @property
    def category(self) -> type[Warning]:
        """The warning class in this process."""
        import builtins
        import importlib

        try:
            found: Any = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                found = getattr(found, part)
            if isinstance(found, type) and issubclass(found, Warning):
                return found
        except (ImportError, AttributeError):
            pass
        return getattr(builtins, self.builtin, UserWarning)

    def __str__(self) -> str:
        return f"{self.qualname}: {self.message}"


@dataclass(frozen=True)
class TaskDone:
    """A partition that succeeded."""

    task_id: int
    value: Any
    output: str = ""
    warnings: tuple[CapturedWarning, ...] = ()
    seconds: float = 0.0
    #: What ``display()`` showed, with its place in ``output`` (see jupyter_par.worker.display).
    displays: tuple[Any, ...] = ()


@dataclass(frozen=True)
class TaskFailed:
    """A partition that raised. ``exception`` is the live object when it could travel."""

    task_id: int
    exception: BaseException | None
    type_name: str
    message: str
    traceback_text: str
    row_label: Any = None
    has_row_label: bool = False
    output: str = ""
    warnings: tuple[CapturedWarning, ...] = field(default=())
    displays: tuple[Any, ...] = ()


class _ThreadRoutedStream(io.TextIOBase):
    """A stand-in for sys.stdout/err that sends each worker thread's writes to its buffer."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.buffers: dict[int, io.StringIO] = {}

    def write(self, text: str) -> int:
        buffer = self.buffers.get(threading.get_ident())
        return (buffer if buffer is not None else self.original).write(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        # ipykernel calls sys.stdout.set_parent() at every cell; without it reaching the
        # kernel's stream, later cells' prints would go to the cell that ran the threads.
        return getattr(self.original, name)


_router_lock = threading.Lock()


def _routed(name: str) -> _ThreadRoutedStream:
    with _router_lock:
        stream = getattr(sys, name)
        if not isinstance(stream, _ThreadRoutedStream):
            stream = _ThreadRoutedStream(stream)
            setattr(sys, name, stream)
        return stream


_warning_sinks: dict[int, list[CapturedWarning]] = {}
_previous_showwarning: Any = None


def _route_warning(message: Any, category: type[Warning], filename: str, lineno: int,
                   file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` while threads of a run record theirs: each thread's
    warnings go to its own list, everyone else's on to where they went before."""
    sink = _warning_sinks.get(threading.get_ident())
    record = warnings.WarningMessage(message, category, filename, lineno, file, line)
    if sink is not None:
        sink.append(CapturedWarning.of(record))
        return
    previous = _previous_showwarning
    if previous is None or previous is getattr(warnings, "_showwarning_orig", None):
        # What warnings itself does when showwarning is its own: the implementation a
        # catch_warnings(record=True) (pytest's, for one) may have put in place.
        show = getattr(warnings, "_showwarnmsg_impl", None)
        if show is not None:
            show(record)
            return
        previous = getattr(warnings, "_showwarning_orig", None) or (lambda *a, **k: None)
    previous(message, category, filename, lineno, file, line)


@contextmanager
def recording_warnings() -> Iterator[list[CapturedWarning]]:
    """Record the warnings this thread raises for the length of a ``with`` block.

    Threads share the process's warning filters, so ``catch_warnings`` (which swaps them
    for everyone) cannot be used in one; the warnings that the caller's filters let
    through are routed by thread instead, to be raised again in the caller once each,
    pointing where a serial call would.
    """
    global _previous_showwarning
    caught: list[CapturedWarning] = []
    ident = threading.get_ident()
    with _router_lock:
        if warnings.showwarning is not _route_warning:
            _previous_showwarning = warnings.showwarning
            warnings.showwarning = _route_warning
        outer = _warning_sinks.get(ident)
        _warning_sinks[ident] = caught
    try:
        yield caught
    finally:
        with _router_lock:
            if outer is None:
                _warning_sinks.pop(ident, None)
            else:
                _warning_sinks[ident] = outer


@contextmanager
def _capture(threaded: bool):
    """Capture prints and warnings of one partition into a buffer."""
    buffer = worker_output.LiveBuffer()
    caught: list[CapturedWarning] = []
    if threaded:
        # Threads share sys.stdout, so writes are routed by thread identity instead.
        streams = [_routed("stdout"), _routed("stderr")]
        ident = threading.get_ident()
        for stream in streams:
            stream.buffers[ident] = buffer
        try:
            with recording_warnings() as recorded:
                try:
                    yield buffer, caught
                finally:
                    caught.extend(dict.fromkeys(recorded))
        finally:
            for stream in streams:
                stream.buffers.pop(ident, None)
        return
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = buffer
    try:
        with warnings.catch_warnings(record=True) as records:
            # Every warning is kept; the caller's own filters decide what is shown.
            warnings.simplefilter("always")
            try:
                yield buffer, caught
            finally:
                # A warning raised on every row is reported once per partition.
                caught.extend(dict.fromkeys(CapturedWarning.of(w) for w in records))
    finally:
        sys.stdout, sys.stderr = saved



def run_task(
    task_id: int,
    op: Any,
    data: Any,
    *,
    slot: ProgressSlot | None = None,
    cancel: threading.Event | None = None,
    threaded: bool = False,
    capture_display: bool = False,
    send_output: worker_output.Send | None = None,
) -> TaskDone | TaskFailed:
    """Run ``op(data)`` for one partition and describe the outcome.

    ``capture_display`` (in worker processes) records what ``display()`` shows, for the
    kernel to show; in the kernel's own threads it reaches the notebook by itself.
    ``send_output(text, records)`` is called a few times a second with what the
    partition printed (and, in a worker process, the log records it made) since the
    last call, and once more before this returns (:mod:`jupyter_par.worker.output`).
    """
    ctx = TaskContext(slot=slot, cancel=cancel, last_flush=time.monotonic())
    previous = enter(ctx)
    if slot is not None:
        slot.publish(0)
    started = time.perf_counter()
    try:
        with task_scope(), _capture(threaded) as (buffer, caught), (
                _display.recording(buffer) if capture_display else nullcontext([])) as shown, \
                worker_output.streaming(buffer, send_output):
            try:
                value = op(data)
            except BaseException as exc:  # noqa: BLE001 - everything is reported, nothing lost
                failure = exc
            else:
                failure = None
        if failure is not None:
            return TaskFailed(
                task_id,
                failure,
                type(failure).__qualname__,
                str(failure),
                format_worker_traceback(failure),
                ctx.row_label,
                ctx.has_row_label,
                buffer.getvalue(),
                tuple(caught),
                tuple(shown),
            )
        return TaskDone(task_id, value, buffer.getvalue(), tuple(caught),
                        time.perf_counter() - started, tuple(shown))
    finally:
        leave(previous)
