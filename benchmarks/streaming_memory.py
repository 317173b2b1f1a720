"""Peak memory of a chunked CSV run against the file's size (issue 8).

For each file size, in a fresh process: write the CSV, start 2 warm workers, then
stream ``pd.read_csv(path, chunksize=N)`` through ``jp.map_partitions(..., reduce=)``
while a thread samples the summed RSS of the process tree (that process plus its
workers). RSS counts pages shared by several processes once per process, so the sum
overstates rather than understates. For contrast, the last column is what the whole
file would hold as one DataFrame (a chunk's ``memory_usage(deep=True)`` scaled by the
number of rows), i.e. what ``pd.read_csv(path)`` would need at the least.

Usage: .venv/bin/python benchmarks/streaming_memory.py [--sizes 100,300,600]
       [--chunk-rows 50000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import psutil

import jupyter_par as jp

MB = 2**20


def tree_rss() -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def write_csv(path: str, megabytes: int) -> tuple[int, int]:
    rng = np.random.default_rng(11)
    n = 100_000
    block = pd.DataFrame({
        "a": rng.normal(size=n).round(4), "b": rng.integers(0, 1_000, n),
        "c": rng.random(n).round(3), "d": rng.choice([f"key{i}" for i in range(40)], n),
    })
    text = block.to_csv(index=False, header=False).encode()
    rows = 0
    with open(path, "wb") as out:
        out.write(b"a,b,c,d\n")
        while out.tell() < megabytes * MB:
            out.write(text)
            rows += n
    return os.path.getsize(path), rows


def summary(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.groupby("d").agg(rows=("a", "size"), a=("a", "sum"), b=("b", "sum"))


def add(acc: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
    return acc.add(part, fill_value=0)


def peak_during(call) -> tuple[int, float]:
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        call()
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        thread.join()
    return peak[0], elapsed


def measure(size: int, chunk_rows: int, jobs: int) -> str:
    """One table row, measured in this (fresh) process."""
    options = {"jobs": jobs, "progress": False}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{size}.csv")
        file_bytes, rows = write_csv(path, size)
        chunk = pd.read_csv(path, nrows=chunk_rows).memory_usage(deep=True).sum()
        jp.map_partitions([1, 2], len, **options)
        gc.collect()
        before = tree_rss()
        reader = pd.read_csv(path, chunksize=chunk_rows)
        peak, seconds = peak_during(
            lambda: jp.map_partitions(reader, summary, reduce=add, **options))
    jp.shutdown()
    whole = chunk * rows / chunk_rows
    return (f"| {file_bytes / MB:.0f} | {chunk_rows} | {chunk / MB:.1f} | {before / MB:.0f} "
            f"| {peak / MB:.0f} | {(peak - before) / MB:.0f} | {seconds:.1f} | {whole / MB:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,600", help="file sizes in MB")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(measure(args.one, args.chunk_rows, args.jobs))
        return
    print(f"jobs={args.jobs}, summed RSS of the process tree")
    print("| file MB | chunk rows | chunk MB in memory | tree before MB | tree peak MB "
          "| growth MB | seconds | whole file as one frame MB |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for size in args.sizes.split(","):
        subprocess.run([sys.executable, __file__, "--one", size, "--chunk-rows",
                        str(args.chunk_rows), "--jobs", str(args.jobs)], check=True)


if __name__ == "__main__":
    main()
