"""A CSV several times larger than the memory bound streams through in chunks.

The engine pulls a chunk from the reader only when a worker is free, so the memory of
the whole process tree (the test process, which plays the kernel, plus its workers)
grows by about (workers + chunks in flight) x chunk size, whatever the file size.
Memory is the summed RSS of the tree, sampled every few milliseconds by a thread; RSS
counts pages shared by several processes once per process, so the sum can only
overstate, never understate, what the run uses.

``benchmarks/streaming_memory.py`` measures the same at several file sizes.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import jupyter_par as jp

# The benchmark writes the same file and runs the same fold at several sizes: one copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from streaming_memory import add, summary, tree_rss, write_csv

pytestmark = pytest.mark.slow

FILE_MB = 300
CHUNK_ROWS = 50_000
JOBS = 2
OPTIONS = {"backend": "processes", "start_method": "fork", "jobs": JOBS, "progress": False}
#: Chunks alive at once: one in each worker, one held by the engine per worker (kept
#: for a retry until its result comes), one being parsed by the reader.
CHUNKS_ALIVE = JOBS + JOBS + 1
#: Each live chunk also exists pickled (sender and receiver) and as parser buffers.
COPIES = 2
#: Allocator slack and the reader's own buffers, independent of the file size.
SLACK = 48 * 2**20


class PeakSampler(threading.Thread):
    """Samples :func:`tree_rss` until stopped; ``peak`` is the largest value seen."""

    def __init__(self, every: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.every, self.peak, self.samples = every, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss())
            self.samples += 1
            time.sleep(self.every)

    def __enter__(self) -> PeakSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join()


def test_large_csv_streams_with_peak_memory_under_the_bound(tmp_path):
    path = str(tmp_path / "big.csv")
    file_bytes, rows = write_csv(path, FILE_MB)
    chunk_bytes = int(pd.read_csv(path, nrows=CHUNK_ROWS).memory_usage(deep=True).sum())
    bound = CHUNKS_ALIVE * COPIES * chunk_bytes + SLACK
    assert file_bytes > 3 * bound  # the file is several times what the run may hold

    jp.map_partitions([1, 2], len, **OPTIONS)  # workers started and warm
    gc.collect()
    baseline = tree_rss()
    with PeakSampler() as sampler:
        got = jp.map_partitions(pd.read_csv(path, chunksize=CHUNK_ROWS), summary, reduce=add,
                                **OPTIONS)
    grew = sampler.peak - baseline
    print(f"\nfile {file_bytes / 2**20:.0f} MB, chunk {chunk_bytes / 2**20:.1f} MB in memory, "
          f"baseline {baseline / 2**20:.0f} MB, peak {sampler.peak / 2**20:.0f} MB "
          f"(+{grew / 2**20:.0f} MB, bound +{bound / 2**20:.0f} MB), {sampler.samples} samples")
    assert sampler.samples > 10
    assert grew < bound

    want = None
    for chunk in pd.read_csv(path, chunksize=CHUNK_ROWS):
        part = summary(chunk)
        want = part if want is None else add(want, part)
    pd.testing.assert_frame_equal(got, want)
    assert int(got["rows"].sum()) == rows
