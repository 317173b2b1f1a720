"""Memory of ``jp.imap`` over a million items against ``jp.map`` of the same (issue 26).

Each case runs in a fresh process with 2 warm workers (started before measuring):
the kernel's Python allocations (tracemalloc peak) and the growth of the summed RSS of
the process tree (sampled by a thread every 10 ms) while the items go through. The
input is a generator for ``imap`` (so nothing holds the items) and the same generator
for ``map`` (which must take them into a list, and returns every result at once).

Usage: .venv/bin/python benchmarks/imap_memory.py [--items 1000000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
import tracemalloc

import psutil

MB = 2**20


def tree_rss() -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def square(x: int) -> int:
    return x * x


def measure(kind: str, items: int, jobs: int) -> dict:
    import jupyter_par as jp

    list(jp.imap(square, range(100), jobs=jobs, progress=False))  # start the workers
    jp.map(list(range(100)), square, jobs=jobs, progress=False, inline_fallback=False)
    base, peak, stop = tree_rss(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    started = time.perf_counter()
    if kind == "imap":
        total = sum(jp.imap(square, (x for x in range(items)), jobs=jobs, progress=False))
    else:
        total = sum(jp.map((x for x in range(items)), square, jobs=jobs, progress=False,
                           inline_fallback=False))
    seconds = time.perf_counter() - started
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stop.set()
    sampler.join()
    assert total == sum(x * x for x in range(items))
    return {"kind": kind, "items": items, "seconds": round(seconds, 2),
            "tracemalloc_peak_mb": round(py_peak / MB, 1),
            "rss_growth_mb": round((peak[0] - base) / MB, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--case", default=None)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args.items, args.jobs)))
        return
    rows = []
    for case in ("imap", "map"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--items",
                              str(args.items), "--jobs", str(args.jobs)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| call | items | seconds | tracemalloc peak (MB) | RSS growth, tree (MB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| jp.{r['kind']} | {r['items']:,} | {r['seconds']} | "
              f"{r['tracemalloc_peak_mb']} | {r['rss_growth_mb']} |")


if __name__ == "__main__":
    main()
