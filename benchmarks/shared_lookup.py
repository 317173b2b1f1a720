"""A large lookup table read by every partition: ``shared=`` against capturing it (issue 8).

The lookup (a numeric DataFrame of ``--mb`` MB) is used by a cheap function over a
small frame cut into many partitions. Measured in the same run, with warm workers:

* captured: the function refers to the table as a global, so it travels inside the
  function (dill), once per worker per run;
* shared: ``shared={"table": table}``, read as ``jp.shared["table"]``; the first run
  writes one shared-memory segment that each worker maps, a second run with the table
  unchanged loads nothing in the workers.

Also reported: the summed PSS of the process tree after each run (shared pages are
counted once, split between the processes that map them).

Usage: .venv/bin/python benchmarks/shared_lookup.py [--mb 200] [--jobs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import pandas as pd
import psutil

import jupyter_par as jp

MB = 2**20
table: pd.DataFrame | None = None


def tree_pss() -> int:
    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total


def with_captured(part: pd.DataFrame) -> pd.Series:
    return part["k"].map(lambda k: table["v0"].iat[k])


def with_shared(part: pd.DataFrame) -> pd.Series:
    lookup = jp.shared["table"]
    return part["k"].map(lambda k: lookup["v0"].iat[k])


def main() -> None:
    global table
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    rows = args.mb * MB // (8 * 8)
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.random((rows, 8)), columns=[f"v{i}" for i in range(8)])
    frame = pd.DataFrame({"k": rng.integers(0, rows, 20_000)})
    want = frame["k"].map(lambda k: table["v0"].iat[k])
    options = {"jobs": args.jobs, "progress": False, "partitions": 16}
    jp.map_partitions([1, 2], len, jobs=args.jobs, progress=False)  # warm workers

    print(f"lookup {table.memory_usage().sum() / MB:.0f} MB, {len(frame)} rows in 16 partitions, "
          f"jobs={args.jobs}")
    print("| how | run | seconds | tree PSS after MB |")
    print("|---|---|---|---|")
    for how, func, extra in (("captured global", with_captured, {}),
                             ("shared=", with_shared, {"shared": {"table": table}})):
        for run in (1, 2):
            started = time.perf_counter()
            got = jp.map_partitions(frame, func, **options, **extra)
            seconds = time.perf_counter() - started
            pd.testing.assert_series_equal(got, want)
            print(f"| {how} | {run} | {seconds:.2f} | {tree_pss() / MB:.0f} |", flush=True)
    jp.shutdown()


if __name__ == "__main__":
    main()
