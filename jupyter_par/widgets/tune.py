"""Tune: measure the speedup of a plan at several worker counts and recommend one.

The chosen function runs on a random sample sized so that one worker needs about
``seconds``; then on the same sample with 2, 4, ... workers up to the usable CPUs.
Workers are started before the clock starts, because a warm pool is what later
runs get; shipping the function and the data is timed, because later runs pay it.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import backends
from ..config import resolve, usable_cpus
from ..progress_state import ProgressSink
from .runner import Selection

#: A count is "as good as the best" within this share of the best speedup: beyond it,
#: more workers buy too little to be worth the memory and the CPUs taken from others.
GOOD_ENOUGH = 0.9


@dataclass(frozen=True)
class TuneResult:
    """Seconds measured per worker count on a sample of ``rows`` rows."""

    counts: tuple[int, ...]
    seconds: tuple[float, ...]
    rows: int
    backend: str = "processes"

    @property
    def speedups(self) -> tuple[float, ...]:
        """Time with one worker divided by the time with each count."""
        return tuple(self.seconds[0] / s if s > 0 else 0.0 for s in self.seconds)

    @property
    def recommended(self) -> int:
        """The fewest workers whose speedup is within 90% of the best one measured."""
        speedups = self.speedups
        best = max(speedups)
        if best < 1.1:  # overheads eat the gain: stay in the kernel
            return 1
        return next(c for c, s in zip(self.counts, speedups) if s >= GOOD_ENOUGH * best)

    def table(self) -> str:
        """The measurements as a plain-text table."""
        lines = ["workers  seconds  speedup  ideal"]
        for count, seconds, speedup in zip(self.counts, self.seconds, self.speedups):
            lines.append(f"{count:>7}  {seconds:>7.3f}  {speedup:>7.2f}  {count:>5}")
        return "\n".join(lines)


def worker_counts(limit: int | None = None) -> list[int]:
    """1, 2, 4, ... up to ``limit`` (the usable CPUs), with ``limit`` itself last."""
    limit = max(1, limit or usable_cpus())
    counts, count = [], 1
    while count < limit:
        counts.append(count)
        count *= 2
    return [*counts, limit]


def sample_rows(plan: Selection, seconds: float, cancel: threading.Event | None = None) -> int:
    """How many rows take one worker about ``seconds``, from timing growing heads."""
    n, total = 8, len(plan.frame)
    serial = resolve(jobs=1, progress=False, inline_fallback=False)
    while True:
        n = min(n, total)
        head = plan.head(n)
        started = time.perf_counter()
        head.run(serial, cancel=cancel)
        elapsed = time.perf_counter() - started
        if elapsed >= 0.05 or n >= total:
            break
        n *= 4
    per_row = max(elapsed / n, 1e-9)
    return max(1, min(total, int(seconds / per_row)))


def measure(plan: Selection, *, counts: Sequence[int] | None = None, backend: str = "processes",
            seconds: float = 1.0, cancel: threading.Event | None = None,
            sinks: Sequence[ProgressSink] = (),
            on_step: Callable[[int, float], Any] | None = None) -> TuneResult:
    """Time ``plan`` on a sample at each worker count; see the module docstring."""
    counts = list(counts or worker_counts())
    if counts[0] != 1:
        counts.insert(0, 1)
    rows = sample_rows(plan, seconds, cancel)
    sample = plan.sample(rows)
    timings = []
    for count in counts:
        options = resolve(jobs=count, backend=backend, progress=False, inline_fallback=False)
        backends.acquire(options.backend, options.jobs,
                         **backends.backend_class(options.backend).options_from(options))
        # One row per worker first: a warm pool may hold workers stopped by a cancel or a
        # failure, and replacing them is not what later runs pay.
        warm_up = sample.head(count)
        warm_up.run(replace(options, partitions=count), cancel=cancel)
        started = time.perf_counter()
        sample.run(options, sinks=sinks, cancel=cancel)
        timings.append(time.perf_counter() - started)
        if on_step is not None:
            on_step(count, timings[-1])
    return TuneResult(tuple(counts), tuple(timings), rows, backend)


def plot_png(result: TuneResult) -> bytes | None:
    """Measured speedup against ideal as a PNG, or None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    # A bare Figure, not pyplot: this runs in the panel's thread, away from any GUI loop.
    figure = Figure(figsize=(4.5, 3.0), dpi=100)
    axes = figure.add_subplot()
    axes.plot(result.counts, result.counts, "--", color="#9e9e9e", label="ideal")
    axes.plot(result.counts, result.speedups, "o-", color="#2196f3", label="measured")
    axes.axvline(result.recommended, color="#4caf50", linewidth=1,
                 label=f"recommended: {result.recommended}")
    axes.set_xlabel("workers")
    axes.set_ylabel("speedup over 1 worker")
    axes.set_xticks(list(result.counts))
    axes.set_title(f"speedup on {result.rows:,} sample rows", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
