"""Workload 7 through a real kernel: the fixed cost a notebook user feels.

Three fresh kernels, driven by nbclient exactly as a notebook would be:

* warm: a no-op ``%%parallel`` cell, run 30 times after one warm-up; each cell's time
  is the kernel's own (its ``execute_input`` to ``execute_reply`` timestamps), so
  it includes IPython's magic dispatch, the run and the write-back;
* first run under spawn: the first ``%%parallel --start spawn`` cell of a fresh
  kernel (workers started, pandas imported in each, the cell run);
* the same first run through the Python API.

Prints one JSON line per measurement. Usage: python kernel_bench.py [--jobs N] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from notebook_runner import outputs_text, run_cells  # noqa: E402

_PANDAS = __import__("pandas").__version__

SETUP = """\
import numpy as np, pandas as pd
import jupyter_par as jp
%load_ext jupyter_par
df = pd.DataFrame({"a": np.arange(100), "b": np.arange(100) * 0.5})
original = df.copy()
"""


def _cell_seconds(cell: Any) -> float:
    timing = cell.metadata.get("execution", {})
    start = datetime.datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
    end = datetime.datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def warm(jobs: int, runs: int, progress: bool) -> dict[str, Any]:
    flags = f"--jobs {jobs}" + ("" if progress else " --no-progress")
    magic = f"%%parallel {flags} df\npass"
    cells = [SETUP, magic, *[magic] * runs, "print(df.equals(original))", "jp.shutdown()"]
    nb = run_cells(cells, timeout=300)
    times = [_cell_seconds(c) for c in nb.cells[2 : 2 + runs]]
    label = "%%parallel in a kernel, warm" + (" (progress shown)" if progress else "")
    return {"workload": 7, "method": label, "jobs": jobs, "seconds": statistics.median(times),
            "runs": runs, "correct": outputs_text(nb.cells[-2]).strip() == "True",
            "pandas": _PANDAS, "env": "main"}


def first_spawn_magic(jobs: int) -> dict[str, Any]:
    magic = f"%%parallel --jobs {jobs} --start spawn --no-progress df\npass"
    nb = run_cells([SETUP, magic, "print(df.equals(original))", "jp.shutdown()"], timeout=300)
    return {"workload": 7, "method": "%%parallel first run, fresh kernel, spawn", "jobs": jobs,
            "seconds": _cell_seconds(nb.cells[1]), "runs": 1,
            "correct": outputs_text(nb.cells[2]).strip() == "True", "pandas": _PANDAS,
            "env": "main"}


def first_spawn_api(jobs: int) -> dict[str, Any]:
    call = (f"result = jp.map_partitions(df, lambda d: d, jobs={jobs}, start_method='spawn', "
            "progress=False)")
    nb = run_cells([SETUP, call, "print(result.equals(original))", "jp.shutdown()"],
                   timeout=300)
    return {"workload": 7, "method": "API first run, fresh kernel, spawn", "jobs": jobs,
            "seconds": _cell_seconds(nb.cells[1]), "runs": 1,
            "correct": outputs_text(nb.cells[2]).strip() == "True", "pandas": _PANDAS,
            "env": "main"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 5 if args.quick else 30
    measurements = [warm(args.jobs, runs, progress=False), first_spawn_magic(args.jobs)]
    if not args.quick:
        measurements += [warm(args.jobs, runs, progress=True), first_spawn_api(args.jobs)]
    for row in measurements:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
