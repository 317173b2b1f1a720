"""Where a run's time went, and what speedup that predicts at other worker counts.

Users ask why a run is not faster. The engine records the kernel's critical path in
each :class:`~jupyter_par.run.engine.RunOutcome` (``outcome.timings``); this module turns
it, with the caller's own split and combine times, into a breakdown::

    compute 92% · shipping 5% · kernel 3% → about 13x at 16 workers

The projection is Amdahl's law with the kernel's work as the serial part: splitting
before the first dispatch, shipping partitions and reading their results, the tail
after the last result, and combining. It is conservative: the kernel ships while
workers compute, so shipping is serial only once the kernel is the bottleneck. It
leaves out the kernel's loop (progress and polling, about ten times a second
whatever the number of partitions, beside the workers), what more workers would add
(more partitions, more results to read) and what the machine lacks (cores, memory
bandwidth).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .records import percent_text

#: The parts of a run, in the order a user reads them.
PARTS = ("split", "shipping", "compute", "tail", "combine")
#: The parts the kernel does alone, which more workers cannot shorten.
KERNEL_PARTS = ("split", "shipping", "tail", "combine")
#: Below this wall time (seconds) a run's parts are mostly noise and start-up: the line
#: gives the shares but projects no speedup.
SHORT_RUN = 0.2


def breakdown(outcome: Any, combine_seconds: float = 0.0, *,
              split_seconds: float = 0.0) -> dict[str, float]:
    """The run's time in parts (seconds) and the kernel's serial share.

    Parameters
    ----------
    outcome
        A :class:`~jupyter_par.run.engine.RunOutcome` (its ``timings``), or the
        :class:`~jupyter_par.run.engine.RunTimings` itself.
    combine_seconds
        What the caller spent putting the results together after the run.
    split_seconds
        What the caller spent cutting partitions before calling the engine (a lazy
        input is cut inside the run and counts in ``split`` already).

    Returns
    -------
    dict
        ``split`` (the kernel before the first dispatch, caller's split included),
        ``shipping`` (the kernel handing out partitions and reading their results),
        ``compute`` (summed over workers), ``tail``, ``combine``; ``loop`` (the
        kernel's progress and polling while workers run, not serial); ``idle``
        (worker-seconds unused while
        partitions were out, per worker: load imbalance and per-partition overhead),
        ``wall`` (call to combined result), ``kernel_cpu``, ``workers``, and
        ``serial_share``, the kernel's parts over the total work.
    """
    timings = getattr(outcome, "timings", outcome)
    if timings is None or not hasattr(timings, "worker_compute"):
        msg = f"breakdown needs a RunOutcome with timings, got {type(outcome).__name__}"
        raise UsageError(msg)
    workers = max(1, int(getattr(outcome, "jobs", 0) or 1))
    parts = {
        "split": split_seconds + timings.to_first_dispatch,
        "shipping": timings.kernel_dispatch,
        "compute": timings.worker_compute,
        "tail": timings.tail,
        "combine": combine_seconds,
    }
    window = max(0.0, timings.wall - timings.to_first_dispatch - timings.tail)
    kernel = sum(parts[name] for name in KERNEL_PARTS)
    total = kernel + parts["compute"]
    return {
        **parts,
        "loop": max(0.0, timings.kernel_between - timings.kernel_dispatch),
        "idle": max(0.0, window - parts["compute"] / workers),
        "wall": split_seconds + timings.wall + combine_seconds,
        "kernel_cpu": timings.kernel_cpu,
        "workers": float(workers),
        "serial_share": kernel / total if total > 0 else 0.0,
    }


def projected_speedup(parts: dict[str, float], workers: int) -> float:
    """Amdahl's speedup over one worker at ``workers`` workers: ``T1 / (serial + compute/n)``."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        msg = f"workers must be a whole number of at least 1, got {workers!r}"
        raise UsageError(msg)
    serial = sum(parts[name] for name in KERNEL_PARTS)
    total = serial + parts["compute"]
    if total <= 0:
        return float(workers)
    return total / (serial + parts["compute"] / workers)


def projected_efficiency(parts: dict[str, float], workers: int) -> float:
    """:func:`projected_speedup` per worker (1.0 is ideal)."""
    return projected_speedup(parts, workers) / workers


def summary(parts: dict[str, float], workers: int = 16) -> str:
    """The line for users: ``compute 92% · shipping 5% · kernel 3% → about 13x at 16 workers``.

    Shares are of the summed parts; the kernel share is split, tail and combine.
    """
    total = sum(parts[name] for name in PARTS)
    if total <= 0:
        return "nothing was measured (no partition ran)"
    kernel = parts["split"] + parts["tail"] + parts["combine"]
    shares = (("compute", parts["compute"]), ("shipping", parts["shipping"]), ("kernel", kernel))
    text = " · ".join(f"{name} {100 * value / total:.0f}%" for name, value in shares)
    return f"{text} → about {projected_speedup(parts, workers):.0f}x at {workers} workers"


def projection_counts(jobs: int) -> list[int]:
    """The worker counts a run's line projects to: twice its own, 16 and 64 (above it)."""
    return [c for c in sorted({2 * jobs, 16, 64}) if c > jobs][:3]


def realistic_speedup(parts: dict[str, float], workers: int) -> float:
    """Amdahl's speedup at ``workers``, scaled down by what this run lost beyond Amdahl.

    The run measured ``work / wall`` with its own workers, where Amdahl with its serial
    share would have given more (idle workers: uneven partitions, per-partition
    overhead). That loss, as a factor, is kept at every count; a run that did better
    than Amdahl is not credited, so the projection never exceeds Amdahl's.
    """
    amdahl = projected_speedup(parts, workers)
    own = max(1, int(parts.get("workers", 1)))
    work = sum(parts[name] for name in PARTS)
    if parts.get("wall", 0.0) <= 0 or work <= 0:
        return amdahl
    loss = min(1.0, (work / parts["wall"]) / projected_speedup(parts, own))
    return amdahl * loss


def speedup_text(speedup: float) -> str:
    """``"3.7x"``, ``"11x"``: rounded down, so a projection never reads above Amdahl's."""
    if speedup < 10:
        return f"{math.floor(speedup * 10 + 1e-9) / 10:.1f}x"
    return f"{math.floor(speedup + 1e-9):.0f}x"


def explain(parts: dict[str, float]) -> str:
    """The line a view shows under a finished run's bars, for example::

        compute 92% · shipping 5% · kernel 3% · idle 4% → 1.9x with 2 workers;
        about 3.6x at 4, 13x at 16, 22x at 64

    ``compute``, ``shipping`` and ``kernel`` (split, tail and combine) are shares of the
    run's work: what the kernel and one worker would take, summing to 100%, so their
    kernel shares are the serial share Amdahl's law uses. ``idle`` is the workers'
    unused time inside the run, as a share of its wall clock. The speedup is the work
    over the wall clock; the projection is :func:`realistic_speedup`, none for a run
    shorter than :data:`SHORT_RUN`.
    """
    work = sum(parts[name] for name in PARTS)
    if work <= 0:
        return "nothing was measured (no partition ran)"
    kernel = parts["split"] + parts["tail"] + parts["combine"]
    wall = parts.get("wall", 0.0)
    shares = [("compute", parts["compute"] / work), ("shipping", parts["shipping"] / work),
              ("kernel", kernel / work)]
    if wall > 0:
        shares.append(("idle", min(1.0, parts.get("idle", 0.0) / wall)))
    text = " · ".join(f"{name} {percent_text(share, share=True)}" for name, share in shares)
    jobs = max(1, int(parts.get("workers", 1)))
    if wall < SHORT_RUN:
        return f"{text} (a {wall:.2f} s run is too short to project)"
    here = f"{speedup_text(work / wall)} with {jobs} worker{'s' if jobs > 1 else ''}"
    counts = projection_counts(jobs)
    projected = ", ".join(
        f"{speedup_text(realistic_speedup(parts, c))} at {c}" for c in counts)
    return f"{text} → {here}; about {projected}" if counts else f"{text} → {here}"


@dataclass(frozen=True)
class RunRecord:
    """What :func:`jupyter_par.last_run` returns: where the last run's time went.

    ``breakdown`` is :func:`breakdown` in seconds (empty for a run in the kernel),
    ``explain`` the line the views show, ``with_workers`` whether workers ran it, and
    :attr:`ran` where, in one word (what tests claiming "through the workers" assert).
    """

    label: str
    backend: str = ""
    jobs: int = 0
    timings: Any = None
    breakdown: dict[str, float] = field(default_factory=dict)
    explain: str = ""
    with_workers: bool = False

    @property
    def ran(self) -> str:
        """``"workers"``; ``"kernel"`` (a backend ran it here: one job, the inline
        fallback, a nested call); or ``"pandas"`` (handed back to pandas whole: empty
        input, a dict or Series mapper, a ufunc, a function's name)."""
        if self.with_workers:
            return "workers"
        return "kernel" if self.backend else "pandas"


_last: RunRecord | None = None
_lock = threading.Lock()


def remember(record: RunRecord) -> RunRecord:
    """Keep ``record`` as the last run's (see :func:`last_run`)."""
    global _last
    with _lock:
        _last = record
    return record


def record_run(outcome: Any, label: str, combine_seconds: float, *,
               split_seconds: float = 0.0, with_workers: bool = True) -> RunRecord:
    """The record of a finished run, remembered as the last one."""
    parts = breakdown(outcome, combine_seconds, split_seconds=split_seconds)
    return remember(RunRecord(label, outcome.backend, outcome.jobs, outcome.timings, parts,
                              explain(parts), with_workers))


def last_run() -> RunRecord | None:
    """The last finished run of this kernel: its ``timings``, ``breakdown`` and ``explain``.

    ``None`` before the first run. A call that ran in the kernel (as pandas, or because
    it was too small to move) has ``with_workers`` false and says why in ``explain``.

    >>> jp.apply(df, score, axis=1)  # doctest: +SKIP
    >>> jp.last_run().explain        # doctest: +SKIP
    'compute 92% · shipping 5% · kernel 3% · idle 4% → 1.9x with 2 workers; about ...'
    """
    return _last


def tell(sinks: Iterable[Any], text: str) -> None:
    """Hand ``text`` to every sink that shows it (one with an ``explain(text)`` method)."""
    for sink in sinks:
        show = getattr(sink, "explain", None)
        if callable(show):
            # The run is over and its value combined: a view that cannot draw one more
            # line (a closed comm, a closed stream) must not cost the user that value.
            with contextlib.suppress(Exception):
                show(text)
