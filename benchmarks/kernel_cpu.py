"""The kernel thread's CPU for one warm jupyter_par call per workload, and its packing part.

Wall-clock figures (``kernel_share.py``) move with other load on the machine; the CPU the
kernel's own thread spends per call moves far less. Each workload runs warm once, then
``--repeat`` times with ``time.thread_time()`` around the call and around every
``ProcessBackend.submit`` (cutting, packing into shared memory and sending a partition);
each result is checked against serial pandas. Medians are printed, one line a workload.

Usage (repository root; compare two trees by running each with its own PYTHONPATH)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/kernel_cpu.py --workloads 1,2,4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import methods  # noqa: E402
import workloads  # noqa: E402

from jupyter_par.backends import processes  # noqa: E402


def measure(number: int, jobs: int, repeat: int) -> dict[str, Any]:
    """Median kernel-thread CPU seconds of the call, and of its submits."""
    data = workloads.make_data(number, workloads.WORKLOADS[number].rows)
    reference = workloads.serial(number, data)
    methods.jupyter_par_(number, data, jobs)  # warm
    submit = processes.ProcessBackend.submit
    spent = [0.0]

    def timed_submit(self: Any, task: Any) -> str:
        started = time.thread_time()
        try:
            return submit(self, task)
        finally:
            spent[0] += time.thread_time() - started

    calls, submits = [], []
    processes.ProcessBackend.submit = timed_submit  # type: ignore[method-assign]
    try:
        for _ in range(repeat):
            spent[0] = 0.0
            started = time.thread_time()
            result = methods.jupyter_par_(number, data, jobs)
            calls.append(time.thread_time() - started)
            submits.append(spent[0])
            if not workloads.same(result, reference):
                msg = f"workload {number}: the result differs from serial pandas"
                raise RuntimeError(msg)
    finally:
        processes.ProcessBackend.submit = submit  # type: ignore[method-assign]
    return {"call": statistics.median(calls), "submit": statistics.median(submits),
            "runs": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="1,2,4")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for number in (int(n) for n in args.workloads.split(",")):
        row = measure(number, args.jobs, args.repeat)
        runs = ", ".join(f"{s * 1000:.1f}" for s in row["runs"])
        print(f"workload {number}: kernel thread CPU per call {row['call'] * 1000:.1f} ms "
              f"(submit {row['submit'] * 1000:.1f} ms; runs {runs}; "
              f"load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
