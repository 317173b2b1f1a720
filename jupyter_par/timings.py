"""Where a run's time went, and what speedup that predicts at other worker counts.

Users ask why a run is not faster. The engine records the kernel's critical path in
each :class:`~jupyter_par.engine.RunOutcome` (``outcome.timings``); this module turns
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

from typing import Any

from .errors import UsageError

#: The parts of a run, in the order a user reads them.
PARTS = ("split", "shipping", "compute", "tail", "combine")
#: The parts the kernel does alone, which more workers cannot shorten.
KERNEL_PARTS = ("split", "shipping", "tail", "combine")


def breakdown(outcome: Any, combine_seconds: float = 0.0, *,
              split_seconds: float = 0.0) -> dict[str, float]:
    """The run's time in parts (seconds) and the kernel's serial share.

    Parameters
    ----------
    outcome
        A :class:`~jupyter_par.engine.RunOutcome` (its ``timings``), or the
        :class:`~jupyter_par.engine.RunTimings` itself.
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
