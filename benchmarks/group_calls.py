"""GroupBy transform / agg with a ~50 µs function per group: serial pandas, jupyter_par's
``.par`` and pandarallel's ``groupby(...).parallel_apply``, on 2 workers (issue 23).

    python benchmarks/group_calls.py                       # this Python only
    python benchmarks/group_calls.py --old .venv-bench-old/bin/python
    python benchmarks/group_calls.py --work-us 500          # where the work dominates

pandarallel needs pandas 2 (see setup_envs.sh), so ``--old`` runs the same measurements
in that environment too: serial pandas and jupyter_par there as well, so each row's
ratio is against serial pandas in the same environment and the same run. Each figure
is the best of ``--repeat`` runs after one warm-up (warm workers). Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

#: Seconds of work per group call (a spin: the same on every machine load).
WORK = 50e-6


def set_work(seconds: float) -> None:
    """Seconds of work per group call, for this process (the workers read it with the
    function: a global of this module)."""
    global WORK
    WORK = seconds


def spin(seconds: float | None = None) -> None:
    end = time.perf_counter() + (WORK if seconds is None else seconds)
    while time.perf_counter() < end:
        pass


def demean(x: pd.Series) -> pd.Series:
    spin()
    return x - x.mean()


def spread(x: pd.Series) -> float:
    spin()
    return float(x.max() - x.min())


def frame(groups: int, rows_per_group: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = groups * rows_per_group
    return pd.DataFrame({"k": rng.permutation(np.repeat(np.arange(groups), rows_per_group)),
                         "v": rng.normal(size=n)})


def best(call: Any, repeat: int) -> tuple[float, Any]:
    call()  # warm-up: workers started, imports done
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = call()
        times.append(time.perf_counter() - started)
    return min(times), value


def measure(groups: int, rows: int, repeat: int, jobs: int) -> dict[str, Any]:
    """Every method available in this Python: {(workload, method): seconds}."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import jupyter_par as jp

    df = frame(groups, rows)
    grouped = df.groupby("k")["v"]
    par = {"jobs": jobs, "progress": False}
    out: dict[str, Any] = {"pandas": pd.__version__, "times": {}}
    cases = {
        "transform": (lambda: grouped.transform(demean),
                      lambda: grouped.par.transform(demean, **par),
                      lambda: df.groupby("k").parallel_apply(lambda g: demean(g["v"]))),
        "agg": (lambda: grouped.agg(spread),
                lambda: grouped.par.agg(spread, **par),
                lambda: df.groupby("k").parallel_apply(lambda g: spread(g["v"]))),
    }
    try:
        from pandarallel import pandarallel

        pandarallel.initialize(nb_workers=jobs, progress_bar=False, verbose=0)
    except ImportError:
        pandarallel = None
    for workload, (serial, ours, theirs) in cases.items():
        serial_s, expected = best(serial, repeat)
        ours_s, got = best(ours, repeat)
        pd.testing.assert_series_equal(got, expected)
        out["times"][f"{workload}|serial pandas"] = serial_s
        out["times"][f"{workload}|jupyter_par .par"] = ours_s
        if pandarallel is not None:
            theirs_s, _ = best(theirs, repeat)
            out["times"][f"{workload}|pandarallel parallel_apply"] = theirs_s
    jp.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=50, help="rows per group")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work-us", type=float, default=50.0,
                        help="microseconds of work per group call")
    parser.add_argument("--old", help="a Python with pandas 2 and pandarallel")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_work(args.work_us / 1e6)
    if args.child:
        print(json.dumps(measure(args.groups, args.rows, args.repeat, args.jobs)))
        return
    pythons = [sys.executable, *([args.old] if args.old else [])]
    print(f"{args.groups} groups x {args.rows} rows, ~{WORK * 1e6:.0f} us per group call, "
          f"{args.jobs} workers, best of {args.repeat}; {os.cpu_count()} CPUs")
    print(f"{'pandas':8} {'workload':10} {'method':28} {'seconds':>8} {'vs serial':>9}")
    for python in pythons:
        run = subprocess.run([python, __file__, "--child", "--groups", str(args.groups),
                              "--rows", str(args.rows), "--repeat", str(args.repeat),
                              "--jobs", str(args.jobs), "--work-us", str(args.work_us)],
                             capture_output=True, text=True,
                             check=False)
        if run.returncode != 0:
            print(f"{python}: failed\n{run.stderr[-2000:]}")
            continue
        data = json.loads(run.stdout.strip().splitlines()[-1])
        times = data["times"]
        if not any("pandarallel" in key for key in times):
            print(f"{data['pandas']:8} (pandarallel is not installed in {python})")
        for key, seconds in times.items():
            workload, method = key.split("|")
            ratio = times[f"{workload}|serial pandas"] / seconds
            print(f"{data['pandas']:8} {workload:10} {method:28} {seconds:8.3f} {ratio:8.2f}x")


if __name__ == "__main__":
    main()
