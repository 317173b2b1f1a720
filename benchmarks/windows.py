"""rolling(100).apply(f, raw=True) on 1M rows: serial pandas, jupyter_par, pandarallel.

    python benchmarks/windows.py [--rows 1000000] [--jobs 2] [--repeat 2]

f takes about 5 µs on a quiet core (``x.max() - x.min()`` on 100 floats; the table
prints what it took here). jupyter_par runs on warm workers (the first, untimed call
starts them; the cold start is printed apart). pandarallel's
``rolling(...).parallel_apply`` runs in ``.venv-bench-old`` (pandas 2, made by
``benchmarks/setup_envs.sh``), beside a serial and a jupyter_par run in that same
environment, so each ratio compares runs on one pandas. Where that environment is
missing, the table says so.

The overlap's share: each partition carries the 99 rows before it; its cost is the
partitions' time with their overlap minus their time without it (the same op, run
here in one process), as a share of the partitions' time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OLD_ENV = os.path.join(ROOT, ".venv-bench-old", "bin", "python")
WINDOW = 100


def f(x: np.ndarray) -> float:
    return float(x.max() - x.min())


def _data(rows: int) -> pd.Series:
    return pd.Series(np.random.default_rng(0).normal(size=rows))


def _best(call, repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - started)
    return best, value


def measure(rows: int, jobs: int, repeat: int, tools: list[str]) -> dict[str, float]:
    """Seconds per method in this environment (and the checks that they agree)."""
    import jupyter_par as jp

    series = _data(rows)
    out: dict[str, float] = {}
    sample = series.to_numpy()[:WINDOW]
    started = time.perf_counter()
    for _ in range(20000):
        f(sample)
    out["f_us"] = (time.perf_counter() - started) / 20000 * 1e6
    out["serial"], expected = _best(lambda: series.rolling(WINDOW).apply(f, raw=True), repeat)
    options = {"jobs": jobs, "progress": False}
    started = time.perf_counter()
    series.iloc[:5000].rolling(WINDOW).par.apply(f, raw=True, **options)  # starts the workers
    out["jupyter_par_start"] = time.perf_counter() - started
    out["jupyter_par"], got = _best(
        lambda: series.rolling(WINDOW).par.apply(f, raw=True, **options), repeat)
    pd.testing.assert_series_equal(got, expected)
    out["jupyter_par_with_workers"] = float(jp.last_run().with_workers)
    if "pandarallel" in tools:
        from pandarallel import pandarallel

        pandarallel.initialize(nb_workers=jobs, progress_bar=False, verbose=0)
        out["pandarallel"], got = _best(
            lambda: series.rolling(WINDOW).parallel_apply(f, raw=True), repeat)
        pd.testing.assert_series_equal(got, expected)
    if "overlap" in tools:
        out.update(overlap_share(series, jobs))
    return out


def overlap_share(series: pd.Series, jobs: int) -> dict[str, float]:
    """The partitions' time with and without their overlap rows, run in this process."""
    from jupyter_par.planning import windows
    from jupyter_par.worker import task

    plan = windows.plan(series.rolling(WINDOW), f, True, None, None, None, None, jobs, None)
    op = plan.op
    with_overlap = without = 0.0
    overlap_rows = 0
    task.enter(task.TaskContext())
    for part in plan.parts:
        data = part.data
        bare = windows.Windowed(data.data.iloc[data.own_start:], 0, len(data))
        overlap_rows += data.own_start
        for target, add in ((data, "with"), (bare, "without")):
            started = time.perf_counter()
            op(target)
            took = time.perf_counter() - started
            if add == "with":
                with_overlap += took
            else:
                without += took
    return {"partitions": float(len(plan.parts)), "overlap_rows": float(overlap_rows),
            "overlap_share": max(0.0, with_overlap - without) / with_overlap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        found = measure(args.rows, args.jobs, args.repeat, args.child.split(","))
        print(json.dumps({**found, "pandas": pd.__version__}))
        return
    runs = {f"pandas {pd.__version__}": measure(args.rows, args.jobs, args.repeat, ["overlap"])}
    if os.path.exists(OLD_ENV):
        child = subprocess.run(
            [OLD_ENV, __file__, "--rows", str(args.rows), "--jobs", str(args.jobs),
             "--repeat", str(args.repeat), "--child", "pandarallel"],
            capture_output=True, text=True, check=True)
        old = json.loads(child.stdout.strip().splitlines()[-1])
        runs[f"pandas {old.pop('pandas')} (.venv-bench-old)"] = old
    else:
        print("pandarallel: .venv-bench-old is missing (bash benchmarks/setup_envs.sh); "
              "no pandarallel row")
    print(f"rolling({WINDOW}).apply(f, raw=True), {args.rows:,} rows, {args.jobs} workers, "
          f"best of {args.repeat}")
    print(f"{'environment':34} {'method':14} {'seconds':>8} {'speedup':>8}")
    for env, seconds in runs.items():
        for method in ("serial", "jupyter_par", "pandarallel"):
            if method in seconds:
                print(f"{env:34} {method:14} {seconds[method]:8.2f} "
                      f"{seconds['serial'] / seconds[method]:7.2f}x")
        print(f"{'':34} f took {seconds['f_us']:.1f} µs a call here; jupyter_par's first "
              f"call (starting the workers) {seconds['jupyter_par_start']:.2f} s")
    main_run = next(iter(runs.values()))
    print(f"overlap: {int(main_run['overlap_rows']):,} rows over "
          f"{int(main_run['partitions'])} partitions cost "
          f"{100 * main_run['overlap_share']:.2f}% of the partitions' time")


if __name__ == "__main__":
    main()
