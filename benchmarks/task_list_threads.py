"""A list of I/O-bound tasks on many threads (issue 8): elapsed against serial.

Each task is a dict (``{"query_id": i, "sql": ...}``) and sleeps 20 ms, standing for a
database query or an HTTP call. Measured in the same run: a serial loop, the stdlib
``ThreadPoolExecutor(64).map`` recipe, and ``jp.map(tasks, func, backend="threads",
jobs=J)`` for several J. Results are checked against the serial loop.

Usage: .venv/bin/python benchmarks/task_list_threads.py [--tasks 256] [--sleep 0.02]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import jupyter_par as jp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=256)
    parser.add_argument("--sleep", type=float, default=0.02)
    args = parser.parse_args()
    tasks = [{"query_id": i, "sql": f"SELECT * FROM t WHERE id = {i}"} for i in range(args.tasks)]

    def run_query(task: dict) -> dict:
        time.sleep(args.sleep)
        return {"query_id": task["query_id"], "n": len(task["sql"])}

    def timed(call) -> tuple[float, list]:
        started = time.perf_counter()
        result = call()
        return time.perf_counter() - started, result

    serial_s, want = timed(lambda: [run_query(t) for t in tasks])
    rows = [("serial loop", serial_s)]
    with ThreadPoolExecutor(64) as pool:
        pool_s, got = timed(lambda: list(pool.map(run_query, tasks)))
    assert got == want
    rows.append(("ThreadPoolExecutor(64).map", pool_s))
    for jobs in (8, 32, 64):
        jp.map(tasks[:jobs], run_query, backend="threads", jobs=jobs, progress=False)  # warm
        elapsed, got = timed(lambda j=jobs: jp.map(tasks, run_query, backend="threads", jobs=j,
                                                   progress=False))
        assert got == want
        rows.append((f"jp.map threads jobs={jobs}", elapsed))
    jp.shutdown()
    print(f"{args.tasks} tasks x {args.sleep * 1000:.0f} ms sleep")
    print("| method | seconds | speedup vs serial |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {serial_s / seconds:.1f}x |")


if __name__ == "__main__":
    main()
