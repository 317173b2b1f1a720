"""What the panel runs, and the background thread it runs in.

A :class:`Selection` is the panel's choices (a frame, a function, rows / groups /
columns) turned into the same plan the Python API builds (:mod:`jupyter_par.planning.builders`)
and run through the same :func:`jupyter_par.run.pipeline.execute`. A :class:`Job` runs it in
a thread so the kernel keeps handling widget messages (the Cancel click) while the
workers run; the engine's cancel reaches every backend, the inline one included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TextIO

import pandas as pd

from ..errors import UsageError
from ..planning import builders
from ..planning.plan import Plan
from ..progress.records import ProgressSink
from ..run import engine, pipeline
from ..run.options import Options

MODES = ("rows", "groups", "columns")
#: The panel's jobs never overlap: they share the warm workers.
_one_at_a_time = threading.Lock()


@dataclass(frozen=True)
class Selection:
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
        name = builders.name_of(self.func)
        return {"rows": f"apply({name}, axis=1)", "columns": f"apply({name}, axis=0)",
                "groups": f"groupby({self.by!r}).apply({name})"}[self.mode]

    def sample(self, rows: int, seed: int = 0) -> Selection:
        """The same selection on ``rows`` random rows (every group keeps a chance to appear)."""
        if rows >= len(self.frame):
            return self
        return replace(self, frame=self.frame.sample(n=rows, random_state=seed).sort_index())

    def head(self, rows: int) -> Selection:
        """The same selection on the first ``rows`` rows."""
        return replace(self, frame=self.frame.iloc[:rows])

    def serial(self) -> Any:
        """What pandas gives on one core."""
        if self.mode == "rows":
            return self.frame.apply(self.func, axis=1)
        if self.mode == "columns":
            return self.frame.apply(self.func, axis=0)
        return self.frame.groupby(self.by, observed=True).apply(self.func)

    def plan(self, options: Options) -> Plan:
        """The API's plan for this selection (the panel adds nothing of its own)."""
        started = time.perf_counter()
        if self.mode == "groups":
            # Only the groups that have rows, as pandas 3 does by default (and pandas 2
            # warns it will): a category without rows has nothing to show in the panel.
            plan = builders.groupby_apply(self.frame, self.by, self.func, {"observed": True}, (),
                                       {}, options.jobs, options.partitions)
        else:
            plan = builders.frame_apply(self.frame, self.func, 1 if self.mode == "rows" else 0,
                                     {}, options.jobs, options.partitions)
        plan.label = self.label
        plan.split_seconds = time.perf_counter() - started
        return plan

    def run(self, options: Options, *, sinks: Sequence[ProgressSink] = (),
            cancel: threading.Event | None = None, output: TextIO | None = None,
            ) -> tuple[Any, engine.RunOutcome | None]:
        """Run through the pipeline; return the combined result and the run's outcome."""
        return pipeline.execute(self.plan(options), options, sinks=sinks, cancel=cancel,
                                output=output)


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
