"""Progress records and the tracker that builds them.

The engine owns a :class:`ProgressTracker`; about ten times a second it turns the
tracker's state into a frozen :class:`RunProgress` and hands it to every sink. Sinks
(text in :mod:`jupyter_par.progress.text`, widgets in :mod:`jupyter_par.widgets`) only
draw what they are given: they never reach back into the run.

What a record shows never moves backwards while a run goes, whatever order the
workers' reports arrive in: counts are the highest seen, and a worker's ``fraction``
is defined so that it can only grow (see :meth:`ProgressTracker.snapshot`). When a run
is interrupted the record keeps the counts it had reached.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

IDLE, BUSY, DONE, FAILED, STOPPED = "idle", "busy", "done", "failed", "stopped"
RUNNING, CANCELLED = "running", "cancelled"


@dataclass(frozen=True)
class WorkerProgress:
    """One worker's state in a run.

    ``rows_done`` counts every row the worker got through, including those of a
    partition that was taken back unfinished (retried elsewhere, or the run stopped).
    ``fraction`` is how far it is through its part of the run, 0 to 1, never
    decreasing; None while the run's total is unknown (a lazily read input).
    """

    worker: str
    state: str
    rows_done: int
    rows_assigned: int
    rows_per_second: float
    partition: int | None = None
    partitions_done: int = 0
    error: str | None = None
    fraction: float | None = None


@dataclass(frozen=True)
class RunProgress:
    """The whole run at one instant."""

    workers: tuple[WorkerProgress, ...]
    rows_done: int
    rows_total: int | None
    partitions_done: int
    partitions_total: int | None
    elapsed: float
    state: str = RUNNING
    label: str = ""
    unit: str = "rows"
    message: str | None = None

    @property
    def fraction(self) -> float | None:
        """Share of the work done, 0 to 1, or None when the total is unknown."""
        if self.rows_total:
            return min(1.0, self.rows_done / self.rows_total)
        if self.rows_total == 0:
            return 1.0 if self.state == DONE else 0.0
        return None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current overall rate, when it can be estimated."""
        fraction = self.fraction
        if self.state != RUNNING or not fraction or fraction >= 1.0:
            return 0.0 if self.state == DONE else None
        return self.elapsed * (1 - fraction) / fraction

    @property
    def status(self) -> str:
        """``"running"``, ``"done"``, or where it stopped: ``"cancelled at 93%"``."""
        if self.state in (CANCELLED, FAILED):
            fraction = self.fraction
            where = f" at {percent_text(fraction)}" if fraction is not None else ""
            return f"{self.state}{where}"
        return self.state


def percent(fraction: float | None) -> float:
    """Percent done, 0 to 100, rounded down to a tenth (an unfinished run never reads
    100); 0 while the total is unknown. The one percent rule of every view."""
    if fraction is None:
        return 0.0
    return math.floor(fraction * 1000 + 1e-6) / 10


def percent_text(fraction: float, *, share: bool = False) -> str:
    """``"93%"``, rounded down as :func:`percent`; a ``share`` of a whole (a breakdown)
    rounds to the nearest, and reads ``"<1%"`` when it is there but rounds to nothing."""
    if not share:
        return f"{math.floor(percent(fraction))}%"
    value = 100 * fraction
    if 0 < value < 0.5:
        return "<1%"
    return f"{math.floor(value + 0.5):.0f}%"


def format_seconds(seconds: float | None) -> str:
    """``"4.2 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``; ``"?"`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressSink(Protocol):
    """Anything that draws progress: called from the thread that drives the run."""

    def update(self, progress: RunProgress) -> None: ...

    def close(self, progress: RunProgress) -> None: ...


@dataclass
class _WorkerState:
    state: str = IDLE
    rows_finished: int = 0
    rows_given_back: int = 0
    rows_assigned: int = 0
    partition: int | None = None
    partition_size: int = 0
    partial: int = 0
    partitions_done: int = 0
    busy_seconds: float = 0.0
    busy_since: float | None = None
    error: str | None = None
    stopped: bool = False
    shown_fraction: float = 0.0


@dataclass
class ProgressTracker:
    """Mutable bookkeeping of a run, owned by the engine's loop thread."""

    rows_total: int | None
    partitions_total: int | None
    label: str = ""
    unit: str = "rows"
    started: float = field(default_factory=time.monotonic)
    workers: dict[str, _WorkerState] = field(default_factory=dict)
    failed: bool = False
    #: Whether the total was known from the start (not grown by a lazily read input).
    total_known: bool = field(init=False)
    _shown_done: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.total_known = self.rows_total is not None

    def add_worker(self, worker: str) -> None:
        """Show a worker from the start of the run, even before it gets work."""
        self.workers.setdefault(worker, _WorkerState())

    def assigned(self, worker: str, partition: int, size: int) -> None:
        """``worker`` started ``partition`` of ``size`` rows."""
        w = self.workers.setdefault(worker, _WorkerState())
        w.state, w.partition, w.partition_size, w.partial = BUSY, partition, size, 0
        w.rows_assigned += size
        w.busy_since = time.monotonic()
        w.stopped = False

    def _end_partition(self, worker: str) -> _WorkerState:
        w = self.workers.setdefault(worker, _WorkerState())
        if w.busy_since is not None:
            w.busy_seconds += time.monotonic() - w.busy_since
        w.busy_since = None
        return w

    def finished(self, worker: str) -> None:
        """``worker`` finished its partition."""
        w = self._end_partition(worker)
        w.rows_finished += w.partition_size
        w.partitions_done += 1
        w.state, w.partition, w.partition_size, w.partial = IDLE, None, 0, 0

    def failed_on(self, worker: str, error: str) -> None:
        """``worker`` failed on its partition; the state stays visible.

        The failed partition stays in ``rows_assigned`` and the rows it got through stay
        counted, so the bar shows how far the worker got instead of looking complete.
        """
        w = self._end_partition(worker)
        w.rows_given_back += w.partial
        w.state, w.error, w.partial = FAILED, error, 0
        self.failed = True

    def released(self, worker: str) -> None:
        """``worker`` gave its partition back unfinished (stopped, retried elsewhere)."""
        w = self._end_partition(worker)
        w.rows_assigned -= w.partition_size
        w.rows_given_back += w.partial
        w.state, w.partition, w.partition_size, w.partial = IDLE, None, 0, 0
        w.stopped = True

    def grow_total(self, rows: int, partitions: int = 1) -> None:
        """A lazily read input yielded another partition."""
        self.rows_total = (self.rows_total or 0) + rows
        self.partitions_total = (self.partitions_total or 0) + partitions

    def snapshot(
        self, partial: dict[str, int] | None = None, *, state: str = RUNNING,
        message: str | None = None,
    ) -> RunProgress:
        """A frozen picture of the run; ``partial`` holds rows done in running partitions.

        Workers missing from ``partial`` keep the count last reported, so a final record
        drawn without the backend (an interrupt) shows where the workers had got to.

        A worker's ``fraction`` is ``done / (done + left)``, where ``left`` is the rest of
        its current partition plus an even share of the rows no worker has been given
        yet. Its rows done only grow and the rows not given out only shrink, so the
        fraction grows too, except for the moment between one worker being handed a
        partition and the others being handed theirs; the highest value shown so far
        covers that moment. With the total unknown there is no fraction.
        """
        now = time.monotonic()
        for name, count in (partial or {}).items():
            w = self.workers.get(name)
            if w is not None and w.state == BUSY:
                w.partial = max(w.partial, min(count, w.partition_size))
        total = self.rows_total if self.total_known or state == DONE else None
        unassigned = None
        if total is not None:
            unassigned = max(0, total - sum(w.rows_assigned for w in self.workers.values()))
        sharing = max(1, len(self.workers))
        running_done = 0
        workers = []
        for name, w in self.workers.items():
            running = w.partial if w.state == BUSY else 0
            running_done += w.rows_finished + running
            done = w.rows_finished + w.rows_given_back + running
            busy = w.busy_seconds + (now - w.busy_since if w.busy_since is not None else 0.0)
            fraction = None
            if unassigned is not None:
                # A stopped run keeps the fractions it had: its work was not done.
                if state in (RUNNING, DONE):
                    left = w.partition_size - running if w.state == BUSY else 0
                    left += unassigned / sharing if state == RUNNING else 0
                    now_at = done / (done + left) if done + left > 0 else 0.0
                    w.shown_fraction = max(w.shown_fraction, now_at)
                fraction = w.shown_fraction
            workers.append(
                WorkerProgress(
                    worker=name,
                    state=self._shown_state(w, state),
                    rows_done=done,
                    rows_assigned=w.rows_assigned,
                    rows_per_second=done / busy if busy > 0 else 0.0,
                    partition=w.partition,
                    partitions_done=w.partitions_done,
                    error=w.error,
                    fraction=fraction,
                )
            )
        self._shown_done = max(self._shown_done, running_done)
        return RunProgress(
            workers=tuple(workers),
            rows_done=self._shown_done,
            rows_total=total,
            partitions_done=sum(w.partitions_done for w in workers),
            partitions_total=(
                self.partitions_total if self.total_known or state == DONE else None
            ),
            elapsed=now - self.started,
            state=state,
            label=self.label,
            unit=self.unit,
            message=message,
        )

    @staticmethod
    def _shown_state(w: _WorkerState, run_state: str) -> str:
        if w.state != IDLE:
            return w.state
        if run_state == DONE and w.partitions_done:
            return DONE
        if run_state != RUNNING and w.stopped:
            return STOPPED  # it was working when the run stopped
        return IDLE


class LiveLog:
    """What the partitions printed while the run goes, as a view shows it: the last lines
    of each of the partitions that printed most recently, grouped per partition.

    The whole output is shown under the cell when the run ends; this is the live tail.
    """

    def __init__(self, partitions: int = 8, lines: int = 20, chars: int = 4000) -> None:
        self.max_partitions, self.max_lines, self.max_chars = partitions, lines, chars
        self._tails: dict[int, tuple[str, str]] = {}  # partition -> (worker, text)
        #: Grows with every change, so that a view redraws only what changed.
        self.version = 0

    def add(self, partition: int, worker: str, text: str) -> None:
        """Append ``text`` printed by ``partition`` running on ``worker``."""
        _, old = self._tails.pop(partition, ("", ""))
        tail = (old + text)[-self.max_chars:]
        lines = tail.split("\n")
        if len(lines) > self.max_lines + 1:
            tail = "\n".join(lines[-(self.max_lines + 1):])
        self._tails[partition] = (worker, tail)  # now the most recent
        while len(self._tails) > self.max_partitions:
            self._tails.pop(next(iter(self._tails)))
        self.version += 1

    def clear(self) -> None:
        if self._tails:
            self._tails.clear()
            self.version += 1

    def entries(self) -> list[dict[str, Any]]:
        """``{"partition", "worker", "text"}`` per partition, in partition order."""
        return [{"partition": p, "worker": w, "text": t}
                for p, (w, t) in sorted(self._tails.items())]

    def __bool__(self) -> bool:
        return bool(self._tails)


class CallbackProgress:
    """Calls ``func(progress)`` on every update and on close: the plainest sink."""

    def __init__(self, func: Any) -> None:
        self.func = func

    def update(self, progress: RunProgress) -> None:
        """Hand the record to the callback."""
        self.func(progress)

    def close(self, progress: RunProgress) -> None:
        """Hand the final record to the callback."""
        self.func(progress)


def interrupted_line(progress: RunProgress) -> str:
    """The one line shown for a run stopped by an interrupt, instead of its traceback."""
    fraction = progress.fraction
    where = ""
    if fraction is not None and progress.rows_total is not None:
        where = (f" at {percent_text(fraction)} ({progress.rows_done:,} of "
                 f"{progress.rows_total:,} {progress.unit})")
    name = f"{progress.label}: " if progress.label else ""
    return f"KeyboardInterrupt: {name}run cancelled{where}; nothing was stored"


def shorten_interrupt(exc: BaseException, progress: RunProgress | None) -> None:
    """Make IPython show ``exc`` (a KeyboardInterrupt that stopped a run) as one line.

    Its traceback would run through the engine's loop, the backend and ``selectors``:
    nothing there is the user's. IPython shows ``_render_traceback_`` instead.
    """
    if progress is None:
        return
    line = interrupted_line(progress)
    # An exception type with __slots__ refuses the attribute: it keeps its traceback.
    with contextlib.suppress(AttributeError):
        exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]


__all__ = [
    "BUSY", "CANCELLED", "DONE", "FAILED", "IDLE", "RUNNING", "STOPPED", "CallbackProgress",
    "ProgressSink", "ProgressTracker", "RunProgress", "WorkerProgress",
    "format_seconds", "interrupted_line", "percent", "percent_text", "shorten_interrupt",
]
