"""The kernel thread's CPU time in the two steps of a groupby run it does alone: cutting
the groups (``groups.split``) and assembling the result (issue 28 workload 3, issue 23).

CPU of the kernel thread (``time.thread_time``), not wall time: on a shared, loaded
machine it moves far less. Each call is checked against serial pandas.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/assembly_cpu.py            # medians of 3
    PYTHONPATH=$PWD .venv/bin/python benchmarks/assembly_cpu.py --repeat 5

Rows: workload 3 (``jp.groupby_apply``, 2,000 uneven groups of 1M rows, a per-group
scalar) and ``SeriesGroupBy.par.agg / apply / transform`` with one function over
2,000 groups of 500 rows (the data of ``group_calls.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import group_calls as calls_bench  # noqa: E402
import methods  # noqa: E402
import pandas as pd  # noqa: E402
import workloads  # noqa: E402

import jupyter_par as jp  # noqa: E402
from jupyter_par.planning import group_calls, groups  # noqa: E402

spent: dict[str, list[float]] = {}


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            spent.setdefault(name, []).append(time.thread_time() - started)
    return wrapper


def spread(x: pd.Series) -> float:
    return float(x.max() - x.min())


def top_two(x: pd.Series) -> float:
    return float(x.nlargest(2).sum())


def demean(x: pd.Series) -> pd.Series:
    return x - x.mean()


def measure(label: str, call: Callable[[], Any], expected: Any, repeat: int) -> str:
    call()  # warm: workers started
    spent.clear()
    for _ in range(repeat):
        got = call()
        if not workloads.same(got, expected):
            msg = f"{label}: not pandas' result"
            raise AssertionError(msg)
    parts = ", ".join(f"{name} {statistics.median(v) * 1000:.1f} ms"
                      for name, v in sorted(spent.items(), reverse=True))
    return f"| {label} | {parts} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    groups.split = _timed("split", groups.split)
    groups.replay = _timed("assembly", groups.replay)
    group_calls.assemble = _timed("assembly", group_calls.assemble)
    rows = []
    data = workloads.make_data(3, workloads.WORKLOADS[3].rows)
    rows.append(measure("workload 3: groupby_apply", lambda: methods.jupyter_par_(3, data, 2),
                        workloads.serial(3, data), args.repeat))
    frame = calls_bench.frame(2000, 500)
    for method, func in (("agg", spread), ("apply", top_two), ("transform", demean)):
        def call(method: str = method, func: Any = func) -> Any:
            # a new GroupBy each time, as a notebook cell makes it
            grouped = frame.groupby("k")["v"]
            return getattr(grouped.par, method)(func, jobs=2, progress=False,
                                                inline_fallback=False)
        expected = getattr(frame.groupby("k")["v"], method)(func)
        rows.append(measure(f"SeriesGroupBy.par.{method}", call, expected, args.repeat))
    jp.shutdown()
    print(f"pandas {pd.__version__}, load {os.getloadavg()[0]:.1f}, kernel thread CPU, "
          f"medians of {args.repeat}\n\n| call | kernel thread CPU |\n|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
