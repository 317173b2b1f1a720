"""Is moving the data to workers worth it? The cost model behind the in-kernel fallback.

A row-wise function that takes microseconds on data of hundreds of megabytes can cost
more to copy to the workers and back than to run in the kernel. Before a run on the
local process pool, the pipeline takes these steps:

1. :func:`measure` the input, and ask :func:`worth_a_sample` (small inputs go to the
   workers as asked);
2. run a :class:`Sample` in the kernel: consecutive pieces of the first partition (or,
   where rows may not be cut anywhere, the first partition whole), each run ONCE, their
   results kept as the run's own first partitions;
3. read its :attr:`Sample.verdict`: ``None`` (the rest goes to the workers) or why the
   kernel is faster ("ran in the kernel: the work is about ..."), and run
   :meth:`Sample.rest` there.

No row runs twice: the sample is the start of the run, not a rehearsal of it.

A GroupBy call assembles its result in the kernel from the workers' values by walking
pandas' loop over every group again (:mod:`~jupyter_par.planning.group_replay`); kept
in the kernel, it finishes as pandas' own call instead (the plan's ``kernel_finish``),
with no assembly. So the verdict counts the assembly on the workers' side: measured
(seconds per group of the last assembly of the same method in this kernel, see
:func:`note_assembly`), or, before any, the sample's own share of pandas' loop.

The verdict holds under load. Pieces are timed less the time the kernel waited for a
CPU (:class:`~jupyter_par.machine.load.Stopwatch`), so other processes do not make the
work look larger than it is; and what the workers would save is counted at the speed
they would get now (:func:`~jupyter_par.machine.load.speedup` of the CPUs other
processes keep busy, read during the sample), not at ``jobs`` times the kernel's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ..machine import load
from ..planning.partition import Partition
from ..wire.shared_memory import shared_bytes
from .moving import (
    MOVE_SECONDS_PER_BYTE,
    Input,
    _pickle_per_row,
    _pickle_seconds,
    measure,
    sharing_seconds,
)

#: The fallback's steps, in the order the pipeline takes them (sizes from .moving).
__all__ = ["Clocked", "Input", "Sample", "measure", "sharing_seconds", "worth_a_sample"]

#: Below this many bytes of numeric input (or strings and objects that take as long to
#: pickle), moving it costs little next to a process round trip, so no sample is taken
#: and the run goes to the workers as asked.
SAMPLE_ABOVE_BYTES = 32 * 2**20
#: Rows of the first partition timed in the kernel to estimate the work, at most: the
#: sample grows from a few dozen rows until it takes a measurable time...
SAMPLE_ROWS = 65536
#: ...and no more bytes than this.
SAMPLE_BYTES = 2**23
#: Seconds of the kernel's time the sample may take at most: a slow function is
#: timed on fewer rows (one row already tells that the workers will win).
SAMPLE_SECONDS = 0.05
#: A call on one row this slow sends the run to the workers with no further sample.
SLOW_CALL_SECONDS = 0.05
#: Rows the sample has at least, so that a per-row cost shows beside the per-call one.
MIN_SAMPLE_ROWS = 16
#: The workers must save this many times the estimated moving cost to be used: a wrong
#: "workers" costs up to the whole moving (text runs have been several times slower
#: than serial), a wrong "kernel" at most what the workers would have saved.
MARGIN = 1.5
#: The sample grows until one run of it takes this long (or the budget is spent).
SAMPLE_TARGET_SECONDS = 0.01
#: Shorter timings than this are mostly noise (a busy machine, a cold cache): they may
#: size the sample, never decide on their own.
MEASURABLE_SECONDS = 0.005
#: Seconds of round trip per partition sent to a warm worker.
PARTITION_SECONDS = 1e-3
#: Shared objects cheaper than this to prepare for the workers do not call for a sample.
SHARING_SMALL_SECONDS = 0.02
#: A GroupBy call over this many groups or more is sampled whatever its size: each group
#: costs a value moved back and a step of the assembly, which cheap work cannot repay.
SAMPLE_ABOVE_GROUPS = 1000

#: Seconds per group of the last assembly of each GroupBy method, measured in this kernel.
_assembly_per_group: dict[str, float] = {}


def note_assembly(method: str, seconds: float, groups: int) -> None:
    """Remember what assembling a GroupBy ``method``'s result took (``seconds`` for
    ``groups`` groups): the next verdicts count it, so a cheaper assembly shifts them."""
    if groups > 0:
        _assembly_per_group[method] = seconds / groups

# -- the input: is it big enough to ask? --------------------------------------------------
def worth_a_sample(size: Input, sharing: float) -> bool:
    """Whether moving could cost enough to time the function first: inputs under
    :data:`SAMPLE_ABOVE_BYTES` go to the workers as asked, unless preparing the
    ``shared=`` objects (``sharing`` seconds) is costly on its own."""
    return (size.weighted_bytes >= SAMPLE_ABOVE_BYTES or sharing >= SHARING_SMALL_SECONDS
            or size.groups >= SAMPLE_ABOVE_GROUPS)


def _noted_assembly(finish: Any) -> float | None:
    """Seconds the assembly of ``finish``'s call would take, from the last one of its
    method measured in this kernel (:func:`note_assembly`), or ``None`` before any."""
    per_group = _assembly_per_group.get(finish.call.method)
    return per_group * finish.groups if per_group is not None else None


def moving_bound(size: Input, sharing: float = 0.0) -> float:
    """At most what moving ``size`` to the workers and back costs (seconds): its numbers
    through shared memory and a result as large, its objects pickled both ways, a round
    trip per partition, and preparing the shared objects."""
    return (size.numeric * MOVE_SECONDS_PER_BYTE * 3 + size.pickled_seconds * 3
            + size.partitions * PARTITION_SECONDS + sharing)


def margin_seen(size: Input, jobs: int, compute: float, busy: float,
                finish: Any = None) -> float:
    """The margin a run on the workers showed: what its ``compute`` seconds (the
    workers' own, summed) saved at the load ``busy``, over what moving costs by
    :func:`moving_bound` (and the assembly, for a GroupBy call), with :data:`MARGIN`.
    A run sent to the workers by a remembered verdict checks it so: work that has
    become cheap (the same function, other settings) is sampled again next time."""
    noted = _noted_assembly(finish) if finish is not None else None
    assembly = noted if noted is not None else 0.0
    saved = compute * (1 - 1 / load.speedup(jobs, busy))
    bar = MARGIN * moving_bound(size) + assembly
    return saved / bar if bar > 0 else float("inf")


# -- the sample: pieces of the first partition, each run once, results kept ----------------
@dataclass
class Clocked:
    """The operation, timing each call in the kernel (the sample runs inline): seconds
    less those the kernel waited for a CPU, and the other processes' load at each call."""

    op: Any
    calls: list[tuple[float, Any, Any]] = field(default_factory=list)  # seconds, data, result
    cpus: int = field(default_factory=load.usable_cpus)
    busy: list[float] = field(default_factory=list)

    def __call__(self, part: Any) -> Any:
        if not self.busy:
            self.busy.append(load.busy_elsewhere(self.cpus))
        watch = load.Stopwatch().start()
        result = self.op(part)
        self.calls.append((watch.stop(), part, result))
        self.busy.append(load.busy_elsewhere(self.cpus))
        return result

    @property
    def mean_busy(self) -> float:
        """CPUs' worth of other processes' work, on average while the sample ran."""
        return sum(self.busy) / len(self.busy) if self.busy else load.busy_elsewhere(self.cpus)

    def speedup(self, jobs: int) -> float:
        """How many times the kernel's speed ``jobs`` workers would get now: at the mean
        load read during the sample."""
        return load.speedup(jobs, self.mean_busy, self.cpus)


class Sample:
    """The start of a run, in the kernel: consecutive pieces of the first partition, each
    run once through the engine (their results are the run's own), until the verdict.

    ``pieces()`` yields the next piece only after the previous one ran (the inline backend
    runs each as it is handed out), and stops once :attr:`verdict` is known: ``None`` to
    move the rest to the workers, or why the kernel is faster ("ran in the kernel: ...").
    :meth:`rest` is what is left to run, numbered after the pieces.
    """

    def __init__(self, size: Input, op: Any, jobs: int, sharing: float = 0.0,
                 whole_first: bool = False, finish: Any = None) -> None:
        self.size, self.jobs, self.sharing = size, jobs, sharing
        self.whole_first = whole_first
        self.finish = finish  # the plan's kernel_finish: no assembly if kept here
        self.assembly = 0.0  # seconds the assembly after the workers would take
        self.clock = Clocked(op)
        self.verdict: str | None = None
        #: What the workers save over what moving costs them (1: even), where measured;
        #: a clear margin is remembered for the next call (:mod:`.verdicts`).
        self.margin: float | None = None
        self.taken = 0  # rows of the first partition handed out so far
        self.count = 0  # pieces handed out
        self.one = 0.0  # seconds of a call on one row, once warm

    @property
    def units_done(self) -> int:
        """Rows (or columns, or groups' rows: the partitions' unit) the pieces covered."""
        if self.whole_first:
            return self.size.first_part.size if self.count else 0
        return self.taken

    # each step yields pieces and returns whether the sample is to go on
    def pieces(self) -> Iterator[Partition]:
        """Pieces to run, in order; :attr:`verdict` is set when they stop."""
        if self.whole_first:
            yield from self._first_partition()
            return
        for step in (self._one_call, self._few_rows, self._grown_sample):
            went_on = yield from step()
            if not went_on:
                return

    def _piece(self, rows: int) -> Iterator[Partition]:
        """Run the next ``rows`` rows of the first partition (fewer at its end)."""
        first, start = self.size.first, self.taken
        end = min(len(first), start + rows)
        self.taken, self.count = end, self.count + 1
        yield Partition(self.count - 1, first.iloc[start:end], end - start,
                        f"rows {start}-{end - 1}")

    def _last(self, before: int) -> tuple[float, Any, Any] | None:
        """The piece just run, or ``None`` if it failed (then nothing is decided here)."""
        return self.clock.calls[-1] if len(self.clock.calls) > before else None

    def _left(self) -> int:
        return len(self.size.first) - self.taken

    def _one_call(self) -> Iterator[Partition]:
        """A call on one row: the first only warms up (lazy imports, caches)."""
        for _ in range(2):
            if self._left() < 2:
                return False
            before = len(self.clock.calls)
            yield from self._piece(1)
            if self._last(before) is None:
                return False
        self.one = min(call[0] for call in self.clock.calls[-2:])
        # This slow on one row: the work outweighs moving; a longer sample would drag.
        if self.one > SLOW_CALL_SECONDS:
            self.margin = float("inf")
            return False
        return True

    def _moving_bound(self) -> float:
        return moving_bound(self.size, self.sharing)

    def _few_rows(self) -> Iterator[Partition]:
        """A few rows tell the cost per row from the cost per call: work that clearly
        outweighs any moving needs no longer sample. Two pieces, the faster counting: a
        cold path (the first call of a pandas method in the process) can make the first
        few rows cost milliseconds each, and a verdict from one piece then sent cheap
        work to the workers."""
        fastest = None
        for _ in range(2):
            if self._left() <= MIN_SAMPLE_ROWS:
                return True
            before = len(self.clock.calls)
            yield from self._piece(MIN_SAMPLE_ROWS)
            last = self._last(before)
            if last is None:
                return False
            fastest = last[0] if fastest is None else min(fastest, last[0])
            per_row = max(0.0, fastest - self.one) / (MIN_SAMPLE_ROWS - 1)
            saved, bound = per_row * self.size.rows * self._saved(), self._moving_bound()
            if not (fastest >= MEASURABLE_SECONDS and saved > 4 * bound):
                return True
        self.margin = saved / (MARGIN * bound) if bound > 0 else float("inf")
        return False

    def _saved(self) -> float:
        """The share of the work's time the workers would save, at the load now."""
        return 1 - 1 / self.clock.speedup(self.jobs)

    def _grown_sample(self) -> Iterator[Partition]:
        """Two pieces of each size, four times larger each time, until the faster of the
        two takes a measurable time (a sample of a millisecond is mostly noise, multiplied
        by every row) or the budget is spent; the faster piece of the last size gives the
        cost per row (a pause of the machine or a cold path slows one piece, rarely both),
        and the verdict is made."""
        size = self.size
        per_row_bytes = (size.numeric + size.pickled_bytes) / size.rows
        most_rows = min(SAMPLE_ROWS, int(SAMPLE_BYTES // max(1.0, per_row_bytes)))
        rows, spent, best = min(most_rows, 4 * MIN_SAMPLE_ROWS), 0.0, None
        while self._left() > 0:
            best = None
            for _ in range(2):
                if self._left() <= 0:
                    break
                before = len(self.clock.calls)
                yield from self._piece(rows)
                last = self._last(before)
                if last is None:
                    return False
                spent += last[0]
                if best is None or (len(last[1]) == len(best[1]) and last[0] < best[0]):
                    best = last
            if best is None or (best[0] >= SAMPLE_TARGET_SECONDS or spent >= SAMPLE_SECONDS
                                or rows >= most_rows or len(best[1]) < rows):
                break
            rows = min(most_rows, rows * 4)
        if best is None or len(best[1]) < 2:
            return False
        self.verdict = self._decide(*best, per_row=self._per_row())
        return False

    def _per_row(self) -> float:
        """The lowest cost per row of the grown pieces: of each size, the faster piece
        (a collection of the garbage, a cold path or a pause of the machine slows one
        piece, rarely both); of those, the ones that took a millisecond or more, else
        the largest. Never a slowed piece alone: a 1,000-row piece that met a collection
        of 100,000 strings read as 50 times the function's cost, and sent cheap work to
        the workers (each piece ran once, so no piece can be timed again)."""
        fastest: dict[int, float] = {}
        for seconds, data, _ in self.clock.calls:
            if len(data) >= 4 * MIN_SAMPLE_ROWS:
                fastest[len(data)] = min(seconds, fastest.get(len(data), seconds))
        rates = {rows: max(0.0, seconds - self.one) / (rows - 1)
                 for rows, seconds in fastest.items()}
        measurable = [rates[rows] for rows, seconds in fastest.items()
                      if seconds >= MEASURABLE_SECONDS / 5]
        if measurable:
            return min(measurable)
        if rates:
            return rates[max(rates)]
        last_seconds, last_data, _ = self.clock.calls[-1]
        return max(0.0, last_seconds - self.one) / (len(last_data) - 1)

    def _first_partition(self) -> Iterator[Partition]:
        """Where rows may not be cut anywhere (a function of whole partitions, groups),
        the sample is the first partition itself: run once, kept, and scaled."""
        if self.size.partitions < 2:
            return
        before = len(self.clock.calls)
        self.taken, self.count = len(self.size.first), 1
        yield self.size.first_part
        last = self._last(before)
        if last is None:
            return
        seconds, _, result = last
        out_seconds, _ = (_pickle_per_row(result) if isinstance(result, pd.DataFrame | pd.Series)
                          and len(result) else _pickle_seconds(result))
        if isinstance(result, pd.DataFrame | pd.Series):
            out_seconds *= len(result)
        if self.finish is not None:
            noted = _noted_assembly(self.finish)
            self.assembly = (noted if noted is not None
                             else self.finish.assembly() * self.size.scale)
        self.verdict = self._verdict(seconds * self.size.scale, self.size.pickled_seconds,
                                     out_seconds * self.size.scale,
                                     shared_bytes(result) * self.size.scale)

    def _decide(self, seconds: float, data: Any, result: Any, per_row: float) -> str | None:
        """Compare the time the workers would save with what moving costs them."""
        size = self.size
        compute = self.one * size.partitions + per_row * size.rows
        in_seconds, _ = _pickle_seconds(data)
        out_seconds, _ = _pickle_seconds(result)
        scale = size.rows / len(data)
        return self._verdict(compute, in_seconds * scale, out_seconds * scale,
                             shared_bytes(result) * scale)

    def _verdict(self, compute: float, in_seconds: float, out_seconds: float,
                 out_numeric: float) -> str | None:
        """``None`` (to the workers) when what they save beats moving by the margin."""
        size = self.size
        moving = ((size.numeric + 2 * out_numeric) * MOVE_SECONDS_PER_BYTE
                  + in_seconds + out_seconds
                  + size.partitions * PARTITION_SECONDS + self.sharing)
        speedup = self.clock.speedup(self.jobs)
        saved, bar = compute * (1 - 1 / speedup), MARGIN * moving + self.assembly
        self.margin = saved / bar if bar > 0 else float("inf")
        if saved > bar:
            return None
        total_mb = (size.numeric + size.pickled_bytes) / 2**20
        also = f" (shared objects: {self.sharing:.2g} s of it)" if self.sharing else ""
        if self.assembly:
            also += f", then assembling the result about {self.assembly:.2g} s"
        busy = sum(self.clock.busy) / max(1, len(self.clock.busy))
        if speedup < min(self.jobs, self.clock.cpus):
            also += (f"; with {busy:.1f} CPUs busy elsewhere now, the workers would run "
                     f"only {speedup:.2g}x the kernel's speed")
        return (f"ran in the kernel: the work is about {compute:.2g} s, moving {total_mb:.0f} MB "
                f"to {self.jobs} workers and back would cost about {moving:.2g} s{also} "
                "(pass inline_fallback=False to use the workers anyway)")

    def rest(self, parts: Sequence[Partition]) -> list[Partition]:
        """The partitions still to run after the pieces: the first one's remaining rows,
        then the others, numbered on."""
        if self.whole_first:  # the first ran whole (if at all); the others keep their numbers
            return list(parts[1:] if self.count else parts)
        first, done = parts[0], self.count
        rest: list[Partition] = []
        if self.taken < len(self.size.first):
            end = len(self.size.first) - 1
            rest.append(Partition(done, self.size.first.iloc[self.taken:], first.size - self.taken,
                                  f"rows {self.taken}-{end}"))
        start = done + len(rest)  # (extend grows ``rest`` as it goes)
        rest.extend(replace(p, index=start + i) for i, p in enumerate(parts[1:]))
        return rest
