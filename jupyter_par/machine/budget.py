"""Keep the partitions in flight within the memory the machine still has.

Two workers on a pod with a 2 GB limit, each handed a 600 MB partition that its
function turns into 1.2 GB of temporaries, get killed by the out-of-memory killer,
and a pool that only waits on results waits forever. Here each partition's footprint
is estimated before it is sent (its input bytes times a ratio learned from the
partitions that already ran: what each worker's memory grew by, plus its result), and
a partition is sent only if what the partitions in flight may still claim fits in the
memory available now (the cgroup limit or MemAvailable, see :mod:`jupyter_par.machine.limits`).
One partition is always allowed, or nothing would run; when it alone may not fit, or
when fewer workers than asked can run at once, one warning says so and what to do.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import JupyterParWarning
from . import limits

#: Before any partition of the run has finished, a function may need this many times
#: its input (temporaries, copies, its result): partitions are sent as if it did. Where
#: memory is plentiful this changes nothing; where it is tight, the first partitions go
#: out one by one until the first one has shown what it really needs.
FIRST_GUESS = 10.0
#: Fraction of the available memory the partitions in flight may claim.
SAFETY = 0.8
#: Seconds an available-memory reading is reused (idle_workers is asked often).
READ_EVERY = 0.05
#: ... and while the last reading left room for :data:`PLENTY` times what a full pool
#: may claim: a reading costs ~1 ms (the cgroup files), ~50 µs per no-op partition
#: when read every 50 ms.
READ_EVERY_PLENTY = 1.0
PLENTY = 4
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryBudgetWarning(JupyterParWarning):
    """Fewer partitions run at once than there are workers, or one may not fit at all."""


def rss_of(pid: int) -> int:
    """Resident bytes of process ``pid`` (0 if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def mb(nbytes: float) -> str:
    """``nbytes`` for a message: MB below 10 GB, GB above."""
    return f"{nbytes / 2**30:.1f} GB" if nbytes >= 10 * 2**30 else f"{nbytes / 2**20:.0f} MB"


@dataclass
class _InFlight:
    task_id: int
    pid: int
    input_bytes: int
    #: The worker's memory when it started the partition; -1 when not read (memory was
    #: plentiful then), and its growth is then counted as none (the larger claim).
    rss_at_start: int


class MemoryBudget:
    """The memory side of one pool: what each partition in flight may still claim."""

    def __init__(self, jobs: int,
                 reader: Callable[[], tuple[int, str]] = limits.available_memory) -> None:
        self.jobs = jobs
        self.reader = reader
        self.flights: dict[str, _InFlight] = {}
        self.ratio = FIRST_GUESS
        self.measured = False
        self.last_input = 0
        self.warned: set[str] = set()
        self._reading: tuple[float, int, str] = (0.0, 0, "")
        self._input_in_flight = 0  # the flights' input bytes, kept as they come and go

    def begin_run(self) -> None:
        """A new run, maybe of another function: learn its ratio afresh."""
        self.ratio, self.measured, self.last_input = FIRST_GUESS, False, 0
        self.warned.clear()

    def available(self) -> tuple[int, str]:
        now = time.monotonic()
        at, free, source = self._reading
        full_pool = PLENTY * self.jobs * self.estimate(self.last_input)
        if now - at > (READ_EVERY if free * SAFETY < full_pool else READ_EVERY_PLENTY):
            free, source = self.reader()
            self._reading = (now, free, source)
        return free, source

    def estimate(self, input_bytes: int) -> int:
        """The memory a partition with ``input_bytes`` of input is expected to need."""
        return int(input_bytes * self.ratio)

    def claimed(self) -> int:
        """What the partitions in flight may still take beyond what they hold already."""
        total = 0
        for flight in self.flights.values():
            grown = (max(0, rss_of(flight.pid) - flight.rss_at_start)
                     if flight.pid and flight.rss_at_start >= 0 else 0)
            total += max(0, self.estimate(flight.input_bytes) - flight.input_bytes - grown)
        return total

    def claimed_at_most(self) -> int:
        """:meth:`claimed` as if no partition had grown yet: an upper bound, no reads
        (the ratio is at least 1, so each flight's claim is at most input x (ratio - 1))."""
        return int(self._input_in_flight * (self.ratio - 1)) + len(self.flights)

    def room(self, idle: int) -> int:
        """How many of ``idle`` workers may be given a partition now."""
        if idle <= 0 or not self.last_input:
            return idle  # nothing known yet: the first partition shows its size
        if not self.flights:
            return min(idle, max(1, self._fits(idle)))
        return min(idle, self._fits(idle))

    def _fits(self, idle: int) -> int:
        free, source = self.available()
        typical = max(1, self.estimate(self.last_input))
        running = len(self.flights)
        # The upper bound of the claims first: when even it leaves room for every idle
        # worker (and for all of them, so no warning is due), the exact claims would too.
        fits = int((free * SAFETY - self.claimed_at_most()) // typical)
        if fits < max(idle, self.jobs - running):
            fits = max(0, int((free * SAFETY - self.claimed()) // typical))
        if (running + fits < self.jobs and self.measured and running
                and "throttled" not in self.warned):
            self.warned.add("throttled")
            warnings.warn(
                f"memory: running {max(1, running + fits)} partition(s) at a time instead of "
                f"{self.jobs}: each needs about {mb(typical)} and {mb(free)} is free "
                f"({source}); smaller partitions (partitions=) would use every worker",
                MemoryBudgetWarning, stacklevel=2)
        return fits

    def started(self, worker: str, task_id: int, pid: int, input_bytes: int) -> None:
        """Partition ``task_id`` went to ``worker`` (process ``pid``) with this input."""
        self.last_input = max(1, input_bytes)
        estimate = self.estimate(input_bytes)
        free, source = self.available()
        plenty = free * SAFETY - self.claimed_at_most() - estimate >= self.jobs * estimate
        self._drop(worker)
        self.flights[worker] = _InFlight(task_id, pid, input_bytes,
                                         -1 if plenty or not pid else rss_of(pid))
        self._input_in_flight += input_bytes
        if self.measured and estimate > free * SAFETY and "too big" not in self.warned:
            self.warned.add("too big")
            warnings.warn(
                f"memory: partition {task_id} may need about {mb(estimate)} and only "
                f"{mb(free)} is free ({source}); if its worker is killed, pass more "
                "partitions (partitions=)", MemoryBudgetWarning, stacklevel=2)

    def finished(self, worker: str, used_bytes: int | None) -> None:
        """``worker``'s partition is done; it needed ``used_bytes`` (if measured)."""
        flight = self._drop(worker)
        if flight is None or used_bytes is None or flight.input_bytes <= 0:
            return
        ratio = max(1.0, used_bytes / flight.input_bytes)
        # The largest ratio of this run: a partition that needed more than the others
        # will again.
        self.ratio = ratio if not self.measured else max(self.ratio, ratio)
        self.measured = True

    def released(self, worker: str) -> None:
        """``worker``'s partition ended without a measure (it died, or was stopped)."""
        self._drop(worker)

    def _drop(self, worker: str) -> _InFlight | None:
        flight = self.flights.pop(worker, None)
        if flight is not None:
            self._input_in_flight -= flight.input_bytes
        return flight

    def describe(self, worker: str) -> str:
        """What ``worker``'s partition holds, for a report of its death."""
        flight = self.flights.get(worker)
        if flight is None:
            return ""
        free, source = self.available()
        return f"its partition holds {mb(flight.input_bytes)} of input; {mb(free)} is free now, " \
            f"{source}"
