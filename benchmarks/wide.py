"""Orchestration at width without the cores: 64 worker processes, 256 threads, 2 CPUs.

Every partition only sleeps (``time.sleep``, no CPU), so the ideal wall time is known
exactly: ``waves x seconds`` with ``waves = partitions / workers``. What the run
takes beyond that is jupyter_par's: handing out partitions, reading results,
progress. Target: within 5% of ideal. The kernel's CPU during the run is printed
(process CPU; the engine thread's own CPU between dispatches, from
``RunOutcome.timings``), and the progress updates the view received: how many, and
the longest gap between two (the view redraws about ten times a second).

The workers are started (and warmed) before the timed run: starting 64 processes is
a one-time cost of the first run, stated separately.

Usage (repository root)::

    .venv/bin/python benchmarks/wide.py                  # 64 processes and 256 threads, ~40 s
    .venv/bin/python benchmarks/wide.py --processes 32 --threads 128 --seconds 0.5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jupyter_par as jp  # noqa: E402
from jupyter_par.run import engine  # noqa: E402


def nap(seconds: float) -> float:
    """A partition that waits and uses no CPU (a download, a remote call)."""
    time.sleep(seconds)
    return seconds


class Updates:
    """A progress sink that notes when each update came and the last state."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last: Any = None

    def __call__(self, progress: Any) -> None:
        self.times.append(time.perf_counter())
        self.last = progress

    def longest_gap(self) -> float:
        return max((b - a for a, b in zip(self.times, self.times[1:])), default=0.0)


def measure(backend: str, workers: int, waves: int, seconds: float) -> dict[str, Any]:
    """Start ``workers`` (timed apart), then one timed run of ``waves x workers`` naps."""
    # Wider than the machine on purpose: sleeping workers need no CPU.
    options = {"jobs": workers, "backend": backend, "inline_fallback": False,
               "oversubscribe": True}
    started = time.perf_counter()
    jp.map([0.0] * workers, nap, partitions=workers, progress=False, **options)
    startup = time.perf_counter() - started
    updates = Updates()
    outcomes: list[Any] = []
    original = engine.run

    def run(*args: Any, **kwargs: Any) -> Any:
        outcomes.append(original(*args, **kwargs))
        return outcomes[-1]

    engine.run = run
    n = waves * workers
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        result = jp.map([seconds] * n, nap, partitions=n, progress=updates, **options)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        engine.run = original
    ideal = waves * seconds
    timings = outcomes[-1].timings
    busy = {w.worker for w in updates.last.workers if w.partitions_done}
    return {
        "backend": backend, "workers": workers, "partitions": n, "seconds": seconds,
        "startup": startup, "wall": wall, "ideal": ideal, "over": wall / ideal - 1,
        "kernel_cpu": cpu, "engine_cpu": timings.kernel_between,
        "dispatch_cpu": timings.kernel_dispatch,
        "updates": len(updates.times), "longest_gap": updates.longest_gap(),
        "workers_used": len(busy), "correct": result == [seconds] * n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=64)
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument("--waves", type=int, default=4, help="partitions per worker")
    parser.add_argument("--seconds", type=float, default=1.0, help="sleep per partition")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rows = []
    for backend, workers in (("processes", args.processes), ("threads", args.threads)):
        row = measure(backend, workers, args.waves, args.seconds)
        jp.shutdown()
        rows.append(row)
        print(f"{backend} x {workers}: {row['wall']:.3f} s for ideal {row['ideal']:.3f} s "
              f"({100 * row['over']:+.1f}%)", file=sys.stderr)
    from jupyter_par.backends.processes import default_start_method

    print(f"\n{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, start method "
          f"{default_start_method()}, {args.waves} partitions per worker of "
          f"{args.seconds:g} s sleep\n")
    print("| backend | workers | partitions | ideal (s) | wall (s) | over ideal | target ≤ 5% "
          "| kernel CPU (s) | engine thread CPU (s) | of which dispatch (s) | progress updates "
          "| longest gap (s) "
          "| workers used | start-up, first run (s) | correct |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        met = "met" if r["over"] <= 0.05 else "NOT met"
        print(f"| {r['backend']} | {r['workers']} | {r['partitions']} | {r['ideal']:.2f} "
              f"| {r['wall']:.3f} | {100 * r['over']:+.1f}% | {met} "
              f"| {r['kernel_cpu']:.3f} | {r['engine_cpu']:.3f} | {r['dispatch_cpu']:.3f} "
              f"| {r['updates']} "
              f"| {r['longest_gap']:.3f} | {r['workers_used']} | {r['startup']:.2f} "
              f"| {'yes' if r['correct'] else 'NO'} |")
    return 0 if all(r["correct"] for r in rows) else 1  # a timing target is read, not failed


if __name__ == "__main__":
    sys.exit(main())
