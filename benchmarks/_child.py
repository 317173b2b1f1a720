"""Run one method on one workload in this fresh process; print one JSON line.

The result is first checked against serial pandas (the ``serial`` method of this
environment saves it, the others load it), then the run is timed, then run once more
while a thread samples the memory of the whole process tree. The CPU seconds the
tree spent in the timed runs are recorded too: other load on the machine distorts
them far less than wall time.
Memory is PSS (proportional set size) summed over the tree: RSS would count
shared-memory pages once per process that maps them, which would charge
shared-memory transports several times for the same bytes.

Usage: python _child.py WORKLOAD METHOD JOBS ROWS REFERENCE_FILE REPEAT
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import statistics
import sys
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The second environment runs jupyter_par from this checkout (it has the engine's
# dependencies, not the package); in the main one this is the same editable install.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.simplefilter("ignore")

import methods  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import workloads  # noqa: E402


def _pss(pid: int) -> int:
    """Proportional set size of one process, in bytes (RSS where smaps_rollup is missing)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


class TreeMemory(threading.Thread):
    """Samples the summed PSS of this process and all its descendants every 20 ms.

    Reading PSS costs the kernel a walk of each process's page tables (a few ms per
    sample), so memory is measured in a run of its own, never in the timed runs.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.done = threading.Event()

    def sample(self) -> None:
        me = psutil.Process()
        try:
            pids = [me.pid, *(c.pid for c in me.children(recursive=True))]
        except psutil.Error:
            pids = [me.pid]
        self.peak = max(self.peak, sum(_pss(p) for p in pids))

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.sample()

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.sample()
        return self.peak


def tree_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of this process, its reaped children and live descendants."""
    me = psutil.Process()
    own = me.cpu_times()
    seconds = {me.pid: own.user + own.system + own.children_user + own.children_system}
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        seconds[child.pid] = times.user + times.system
    return seconds


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent by the tree between two snapshots (processes born in between count whole)."""
    return sum(max(0.0, spent - before.get(pid, 0.0)) for pid, spent in after.items())


def main() -> None:
    number, name, jobs, rows, ref_path, repeat = sys.argv[1:7]
    number, jobs, rows, repeat = int(number), int(jobs), int(rows), int(repeat)
    func = methods.METHODS[name][0]
    data = workloads.make_data(number, rows)

    result = func(number, data, jobs)  # the check run (it also warms pools up)
    if name in ("serial", "serial-old"):
        with open(ref_path, "wb") as f:
            pickle.dump(result, f, protocol=5)
        correct = True
    else:
        with open(ref_path, "rb") as f:
            correct = workloads.same(result, pickle.load(f))
    del result
    gc.collect()

    # Workload 5 is short and swings with the state of the VM's memory (fresh pages
    # from the host cost ~5x more to touch): more runs, and every time is kept.
    runs = max(repeat, 30) if number == 7 else max(repeat, 7) if number == 5 else repeat
    times = []
    cpu_before = tree_cpu()
    for _ in range(runs):
        started = time.perf_counter()
        result = func(number, data, jobs)
        times.append(time.perf_counter() - started)
        del result
    cpu = cpu_between(cpu_before, tree_cpu()) / runs
    gc.collect()

    memory = TreeMemory()  # one more run, untimed, while the sampler watches
    memory.sample()
    memory.start()
    result = func(number, data, jobs)
    del result
    peak = memory.stop()
    print(json.dumps({
        "workload": number, "method": name, "jobs": jobs, "rows": rows,
        "seconds": statistics.median(times), "runs": runs, "times": times,
        "peak_bytes": peak, "cpu_seconds": cpu,
        "correct": correct, "pandas": pd.__version__,
    }))
    if name.startswith("jupyter_par"):
        import jupyter_par

        jupyter_par.shutdown()


if __name__ == "__main__":
    main()
