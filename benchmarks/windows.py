"""rolling(100).apply(f, raw=True) on 1M rows: serial pandas, jupyter_par, pandarallel.

    python benchmarks/windows.py [--rows 1000000] [--jobs 2] [--repeat 2]

f takes about 5 µs on a quiet core (``x.max() - x.min()`` on 100 floats; the table
prints what it took here). jupyter_par runs on warm workers (the first, untimed call
starts them; the cold start is printed apart). pandarallel's
``rolling(...).parallel_apply`` runs in ``.venv-bench-old`` (pandas 2, made by
``benchmarks/setup_envs.sh``), beside a serial and a jupyter_par run in that same
environment, so each ratio compares runs on one pandas. Where that environment is
missing, the table says so.

The overlap's share: each partition carries the 100 rows before it (its windows skip
the function there); one overlap row's cost is measured on a partition given 200,000
of them (CPU time, run here in one process), times the overlap rows of the real plan,
as a share of the partitions' CPU time.
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
    out["explain"] = jp.last_run().explain
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
    """What the overlap rows cost, as a share of the partitions' CPU time.

    700 rows among a million are lost in the noise of timing whole partitions, so the
    cost of one overlap row is measured where it shows: one partition timed with 200,000
    rows of overlap and with none (CPU time, best of three each), the difference divided
    by 200,000, times the overlap rows the real plan carries.
    """
    from jupyter_par.planning import windows
    from jupyter_par.worker import task

    plan = windows.plan(series.rolling(WINDOW), f, True, None, None, None, None, jobs, None)
    op = plan.op
    task.enter(task.TaskContext())
    overlap_rows = sum(p.data.own_start for p in plan.parts)
    last = plan.parts[-1].data
    own = last.data.iloc[last.own_start:]
    extra = min(200_000, len(series) - len(own))
    wide = windows.Windowed(series.iloc[len(series) - len(own) - extra:], extra,
                            extra + len(own))
    bare = windows.Windowed(own, 0, len(own))

    def cpu(part: windows.Windowed) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            op(part)
            best = min(best, time.process_time() - started)
        return best

    per_row = max(0.0, cpu(wide) - cpu(bare)) / extra
    total = cpu(bare) * len(series) / len(own)
    return {"partitions": float(len(plan.parts)), "overlap_rows": float(overlap_rows),
            "overlap_share": per_row * overlap_rows / total,
            "overlap_us_per_row": per_row * 1e6}


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
        print(f"{'':34} jupyter_par's own account: {seconds['explain']}")
    main_run = next(iter(runs.values()))
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"overlap: {int(main_run['overlap_rows']):,} rows over "
          f"{int(main_run['partitions'])} partitions, {main_run['overlap_us_per_row']:.2f} µs "
          f"each, cost {100 * main_run['overlap_share']:.3f}% of the partitions' CPU time")


if __name__ == "__main__":
    main()
