"""What the panel runs, and the background thread it runs in.

A :class:`Plan` is the panel's choices (a frame, a function, rows / groups / columns)
turned into the same partitions and operations :mod:`jupyter_par.api` uses, run
through the same :func:`jupyter_par.engine.run`, with a cancel ``Event`` that the
Python API does not need. A :class:`Job` runs it in a thread so the kernel keeps
handling widget messages (the Cancel click) while the workers run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from .. import _worker, engine, operations
from ..config import Options
from ..errors import UsageError
from ..partition import combine, partition_count, split_columns, split_groups, split_rows
from ..progress import ProgressSink

MODES = ("rows", "groups", "columns")
#: The panel's jobs never overlap: they share the warm workers.
_one_at_a_time = threading.Lock()


@dataclass(frozen=True)
class _CancellableInline:
    """Let a run in the caller's thread stop mid-partition: rows reported check ``cancel``."""

    op: Any
    cancel: threading.Event

    def __call__(self, part: Any) -> Any:
        _worker.current().cancel = self.cancel
        return self.op(part)


@dataclass(frozen=True)
class Plan:
    """``func`` over ``frame``: row-wise, per group of ``by``, or per column."""

    frame: pd.DataFrame
    func: Callable[..., Any]
    mode: str = "rows"
    by: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            msg = f"mode must be one of {', '.join(MODES)}, got {self.mode!r}"
            raise UsageError(msg)
        if self.mode == "groups" and self.by not in self.frame.columns:
            msg = f"grouping needs a column of the frame, got {self.by!r}; pick one under 'by'"
            raise UsageError(msg)

    @property
    def label(self) -> str:
        """A short description for the progress view."""
        name = getattr(self.func, "__name__", type(self.func).__name__)
        return {"rows": f"apply({name}, axis=1)", "columns": f"apply({name}, axis=0)",
                "groups": f"groupby({self.by!r}).apply({name})"}[self.mode]

    def sample(self, rows: int, seed: int = 0) -> Plan:
        """The same plan on ``rows`` random rows (every group keeps a chance to appear)."""
        if rows >= len(self.frame):
            return self
        return replace(self, frame=self.frame.sample(n=rows, random_state=seed).sort_index())

    def serial(self) -> Any:
        """What pandas gives on one core (also the answer for an empty frame)."""
        if self.mode == "rows":
            return self.frame.apply(self.func, axis=1)
        if self.mode == "columns":
            return self.frame.apply(self.func, axis=0)
        return self.frame.groupby(self.by).apply(self.func)

    def run(self, options: Options, *, sinks: Sequence[ProgressSink] = (),
            cancel: threading.Event | None = None) -> tuple[Any, engine.RunOutcome | None]:
        """Run through the engine; return the combined result and the run's outcome."""
        df = self.frame
        if len(df) == 0 or len(df.columns) == 0:
            return self.serial(), None
        if self.mode == "columns":
            parts = split_columns(df, partition_count(df.shape[1], options.jobs,
                                                      options.partitions))
            op: Any = operations.ColumnApply(self.func)
        elif self.mode == "groups":
            n = partition_count(len(df), options.jobs, options.partitions)
            parts = split_groups(df, self.by, n)
            op = operations.GroupApply(self.func, self.by)
        else:
            parts = split_rows(df, partition_count(len(df), options.jobs, options.partitions))
            op = operations.RowApply(self.func)
        if cancel is not None and options.backend == "inline":
            op = _CancellableInline(op, cancel)
        outcome = engine.run(
            parts, op, options, sinks=sinks, rows_total=sum(p.size for p in parts),
            partitions_total=len(parts), label=self.label,
            unit="columns" if self.mode == "columns" else "rows", cancel=cancel,
        )
        results = outcome.results
        if self.mode == "columns" and results and all(isinstance(r, pd.DataFrame)
                                                       for r in results):
            return pd.concat(results, axis=1), outcome
        return combine(results), outcome


class Job:
    """``work(cancel)`` in a daemon thread; ``result``/``error`` once it ends."""

    def __init__(self, work: Callable[[threading.Event], Any], name: str = "jupyter_par-panel"):
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self._work = work
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> Job:
        """Start the thread; return self."""
        self.thread.start()
        return self

    def _main(self) -> None:
        with _one_at_a_time:
            try:
                self.result = self._work(self.cancel_event)
            except BaseException as exc:  # noqa: BLE001 - kept for the panel to show
                self.error = exc
            finally:
                self.ended = time.monotonic()

    @property
    def running(self) -> bool:
        """Whether the thread has not ended yet."""
        return self.thread.is_alive()

    def cancel(self) -> None:
        """Ask the run to stop; the engine stops the workers within about a second."""
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end; True if it ended within ``timeout``."""
        self.thread.join(timeout)
        return not self.thread.is_alive()
