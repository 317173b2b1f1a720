"""The in-kernel fallback's verdict, quiet and beside two CPU hogs: jupyter_par against
serial pandas, for one or more source trees side by side (before / after a change).

    python benchmarks/fallback_load.py --tree /path/to/before --tree .

Workloads: ``text`` (tests/test_cost.py: ``map(len)`` over 100k 1,000-character object
strings), ``agg cheap`` (``groupby.agg`` of max - min over 2,000 groups of 50 rows) and
``agg 50us`` (the same with 50 µs of work per group, benchmarks/group_calls.py). Each
figure is serial pandas' seconds over jupyter_par's, measured back to back, median of
``--repeat``; "ran" is where the last call ran. Every tree runs in its own process, one
after the other, in each phase; the hogs are two ``python -c 'while True: pass'``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def cheap(values: pd.Series) -> float:
    return float(values.max() - values.min())


def costly(values: pd.Series) -> float:
    _spin(50e-6)
    return float(values.max() - values.min())


def measure(repeat: int) -> dict[str, Any]:
    import jupyter_par as jp

    warnings.simplefilter("ignore")
    strings = pd.Series([f"{i:08d}" + "x" * 1000 for i in range(100_000)], dtype=object)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"k": rng.permutation(np.repeat(np.arange(2000), 50)),
                          "v": rng.normal(size=100_000)})
    grouped = frame.groupby("k")["v"]
    run = {"jobs": 2, "progress": False}
    cases = {
        "text": (lambda: strings.map(len), lambda: jp.map(strings, len, **run)),
        "agg cheap": (lambda: grouped.agg(cheap), lambda: grouped.par.agg(cheap, **run)),
        "agg 50us": (lambda: grouped.agg(costly), lambda: grouped.par.agg(costly, **run)),
    }
    out: dict[str, Any] = {}
    for name, (serial, ours) in cases.items():
        ours()  # warm: workers started, imports done
        ratios = []
        for _ in range(repeat):
            started = time.perf_counter()
            serial()
            serial_s = time.perf_counter() - started
            started = time.perf_counter()
            ours()
            ratios.append(serial_s / (time.perf_counter() - started))
        record = jp.last_run()
        out[name] = (statistics.median(ratios), getattr(record, "ran", "?"))
    jp.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="a source tree (repeat)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.repeat)))
        return
    trees = args.tree or ["."]
    rows = []
    for phase in ("quiet", "2 hogs"):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(2 if phase != "quiet" else 0)]
        try:
            for tree in trees:
                env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
                load = os.getloadavg()[0]
                done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                       "--repeat", str(args.repeat)], env=env,
                                      capture_output=True, text=True, check=False)
                if done.returncode:
                    print(f"{tree}: failed\n{done.stderr[-2000:]}")
                    continue
                for name, (ratio, ran) in json.loads(done.stdout.splitlines()[-1]).items():
                    rows.append((phase, f"{load:.1f}", tree, name, ratio, ran))
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    print(f"{'phase':7} {'load':>5} {'tree':28} {'workload':10} {'pandas/jp':>9}  ran")
    for phase, load, tree, name, ratio, ran in rows:
        print(f"{phase:7} {load:>5} {tree[-28:]:28} {name:10} {ratio:8.2f}x  {ran}")


if __name__ == "__main__":
    main()
