"""Tune: time the panel's selection at several worker counts and recommend one.

The chosen function runs on a random sample sized so that one worker needs about
``seconds``; then on the same sample with 2, 4, ... workers up to the usable CPUs.
Workers are started before the clock starts, because a warm pool is what later
runs get; shipping the function and the data is timed, because later runs pay it.

The recommendation is a measured count (:func:`recommend`); beyond the counts this
machine has, the breakdown of the widest run (:mod:`jupyter_par.progress.timings`: the kernel's
serial share, and what that run lost to idle workers) says what more workers would give.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..progress import timings
from ..progress.records import ProgressSink
from ..run.engine import start_backend
from ..run.options import resolve, usable_cpus
from .runner import Selection

#: A count is "as good as the best" within this share of the best speedup: beyond it,
#: more workers buy too little to be worth the memory and the CPUs taken from others.
GOOD_ENOUGH = 0.9
#: Below this best speedup the workers' overheads eat the gain: stay with one.
NO_GAIN = 1.1


@dataclass(frozen=True)
class Recommendation:
    """A worker count and one sentence on what lies beyond the counts measured."""

    count: int
    note: str = ""


def projected_speedups(seconds_one: float, parts: dict[str, float],
                       counts: Sequence[int]) -> list[float]:
    """Speedups over the measured 1-worker time that ``parts`` (a run's breakdown) predicts.

    The predicted wall time at ``n`` workers is the run's work over
    :func:`~jupyter_par.progress.timings.realistic_speedup`, which at the run's own count is its
    measured wall time: the projection passes through the point it was taken from.
    """
    work = sum(parts[name] for name in timings.PARTS)
    if work <= 0 or seconds_one <= 0:
        return [0.0 for _ in counts]
    return [seconds_one * timings.realistic_speedup(parts, n) / work for n in counts]


def recommend(counts: Sequence[int], seconds: Sequence[float],
              parts: dict[str, float] | None = None) -> Recommendation:
    """The fewest workers within :data:`GOOD_ENOUGH` of the best measured speedup.

    ``counts`` start at 1 and ``seconds`` are their times; ``parts`` is the breakdown
    of the run at the most workers. With it the note says what the kernel's share
    predicts beyond the measured counts, so a user on a small machine learns whether a
    bigger one would pay.
    """
    speedups = [seconds[0] / s if s > 0 else 0.0 for s in seconds]
    best = max(speedups)
    if best < NO_GAIN:
        return Recommendation(1, f"no count gained over 1 worker (best {best:.2f}x): the "
                                 "overheads outweigh the work; run it in the kernel")
    count = next(c for c, s in zip(counts, speedups) if s >= GOOD_ENOUGH * best)
    if not parts or parts.get("wall", 0.0) < timings.SHORT_RUN:
        return Recommendation(count)
    widest = max(counts)
    beyond = timings.projection_counts(widest)
    projected = projected_speedups(seconds[0], parts, beyond)
    share = parts["serial_share"]
    ahead = ", ".join(f"{timings.speedup_text(x)} at {n}" for n, x in zip(beyond, projected))
    note = (f"the kernel's share ({100 * share:.1f}%) and the idle time at {widest} workers "
            f"predict about {ahead}")
    if count == widest and projected[0] >= speedups[-1] / GOOD_ENOUGH:
        note += f": more workers than the {widest} measured would still pay"
    else:
        note += f": beyond {count}, more workers gain little"
    return Recommendation(count, note)


@dataclass(frozen=True)
class TuneResult:
    """Seconds measured per worker count on a sample of ``rows`` rows."""

    counts: tuple[int, ...]
    seconds: tuple[float, ...]
    rows: int
    backend: str = "processes"
    #: The breakdown of the run at the most workers
    #: (:func:`jupyter_par.progress.timings.breakdown`).
    breakdown: dict[str, float] | None = None

    @property
    def speedups(self) -> tuple[float, ...]:
        """Time with one worker divided by the time with each count."""
        return tuple(self.seconds[0] / s if s > 0 else 0.0 for s in self.seconds)

    @property
    def recommended(self) -> int:
        """The fewest workers whose speedup is within 90% of the best one measured."""
        return recommend(self.counts, self.seconds, self.breakdown).count

    @property
    def note(self) -> str:
        """What the widest run's breakdown predicts beyond the counts measured."""
        return recommend(self.counts, self.seconds, self.breakdown).note

    def table(self) -> str:
        """The measurements as a plain-text table, and the note on what lies beyond."""
        lines = ["workers  seconds  speedup  ideal"]
        for count, seconds, speedup in zip(self.counts, self.seconds, self.speedups):
            lines.append(f"{count:>7}  {seconds:>7.3f}  {speedup:>7.2f}  {count:>5}")
        return "\n".join([*lines, self.note] if self.note else lines)


def worker_counts(limit: int | None = None) -> list[int]:
    """1, 2, 4, ... up to ``limit`` (the usable CPUs), with ``limit`` itself last."""
    limit = max(1, limit or usable_cpus())
    counts, count = [], 1
    while count < limit:
        counts.append(count)
        count *= 2
    return [*counts, limit]


def sample_rows(selection: Selection, seconds: float, cancel: threading.Event | None = None) -> int:
    """How many rows take one worker about ``seconds``, from timing growing heads."""
    n, total = 8, len(selection.frame)
    serial = resolve(jobs=1, progress=False, inline_fallback=False)
    while True:
        n = min(n, total)
        head = selection.head(n)
        started = time.perf_counter()
        head.run(serial, cancel=cancel)
        elapsed = time.perf_counter() - started
        if elapsed >= 0.05 or n >= total:
            break
        n *= 4
    per_row = max(elapsed / n, 1e-9)
    return max(1, min(total, int(seconds / per_row)))


def measure(selection: Selection, *, counts: Sequence[int] | None = None,
            backend: str = "processes", seconds: float = 1.0, cancel: threading.Event | None = None,
            sinks: Sequence[ProgressSink] = (),
            on_step: Callable[[int, float], Any] | None = None) -> TuneResult:
    """Time ``selection`` on a sample at each worker count; see the module docstring."""
    counts = list(counts or worker_counts())
    if counts[0] != 1:
        counts.insert(0, 1)
    rows = sample_rows(selection, seconds, cancel)
    sample = selection.sample(rows)
    took: list[float] = []
    parts = None
    for count in counts:
        options = resolve(jobs=count, backend=backend, progress=False, inline_fallback=False)
        start_backend(options)
        # One row per worker first: a warm pool may hold workers stopped by a cancel or a
        # failure, and replacing them is not what later runs pay.
        warm_up = sample.head(count)
        warm_up.run(replace(options, partitions=count), cancel=cancel)
        started = time.perf_counter()
        _, outcome = sample.run(options, sinks=sinks, cancel=cancel)
        took.append(time.perf_counter() - started)
        if outcome is not None and outcome.timings is not None:
            # Cutting the sample and combining it are the kernel's, outside the engine.
            parts = timings.breakdown(outcome, max(0.0, took[-1] - outcome.timings.wall))
        if on_step is not None:
            on_step(count, took[-1])
    return TuneResult(tuple(counts), tuple(took), rows, backend, parts)


def plot_png(result: TuneResult) -> bytes | None:
    """Measured speedup against ideal as a PNG, or None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    # A bare Figure, not pyplot: this runs in the panel's thread, away from any GUI loop.
    figure = Figure(figsize=(4.5, 3.0), dpi=100)
    axes = figure.add_subplot()
    widest = max(result.counts)
    shown = list(result.counts)
    if result.breakdown:  # the projection goes two doublings past the measured counts
        shown += [2 * widest, 4 * widest]
    axes.plot(shown, shown, ":", color="#9e9e9e", label="ideal")
    axes.plot(result.counts, result.speedups, "o-", color="#2196f3", label="measured")
    if result.breakdown:
        axes.plot(shown, projected_speedups(result.seconds[0], result.breakdown, shown), "--",
                  color="#ff9800", label=f"predicted from the run at {widest}")
    axes.axvline(result.recommended, color="#4caf50", linewidth=1,
                 label=f"recommended: {result.recommended}")
    axes.set_xlabel("workers")
    axes.set_ylabel("speedup over 1 worker")
    axes.set_xscale("log", base=2)
    axes.set_xticks(shown, [str(c) for c in shown])
    axes.set_title(f"speedup on {result.rows:,} sample rows", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
