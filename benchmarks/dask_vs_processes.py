"""Processes (2 workers) against a local Dask cluster (2 workers) on a CPU-bound apply.

The row function spends about 20 µs in pure Python per row (calibrated on this machine
at start), over 200,000 rows: the case where the per-task overhead of Dask, the
per-partition shipping and the progress events all show. Both backends are warmed up
first, so the table compares steady runs; the first (cold) run, which includes starting
the workers or the cluster, is shown apart. Every result is checked against serial
pandas, measured in the same run.

Usage::

    .venv/bin/python benchmarks/dask_vs_processes.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import pandas as pd

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
            jp.apply(df.head(2000), row_cost, axis=1, **options, jobs=args.jobs, progress=False)
            cold[label] = time.perf_counter() - started
    times: dict[str, list[float]] = {label: [] for label in methods}
    expected = None
    try:
        for _ in range(args.repeat):
            for label, options in methods.items():
                started = time.perf_counter()
                if options is None:
                    result = df.apply(row_cost, axis=1)
                else:
                    result = jp.apply(df, row_cost, axis=1, **options, jobs=args.jobs,
                                      progress=False)
                times[label].append(time.perf_counter() - started)
                if expected is None:
                    expected = result
                pd.testing.assert_series_equal(result, expected)
    finally:
        jp.shutdown()

    median = {label: statistics.median(t) for label, t in times.items()}
    serial, processes = list(median.values())[:2]
    print(f"{'method':<44} {'cold start':>10} {'median':>8} {'vs serial':>9} "
          f"{'vs processes':>12}  runs (s)")
    for label, value in median.items():
        start = f"{cold[label]:.2f} s" if label in cold else "-"
        print(f"{label:<44} {start:>10} {value:>6.2f} s {serial / value:>8.2f}x "
              f"{processes / value:>11.2f}x  {', '.join(f'{t:.2f}' for t in times[label])}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
