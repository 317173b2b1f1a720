"""A large global dict read by the function, on every call (issue 18, item 6).

A notebook function that reads a big lookup dict (a global) is mapped over a Series,
call after call, the dict unchanged. Measured in the same run, with warm workers:

* before: the dict travels inside the function, by dill, to every worker on every call
  (``_pickling.FAST_BIG_GLOBALS = False`` restores that path);
* after: it is pickled by the fast C pickler, only to digest it, and sent to each warm
  worker once while its content is unchanged;
* serial: ``series.map(func)`` in this process.

Then the dict changes once: the next call must (and does) see the new value.

Usage: .venv/bin/python benchmarks/big_globals.py [--entries 170000] [--calls 4]
       [--jobs 2] [--start fork]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
import tracemalloc

import pandas as pd

import jupyter_par as jp
from jupyter_par.wire import pickling as _pickling

LOOKUP: dict[str, tuple[int, float, str]] = {}


def price(key: str) -> float:
    entry = LOOKUP[key]
    return entry[1] * 2 + len(entry[2])


def timed_calls(series: pd.Series, calls: int, **options: object) -> list[float]:
    times = []
    expected = series.map(price)
    for _ in range(calls):
        started = time.perf_counter()
        got = jp.map(series, price, **options)
        times.append(time.perf_counter() - started)
        pd.testing.assert_series_equal(got, expected)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=170_000)  # about 43 MB in memory
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--start", default="fork", choices=["fork", "spawn", "forkserver"])
    args = parser.parse_args()
    tracemalloc.start()
    LOOKUP.update((f"sku-{i:07d}", (i, i * 0.5, f"product {i}")) for i in range(args.entries))
    in_memory = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    keys = pd.Series([f"sku-{i:07d}" for i in range(0, args.entries, 15)], name="sku")
    size = len(pickle.dumps(LOOKUP, protocol=5)) / 2**20
    print(f"LOOKUP: {len(LOOKUP):,} entries, {in_memory:.0f} MB in memory, {size:.0f} MB pickled; "
          f"{len(keys):,} keys per call; "
          f"{args.jobs} workers ({args.start})")
    options = {"jobs": args.jobs, "start_method": args.start, "progress": False,
               "inline_fallback": False}
    jp.map(pd.Series(["x"]), len, **options)  # workers started, not counted

    serial = []
    for _ in range(args.calls):
        started = time.perf_counter()
        keys.map(price)
        serial.append(time.perf_counter() - started)

    _pickling.FAST_BIG_GLOBALS = False
    before = timed_calls(keys, args.calls, **options)
    _pickling.FAST_BIG_GLOBALS = True
    after = timed_calls(keys, args.calls, **options)

    def show(name: str, times: list[float]) -> None:
        warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
        print(f"{name:<8} first {times[0]:6.3f} s   warm median {warm:6.3f} s   "
              f"all {', '.join(f'{t:.3f}' for t in times)}")

    show("serial", serial)
    show("before", before)
    show("after", after)

    key = keys.iloc[3]
    LOOKUP[key] = (0, -1.0, "")
    changed = jp.map(keys, price, **options)
    assert changed.iloc[3] == -2.0, changed.iloc[3]
    print("after a change to LOOKUP the next call saw the new value")
    jp.shutdown()


if __name__ == "__main__":
    main()
