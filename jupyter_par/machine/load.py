"""How much of the machine other processes use right now: what workers started now would get.

The in-kernel fallback weighs what the workers would save against what moving the data
costs. On an idle machine ``jobs`` workers run ``jobs`` times as fast as the kernel; beside
two busy processes on two CPUs, the scheduler shares the CPUs among everything runnable,
and two workers run only about 1.5 times as fast as the kernel would alone. A verdict
that assumes the idle machine sends a cheap run to workers that cannot pay for its
moving. This module reads the load as it is now (never raising):

- :func:`busy_elsewhere`: the runnable tasks of other processes at this instant (Linux:
  ``/proc/loadavg``'s running count, less this thread); elsewhere the CPUs busy since the
  last reading (``psutil.cpu_percent``) or the one-minute load average;
- :func:`speedup`: how many times the kernel's own speed ``workers`` CPU-bound workers
  reach with ``busy`` other runnable tasks on ``cpus`` CPUs, under fair sharing;
- :class:`Stopwatch`: a call's seconds less those this thread waited for a CPU (Linux's
  per-thread ``schedstat``), so a piece timed while other processes hold the CPUs reads
  as long as on an idle machine, and a piece that sleeps or waits on I/O still counts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .limits import usable_cpus

_LOADAVG = Path("/proc/loadavg")
_SCHEDSTAT = Path("/proc/thread-self/schedstat")


def _waited_ns() -> int | None:
    """Nanoseconds this thread has waited on a run queue so far, or ``None``."""
    try:
        return int(_SCHEDSTAT.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None


class Stopwatch:
    """Times what runs between :meth:`start` and :meth:`stop` in this thread: ``wall``,
    ``seconds`` (wall time less the time spent waiting for a CPU, where Linux tells it)
    and ``waited`` (that wait). Wall time where the wait cannot be read."""

    def __init__(self) -> None:
        self.wall = self.seconds = self.waited = 0.0
        self._wall = 0.0
        self._queued: int | None = None

    def start(self) -> Stopwatch:
        self._queued = _waited_ns()
        self._wall = time.perf_counter()
        return self

    def stop(self) -> float:
        self.wall = wall = time.perf_counter() - self._wall
        queued = _waited_ns()
        if self._queued is not None and queued is not None:
            self.waited = min(wall, max(0, queued - self._queued) / 1e9)
        self.seconds = wall - self.waited
        return self.seconds


def _running_now() -> int | None:
    """Runnable tasks on the whole host now (this thread included), or ``None``."""
    try:
        fields = _LOADAVG.read_text().split()
        return int(fields[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _cpu_percent() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return float(psutil.cpu_percent(interval=None))


def busy_elsewhere(cpus: int | None = None) -> float:
    """CPUs' worth of runnable work of other processes now (0.0 on an idle machine).

    The host's running count includes every CPU of the host: where this process may use
    fewer (affinity, a cgroup quota), the others' load is counted at the same share.
    """
    cpus = cpus or usable_cpus()
    host = os.cpu_count() or cpus
    running = _running_now()
    if running is not None:
        others = max(0, running - 1)
    else:
        percent = _cpu_percent()
        if percent is not None:
            others = max(0.0, percent / 100 * host - 1)
        else:
            try:
                others = max(0.0, os.getloadavg()[0] - 1)
            except (AttributeError, OSError):
                return 0.0
    return others * min(1.0, cpus / host)


def speedup(workers: int, busy: float, cpus: int | None = None) -> float:
    """How many times faster ``workers`` CPU-bound workers run than the kernel alone,
    with ``busy`` CPUs' worth of other runnable work on ``cpus`` CPUs (fair sharing).

    The kernel alone gets ``min(1, cpus / (busy + 1))`` of a CPU; the workers together
    ``min(workers, cpus, workers * cpus / (busy + workers))``. Idle: ``min(workers,
    cpus)``; two workers beside two busy processes on two CPUs: 1.5.
    """
    cpus = cpus or usable_cpus()
    workers = max(1, workers)
    alone = min(1.0, cpus / (busy + 1))
    together = min(float(workers), float(cpus), workers * cpus / (busy + workers))
    return max(1.0, together / alone)
