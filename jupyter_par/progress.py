"""Progress records, the tracker that builds them, and the text renderer.

The engine owns a :class:`ProgressTracker`; about ten times a second it turns the
tracker's state into a frozen :class:`RunProgress` and hands it to every sink. Sinks
(tqdm text bars here, widgets in :mod:`jupyter_par.widgets`) only draw what they are
given: they never reach back into the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

IDLE, BUSY, DONE, FAILED = "idle", "busy", "done", "failed"
RUNNING, CANCELLED = "running", "cancelled"


@dataclass(frozen=True)
class WorkerProgress:
    """One worker's state in a run."""

    worker: str
    state: str
    rows_done: int
    rows_assigned: int
    rows_per_second: float
    partition: int | None = None
    partitions_done: int = 0
    error: str | None = None


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


class ProgressSink(Protocol):
    """Anything that draws progress: called from the thread that drives the run."""

    def update(self, progress: RunProgress) -> None: ...

    def close(self, progress: RunProgress) -> None: ...


@dataclass
class _WorkerState:
    state: str = IDLE
    rows_finished: int = 0
    rows_assigned: int = 0
    partition: int | None = None
    partition_size: int = 0
    partitions_done: int = 0
    busy_seconds: float = 0.0
    busy_since: float | None = None
    error: str | None = None


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

    def add_worker(self, worker: str) -> None:
        """Show a worker from the start of the run, even before it gets work."""
        self.workers.setdefault(worker, _WorkerState())

    def assigned(self, worker: str, partition: int, size: int) -> None:
        """``worker`` started ``partition`` of ``size`` rows."""
        w = self.workers.setdefault(worker, _WorkerState())
        w.state, w.partition, w.partition_size = BUSY, partition, size
        w.rows_assigned += size
        w.busy_since = time.monotonic()

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
        w.state, w.partition, w.partition_size = IDLE, None, 0

    def failed_on(self, worker: str, error: str) -> None:
        """``worker`` failed on its partition; the state stays visible.

        The failed partition stays in ``rows_assigned`` so the bar shows how far the
        worker got instead of looking complete.
        """
        w = self._end_partition(worker)
        w.state, w.error = FAILED, error
        self.failed = True

    def released(self, worker: str) -> None:
        """``worker`` gave its partition back unfinished (stopped, retried elsewhere)."""
        w = self._end_partition(worker)
        w.rows_assigned -= w.partition_size
        w.state, w.partition, w.partition_size = IDLE, None, 0

    def grow_total(self, rows: int, partitions: int = 1) -> None:
        """A lazily read input yielded another partition."""
        self.rows_total = (self.rows_total or 0) + rows
        self.partitions_total = (self.partitions_total or 0) + partitions

    def snapshot(
        self, partial: dict[str, int] | None = None, *, state: str = RUNNING,
        message: str | None = None,
    ) -> RunProgress:
        """A frozen picture of the run; ``partial`` holds rows done in running partitions."""
        now = time.monotonic()
        partial = partial or {}
        workers = []
        for name, w in self.workers.items():
            running = min(partial.get(name, 0), w.partition_size) if w.state == BUSY else 0
            done = w.rows_finished + running
            busy = w.busy_seconds + (now - w.busy_since if w.busy_since is not None else 0.0)
            shown = w.state
            if state == DONE and shown == IDLE and w.partitions_done:
                shown = DONE
            workers.append(
                WorkerProgress(
                    worker=name,
                    state=shown,
                    rows_done=done,
                    rows_assigned=w.rows_assigned,
                    rows_per_second=done / busy if busy > 0 else 0.0,
                    partition=w.partition,
                    partitions_done=w.partitions_done,
                    error=w.error,
                )
            )
        return RunProgress(
            workers=tuple(workers),
            rows_done=sum(w.rows_done for w in workers),
            rows_total=self.rows_total,
            partitions_done=sum(w.partitions_done for w in workers),
            partitions_total=self.partitions_total,
            elapsed=now - self.started,
            state=state,
            label=self.label,
            unit=self.unit,
            message=message,
        )


class TextProgress:
    """tqdm bars for terminals and scripts: one overall bar, then one per worker."""

    def __init__(self, *, per_worker: bool = True, file: Any = None) -> None:
        self.per_worker = per_worker
        self.file = file
        self._overall: Any = None
        self._bars: dict[str, Any] = {}

    def _bar(self, position: int, desc: str, unit: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(
            total=0, position=position, desc=desc, unit=unit, leave=True, file=self.file,
            dynamic_ncols=True, mininterval=0.1,
        )

    def update(self, progress: RunProgress) -> None:
        """Move the bars to ``progress``."""
        if self._overall is None:
            self._overall = self._bar(0, progress.label or "parallel", progress.unit)
        self._move(self._overall, progress.rows_done, progress.rows_total)
        if not self.per_worker:
            return
        for w in progress.workers:
            bar = self._bars.get(w.worker)
            if bar is None:
                bar = self._bars[w.worker] = self._bar(
                    len(self._bars) + 1, f"  worker {w.worker}", progress.unit
                )
            self._move(bar, w.rows_done, w.rows_assigned)
            bar.set_postfix_str(w.state if not w.error else f"failed: {w.error}", refresh=False)

    @staticmethod
    def _move(bar: Any, done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    def close(self, progress: RunProgress) -> None:
        """Draw the final state and release the terminal lines."""
        self.update(progress)
        for bar in [self._overall, *self._bars.values()]:
            if bar is not None:
                bar.close()


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
