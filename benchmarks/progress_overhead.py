"""What live progress costs: row-wise apply with and without reporting, interleaved.

Workload: ``df.apply(score, axis=1)`` over 200,000 rows where ``score`` spends about
20 µs in Python per row, on 2 worker processes. Variants, run in turn in every repeat
so that drift of the machine hits them all alike:

``bare``     ``map_partitions(df, lambda p: p.apply(score, axis=1))``: no counting at all
``counted``  ``jp.apply(df, score, axis=1, progress=False)``: workers count rows, nothing drawn
``widget``   the same, drawn by the ipywidgets progress view (one HTML value per tick)
``lab``      the same, drawn into the lab widget's traits
``text``     the same, drawn as tqdm bars (to /dev/null)

The overhead of a variant is its median over ``bare``'s median, minus one, for two
measures: wall time, and CPU time (the workers' plus this process's, read with psutil).
CPU time is what reporting takes from throughput; it stays meaningful on a shared,
busy machine where wall times swing by more than the effect measured.

    .venv/bin/python benchmarks/progress_overhead.py [--rows 200000] [--repeats 5]

``--in-process`` measures what the worker itself pays, on one partition (``rows / 8``),
in this process, by CPU time (the number to trust on a machine shared with other work):
``steps`` is the progress mechanism alone (the partition applied in steps of about
200 ms, the row count written after each); ``RowApply`` is everything the worker wraps
around a row-wise apply (steps, plus the row label kept for error messages and each
returned value kept for dtype inference over all partitions).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd
import psutil

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.progress.text import TextProgress
from jupyter_par.widgets.progress_view import NotebookProgress

LOOPS = 1  # set by calibrate(); travels to the workers with score()


def busy(x: float, loops: int) -> float:
    total = x
    for i in range(loops):
        total = (total * 1.0000001 + i) % 1000.0
    return total


def score(row: pd.Series) -> float:
    return busy(float(row["a"]), LOOPS)  # a Python float: numpy scalars are 3x slower


def calibrate(target_us: float = 20.0) -> int:
    """Loop count that makes ``busy`` take about ``target_us`` microseconds."""
    loops = 100
    while True:
        started = time.process_time()  # CPU time: other load on the machine does not count
        for _ in range(200):
            busy(1.0, loops)
        per_call = (time.process_time() - started) / 200 * 1e6
        if per_call > 5:
            return max(1, round(loops * target_us / per_call))
        loops *= 2


def variants(df: pd.DataFrame, jobs: int) -> dict[str, callable]:
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark
    return {
        "bare": lambda: jp.map_partitions(df, lambda p: p.apply(score, axis=1), jobs=jobs,
                                          progress=False),
        "counted": lambda: jp.apply(df, score, axis=1, jobs=jobs, progress=False),
        "widget": lambda: jp.apply(df, score, axis=1, jobs=jobs,
                                   progress=NotebookProgress(frontend="ipywidgets")),
        "lab": lambda: jp.apply(df, score, axis=1, jobs=jobs,
                                progress=NotebookProgress(frontend="lab")),
        "text": lambda: jp.apply(df, score, axis=1, jobs=jobs,
                                 progress=TextProgress(file=devnull)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()

    global LOOPS
    LOOPS = calibrate()
    df = pd.DataFrame({"a": range(args.rows)}, dtype="float64")
    per_row = min(timeit_rows(df.head(2000)) for _ in range(3))
    print(f"{args.rows:,} rows, {args.jobs} workers, score(): {LOOPS} loops, "
          f"{per_row * 1e6:.1f} µs per row through pandas apply in one process")
    if args.in_process:
        in_process(df.iloc[: max(1, args.rows // 8)], max(args.repeats, 9))
        return

    runs = variants(df, args.jobs)
    expected = df.apply(score, axis=1) if args.rows <= 20_000 else None
    for run in runs.values():  # warm workers and first imports stay outside the clock
        run()
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    parent: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in order:
            cpu_before, own_before = cpu_seconds(), time.process_time()
            started = time.perf_counter()
            result = runs[name]()
            walls[name].append(time.perf_counter() - started)
            cpus[name].append(cpu_seconds() - cpu_before)
            parent[name].append(time.process_time() - own_before)
            if expected is not None:
                pd.testing.assert_series_equal(result, expected)
    jp.shutdown()

    base_wall, base_cpu = statistics.median(walls["bare"]), statistics.median(cpus["bare"])
    print(f"\n{'variant':<9} {'wall s':>7} {'min':>7} {'max':>7} {'wall +%':>8} "
          f"{'cpu s':>7} {'cpu +%':>7} {'of which kernel s':>17}")
    for name in runs:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"{name:<9} {wall:>7.3f} {min(walls[name]):>7.3f} {max(walls[name]):>7.3f} "
              f"{(wall / base_wall - 1) * 100:>+7.1f}% {cpu:>7.3f} "
              f"{(cpu / base_cpu - 1) * 100:>+6.1f}% {statistics.median(parent[name]):>17.3f}")


def in_process(part: pd.DataFrame, repeats: int) -> None:
    """CPU time of one partition: the worker's RowApply against a plain apply."""
    from jupyter_par.planning.operations import RowApply, _in_steps
    from jupyter_par.worker import task as _worker

    class Slot:  # stands in for the shared-memory counter
        def publish(self, rows: int) -> None:
            self.rows = rows

    def fresh() -> None:
        _worker._local.ctx = _worker.TaskContext(slot=Slot(), last_flush=time.monotonic())

    def stepped() -> None:
        fresh()
        _in_steps(part, lambda piece: piece.apply(score, axis=1))

    def row_apply() -> None:
        fresh()
        RowApply(score)(part)

    runs = {"bare": lambda: part.apply(score, axis=1), "steps": stepped, "RowApply": row_apply}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        for name in (list(runs) if repeat % 2 == 0 else list(reversed(runs))):
            started = time.process_time()
            runs[name]()
            cpu[name].append(time.process_time() - started)
    base_min, base_median = min(cpu["bare"]), statistics.median(cpu["bare"])
    print(f"\none partition of {len(part):,} rows, CPU seconds over {repeats} interleaved runs")
    print(f"{'variant':<9} {'min s':>7} {'median s':>9} {'min +%':>7} {'median +%':>10}")
    for name, values in cpu.items():
        print(f"{name:<9} {min(values):>7.3f} {statistics.median(values):>9.3f} "
              f"{(min(values) / base_min - 1) * 100:>+6.1f}% "
              f"{(statistics.median(values) / base_median - 1) * 100:>+9.1f}%")


def cpu_seconds() -> float:
    """CPU time used so far by this process and its warm workers."""
    total = time.process_time()
    for backend in backends.warm_backends().values():
        for pid in backend.describe().get("pids", []):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def timeit_rows(frame: pd.DataFrame) -> float:
    started = time.process_time()
    frame.apply(score, axis=1)
    return (time.process_time() - started) / len(frame)


if __name__ == "__main__":
    main()
