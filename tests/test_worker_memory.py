"""Worker processes reuse freed memory while they work and give it back when idle."""

from __future__ import annotations

import time

import pandas as pd
import psutil
import pytest

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.worker import allocator as _allocator

pytestmark = pytest.mark.skipif(_allocator._libc() is None, reason="needs glibc's mallopt")

MB = 2**20


def _faults_while_churning(part: pd.DataFrame) -> pd.DataFrame:
    """Allocate and free 80 MB of temporaries ten times, as rolling/rank do; count the page
    faults of the last nine."""
    import resource

    import numpy as np

    # The first round may fault its pages in, however the worker's heap stood when it was
    # forked (it varies with what the parent did before): count the rounds after it.
    blocks = [np.ones(2 * MB) for _ in range(5)]
    del blocks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(9):
        blocks = [np.ones(2 * MB) for _ in range(5)]
        del blocks
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return part.assign(faults=faults)


def _hold_and_free(part: pd.DataFrame) -> pd.DataFrame:
    import numpy as np

    blocks = [np.ones(2 * MB) for _ in range(40)]  # 640 MB in 16 MB blocks
    del blocks
    return part


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_reuse_freed_blocks_instead_of_faulting_new_pages(start_method):
    df = pd.DataFrame({"a": range(4)})
    out = jp.map_partitions(df, _faults_while_churning, jobs=2, partitions=2,
                            start_method=start_method, progress=False)
    # glibc's defaults give the blocks back and fault them in again: ~20k faults here
    # (4 KB and 2 MB pages mixed); kept and reused, a few thousand at most, once.
    assert out["faults"].max() < 8_000, out["faults"].tolist()


def test_an_idle_worker_gives_freed_memory_back():
    df = pd.DataFrame({"a": range(4)})
    # The workers' own size first: a forked worker's RSS counts the pages it shares with
    # its parent, however large the parent (this test process) has grown.
    jp.map_partitions(df, lambda part: part, jobs=2, partitions=2, progress=False)
    pids = {pid for b in backends.warm_backends().values() for pid in b.describe().get("pids", [])}
    workers = [psutil.Process(pid) for pid in pids]
    assert len(workers) == 2
    before = max(w.memory_info().rss for w in workers)
    jp.map_partitions(df, _hold_and_free, jobs=2, partitions=2, progress=False)
    assert {pid for b in backends.warm_backends().values()
            for pid in b.describe().get("pids", [])} == pids  # the same, warm workers
    # Each held 640 MB; once idle, at most 100 MB more than before is left.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rss = [w.memory_info().rss for w in workers]
        if max(rss) < before + 100 * MB:
            break
        time.sleep(0.1)
    assert max(rss) < before + 100 * MB, ([r // MB for r in rss], before // MB)
