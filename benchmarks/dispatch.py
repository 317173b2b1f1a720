"""Dispatch cost: how many no-op partitions per second the kernel hands out and collects.

With no work in the partitions, what is left is each tool's own cost per task: the
kernel pickling it, sending it, reading the result back, bookkeeping. All methods run
side by side in this one process, warm (pool started and one batch run first), each
task one no-op call on one small item:

* jupyter_par ``processes``, ``threads`` and ``dask`` (a local cluster) through the
  API (``jp.map`` with one item per partition, in-kernel fallback off);
* ``multiprocess.Pool.map(chunksize=1)`` (the dill-based pool jupyter_par builds on);
* loky through ``joblib.Parallel`` (``batch_size=1``), where joblib is installed
  (``bash benchmarks/setup_envs.sh`` installs it; it is no dependency of the project);
* ``distributed.Client.map`` + ``gather`` on the same kind of local cluster.

Columns: partitions per second (wall), wall per partition, and the kernel's CPU per
partition: the kernel process's CPU (all its threads; for the threads backend this
includes the workers, which are threads of the kernel) and, for jupyter_par, the
engine thread's own CPU handing out partitions and reading their results
(``RunOutcome.timings.kernel_dispatch``).

Usage (repository root)::

    .venv/bin/python benchmarks/dispatch.py                 # ~1 min on 2 CPUs
    .venv/bin/python benchmarks/dispatch.py --partitions 500 --dask-partitions 200
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jupyter_par as jp  # noqa: E402
from jupyter_par.run import engine  # noqa: E402


def noop(x: Any) -> Any:
    """No work: what is measured is the tool."""
    return x


@contextlib.contextmanager
def engine_outcomes() -> Iterator[list[Any]]:
    """Collect the RunOutcome of every engine run inside the block."""
    seen: list[Any] = []
    original = engine.run

    def run(*args: Any, **kwargs: Any) -> Any:
        outcome = original(*args, **kwargs)
        seen.append(outcome)
        return outcome

    engine.run = run
    try:
        yield seen
    finally:
        engine.run = original


def timed(call: Callable[[], Any], n: int) -> dict[str, float]:
    """Wall and kernel-process CPU of one call that runs ``n`` tasks."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if list(result) != list(range(n)):
        msg = "wrong result"
        raise AssertionError(msg)
    return {"wall": wall, "cpu": cpu}


def jupyter_par_method(backend: str, jobs: int) -> Callable[[int], dict[str, float]]:
    def run(n: int) -> dict[str, float]:
        options = {"jobs": jobs, "backend": backend, "progress": False, "inline_fallback": False}
        jp.map(list(range(4 * jobs)), noop, partitions=4 * jobs, **options)  # warm
        with engine_outcomes() as seen:
            row = timed(lambda: jp.map(list(range(n)), noop, partitions=n, **options), n)
        row["engine"] = seen[-1].timings.kernel_dispatch
        if backend == "dask":  # its local cluster would compete with the next methods
            jp.shutdown()
        return row

    return run


def pool_method(jobs: int) -> Callable[[int], dict[str, float]]:
    def run(n: int) -> dict[str, float]:
        import multiprocess

        with multiprocess.Pool(jobs) as pool:
            pool.map(noop, range(4 * jobs), chunksize=1)
            return timed(lambda: pool.map(noop, range(n), chunksize=1), n)

    return run


def loky_method(jobs: int) -> Callable[[int], dict[str, float]] | None:
    try:
        from joblib import Parallel, delayed
    except ImportError:
        return None

    def run(n: int) -> dict[str, float]:
        with Parallel(n_jobs=jobs, backend="loky", batch_size=1) as parallel:
            parallel(delayed(noop)(i) for i in range(4 * jobs))
            return timed(lambda: parallel(delayed(noop)(i) for i in range(n)), n)

    return run


def distributed_method(jobs: int) -> Callable[[int], dict[str, float]]:
    def run(n: int) -> dict[str, float]:
        import distributed

        with distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster, set_as_default=False) as client:
            client.gather(client.map(noop, range(4 * jobs), pure=False))
            return timed(lambda: client.gather(client.map(noop, range(n), pure=False)), n)

    return run


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| method | workers | partitions | wall (s) | partitions / s | wall per partition "
             "| kernel CPU per partition | engine dispatch CPU per partition |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['method']} | {r['workers']} | | skipped: {r['skipped']} "
                         "| | | | |")
            continue
        n = r["partitions"]
        engine_cpu = f"{1e6 * r['engine'] / n:.0f} µs" if "engine" in r else ""
        lines.append(
            f"| {r['method']} | {r['workers']} | {n} | {r['wall']:.2f} | {n / r['wall']:,.0f} "
            f"| {1e6 * r['wall'] / n:,.0f} µs | {1e6 * r['cpu'] / n:,.0f} µs | {engine_cpu} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=2000, help="for local pools")
    parser.add_argument("--dask-partitions", type=int, default=500, help="for dask")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    jobs = args.jobs
    threads = jobs * 4
    plan: list[tuple[str, int, int, Callable[[int], dict[str, float]] | None, str]] = [
        ("jupyter_par processes", jobs, args.partitions, jupyter_par_method("processes", jobs),
         ""),
        ("jupyter_par threads", threads, args.partitions,
         jupyter_par_method("threads", threads), ""),
        ("multiprocess.Pool (chunksize=1)", jobs, args.partitions, pool_method(jobs), ""),
        ("loky (joblib, batch_size=1)", jobs, args.partitions, loky_method(jobs),
         "joblib is not installed (bash benchmarks/setup_envs.sh installs it)"),
        ("jupyter_par dask (local cluster)", jobs, args.dask_partitions,
         jupyter_par_method("dask", jobs), ""),
        ("distributed Client.map (local cluster)", jobs, args.dask_partitions,
         distributed_method(jobs), ""),
    ]
    rows = []
    for name, workers, n, method, why_not in plan:
        if method is None:
            rows.append({"method": name, "workers": workers, "skipped": why_not})
            continue
        row = {"method": name, "workers": workers, "partitions": n, **method(n)}
        print(f"{name}: {1e6 * row['wall'] / n:,.0f} µs per partition", file=sys.stderr)
        rows.append(row)
    jp.shutdown()
    print(f"\n{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, no-op partitions\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
