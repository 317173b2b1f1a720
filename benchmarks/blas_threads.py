"""BLAS threads per worker: a numpy-heavy per-group function at 2 workers, with and
without jupyter_par's limit on the workers' BLAS/OpenMP pools.

Without the limit every worker's OpenBLAS runs one thread per CPU, so 2 workers on
2 CPUs run 4 busy threads (64 workers x 64 threads on a 64-core server); with it each
worker runs CPUs // workers threads. "Without" is reproduced with
``blas_threads=<all CPUs>``, which is what every worker had before the limit existed.

Usage: python benchmarks/blas_threads.py [--groups 24] [--size 320] [--repeat 3]
Prints the best of ``repeat`` wall times for each setting and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jupyter_par as jp
from jupyter_par.machine import limits


def products(group: pd.DataFrame) -> float:
    """Matrix products on one group: the kind of work BLAS runs multi-threaded."""
    a = group[[c for c in group.columns if c != "g"]].to_numpy()
    a = a[:, : a.shape[0]] if a.shape[1] >= a.shape[0] else a
    b = a.T @ a
    for _ in range(12):
        b = b @ b
        b /= np.abs(b).max()
    return float(np.trace(b))


def timed(frame: pd.DataFrame, repeat: int, **options: object) -> tuple[float, pd.Series]:
    jp.shutdown()  # a fresh pool for each setting (the thread limit is set at worker start)
    result = jp.groupby_apply(frame, "g", products, jobs=2, progress=False,
                              inline_fallback=False, start_method="fork", **options)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = jp.groupby_apply(frame, "g", products, jobs=2, progress=False,
                                  inline_fallback=False, start_method="fork", **options)
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=24)
    parser.add_argument("--size", type=int, default=320, help="rows and columns per group")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name in limits.THREAD_VARIABLES:
        os.environ.pop(name, None)  # the user's own settings would win over both runs
    cpus = limits.usable_cpus()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(args.groups * args.size, args.size)))
    frame.columns = [f"c{i}" for i in range(args.size)]
    frame["g"] = np.repeat(np.arange(args.groups), args.size)
    serial = frame.groupby("g").apply(products)

    limited, got_limited = timed(frame, args.repeat)
    unlimited, got_unlimited = timed(frame, args.repeat, blas_threads=cpus)
    jp.shutdown()
    pd.testing.assert_series_equal(got_limited, serial, check_exact=False, rtol=1e-6)
    pd.testing.assert_series_equal(got_unlimited, serial, check_exact=False, rtol=1e-6)
    per_worker = limits.threads_per_worker(2)
    print(f"{cpus} CPUs, 2 workers, {args.groups} groups of {args.size}x{args.size}, "
          f"best of {args.repeat}")
    print(f"  limited   ({per_worker} BLAS thread(s) per worker): {limited:7.3f} s")
    print(f"  unlimited ({cpus} BLAS thread(s) per worker): {unlimited:7.3f} s")
    print(f"  ratio unlimited / limited: {unlimited / limited:.2f}")


if __name__ == "__main__":
    main()
