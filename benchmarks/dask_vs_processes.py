"""Processes (2 workers) against a local Dask cluster (2 workers) on a CPU-bound apply.

The row function spends about 20 µs in pure Python per row (calibrated on this machine
at start), over 200,000 rows: the case where the per-task overhead of Dask, the
per-partition shipping and the progress events all show. Both backends are warmed up
first, so the table compares steady runs; the first (cold) run, which includes starting
the workers or the cluster, is shown apart. Every result is checked against serial
pandas, measured in the same run. Next to wall times, the CPU seconds of every process
of the run are measured, since wall times on a shared machine mostly measure its load.

Usage::

    .venv/bin/python benchmarks/dask_vs_processes.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import psutil

import jupyter_par as jp

#: Loop length giving about 20 µs per call; set by calibrate().
SPIN = 100


def row_cost(row: pd.Series) -> float:
    """About 20 µs of plain Python per row, then a value that depends on the row."""
    total = 0.0
    x = row["x"]
    for i in range(SPIN):
        total += (i * x) % 7.0
    return total + row["y"]


def calibrate(target: float = 20e-6) -> float:
    """Set SPIN so that the loop in row_cost takes about ``target`` seconds."""
    global SPIN
    row = pd.Series({"x": 1.5, "y": 2.0})
    values = {"x": 1.5, "y": 2.0}  # the loop alone, without pandas' per-row cost
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(2000):
            row_cost(values)
        per_call = (time.perf_counter() - started) / 2000
        SPIN = max(1, round(SPIN * target / per_call))
    started = time.perf_counter()
    for _ in range(2000):
        row_cost(row)
    return (time.perf_counter() - started) / 2000


def cpu_by_process() -> dict[int, float]:
    """CPU seconds (user + system) so far of this process and each of its descendants."""
    me = psutil.Process()
    seconds = {}
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            seconds[proc.pid] = times.user + times.system
    return seconds


def measure(call: Callable[[], Any]) -> tuple[float, float, float, Any]:
    """Wall seconds, total CPU seconds, and CPU seconds of the busiest single process.

    On a loaded machine the wall time says little; the busiest process's CPU bounds how
    fast the run could be with a free core per process, whatever else the machine does.
    """
    before = cpu_by_process()
    started = time.perf_counter()
    result = call()
    wall = time.perf_counter() - started
    used = [t - before.get(pid, 0.0) for pid, t in cpu_by_process().items()]
    return wall, sum(used), max(used), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    per_row = calibrate()
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.random(args.rows) * 10, "y": rng.random(args.rows)})
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start, Python {platform.python_version()}, "
          f"pandas {pd.__version__}, jupyter_par {jp.__version__}")
    print(f"{args.rows:,} rows, row function ~{per_row * 1e6:.1f} µs per row "
          f"(~20 µs loop + Series access), {args.jobs} workers, median of {args.repeat} "
          "runs, methods interleaved\n")

    methods = {
        "serial pandas (df.apply)": None,
        f"jupyter_par processes, {args.jobs} workers": {"backend": "processes"},
        f"jupyter_par dask LocalCluster, {args.jobs} workers": {"backend": "dask"},
    }
    cold: dict[str, float] = {}
    for label, options in methods.items():  # start the workers; time it apart
        if options is not None:
            started = time.perf_counter()
            jp.apply(df.head(2000), row_cost, axis=1, **options, jobs=args.jobs,
                     progress=False, inline_fallback=False)
            cold[label] = time.perf_counter() - started
    walls: dict[str, list[float]] = {label: [] for label in methods}
    busiest: dict[str, list[float]] = {label: [] for label in methods}
    total: dict[str, list[float]] = {label: [] for label in methods}
    expected = None
    try:
        for _ in range(args.repeat):
            for label, options in methods.items():
                if options is None:
                    call = partial(df.apply, row_cost, axis=1)
                else:
                    call = partial(jp.apply, df, row_cost, axis=1, **options, jobs=args.jobs,
                                   progress=False, inline_fallback=False)
                wall, cpu, top, result = measure(call)
                walls[label].append(wall)
                total[label].append(cpu)
                busiest[label].append(top)
                if expected is None:
                    expected = result
                pd.testing.assert_series_equal(result, expected)
    finally:
        jp.shutdown()

    med = statistics.median
    serial_wall, serial_cpu = med(next(iter(walls.values()))), med(next(iter(total.values())))
    processes_wall = med(list(walls.values())[1])
    print(f"{'method':<44} {'cold start':>10} {'wall':>8} {'vs serial':>9} "
          f"{'vs processes':>12} {'CPU total':>9} {'CPU bound':>9}  wall runs (s)")
    for label in methods:
        wall = med(walls[label])
        start = f"{cold[label]:.2f} s" if label in cold else "-"
        print(f"{label:<44} {start:>10} {wall:>6.2f} s {serial_wall / wall:>8.2f}x "
              f"{processes_wall / wall:>11.2f}x {med(total[label]):>7.2f} s "
              f"{serial_cpu / med(busiest[label]):>8.2f}x  "
              f"{', '.join(f'{t:.2f}' for t in walls[label])}")
    print("\nCPU bound: serial CPU seconds over those of the busiest single process, i.e. "
          "the speedup\nthe run would reach with a free core per process; wall times "
          "depend on the machine's load.")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
