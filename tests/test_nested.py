"""A jupyter_par call inside a jupyter_par task runs inline in that worker, two levels deep.

Before the fix, ``jp.map`` inside a ``jp.map_partitions`` function hung forever under
fork (the worker held a copy of the parent's pool and of its held run lock) and
started a second pool per worker under spawn. Here every backend and start method runs
a three-level call; the result must equal serial pandas, every inner level must run in
the process of the outer task, and no worker may start a process of its own.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import psutil
import pytest

import jupyter_par as jp

pytestmark = pytest.mark.timeout(120)

FRAME = pd.DataFrame({"a": np.arange(60), "g": np.arange(60) % 7})


def leaf(value: int) -> int:
    return value + 1


def middle(part: pd.DataFrame) -> tuple[int, int, int, bool]:
    """Level 2: a jp.map of its own; returns (sum, pid, child processes, in_task)."""
    total = int(jp.map(part["a"], leaf, jobs=2).sum())
    children = len(psutil.Process().children(recursive=True))
    return total, os.getpid(), children, jp.in_task()


def outer(part: pd.DataFrame) -> list[tuple[int, int, int, bool, int]]:
    """Level 1: a jp.map_partitions whose function calls jp.map (level 2)."""
    inner = jp.map_partitions(part, middle, jobs=2, partitions=3)
    return [(*row, os.getpid()) for row in inner]


def expected_sum() -> int:
    return int(FRAME["a"].map(leaf).sum())


def check(nested: list[list[tuple[int, int, int, bool, int]]], *, own_process: bool) -> None:
    rows = [row for part in nested for row in part]
    assert len(rows) == 4 * 3
    assert sum(r[0] for r in rows) == expected_sum()
    for _total, pid, children, inside, outer_pid in rows:
        assert inside, "jp.in_task() is False inside a task"
        assert pid == outer_pid, "an inner level ran in another process than its task"
        if own_process:
            assert pid != os.getpid()
            assert children == 0, f"worker {pid} started {children} process(es) of its own"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_two_levels_deep_in_processes(method: str) -> None:
    rows = jp.map_partitions(FRAME, outer, jobs=2, start_method=method, partitions=4,
                             progress=False)
    check(rows, own_process=True)


@pytest.mark.parametrize("backend", ["threads", "inline"])
def test_two_levels_deep_in_the_kernel_process(backend: str) -> None:
    rows = jp.map_partitions(FRAME, outer, jobs=2, backend=backend, partitions=4,
                             progress=False)
    check(rows, own_process=False)
    assert {row[4] for part in rows for row in part} == {os.getpid()}


@pytest.mark.dask
@pytest.mark.slow
def test_two_levels_deep_on_dask() -> None:
    pytest.importorskip("distributed")
    try:
        rows = jp.map_partitions(FRAME, outer, jobs=2, backend="dask", partitions=4,
                                 progress=False)
    finally:
        jp.shutdown()
    check(rows, own_process=True)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_nested_apply_and_groupby_equal_serial(method: str) -> None:
    """Other API calls nested in a task: same result as the serial pandas code."""

    def per_group(group: pd.DataFrame) -> int:
        return int(jp.apply(group, lambda row: row["a"] * 2, axis=1, jobs=2).sum())

    got = jp.groupby_apply(FRAME, "g", per_group, jobs=2, start_method=method,
                           progress=False)
    want = FRAME.groupby("g").apply(
        lambda g: int(g.apply(lambda row: row["a"] * 2, axis=1).sum()))
    pd.testing.assert_series_equal(got, want)


def from_a_thread(part: pd.DataFrame) -> tuple[int, int]:
    """A task that calls jp from a thread of its own (a library's thread pool, say)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        total = pool.submit(lambda: int(jp.map(part["a"], leaf, jobs=2).sum())).result()
    return total, len(psutil.Process().children(recursive=True))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_call_from_a_thread_inside_a_worker_process(method: str) -> None:
    rows = jp.map_partitions(FRAME, from_a_thread, jobs=2, start_method=method, partitions=3,
                             progress=False)
    assert sum(total for total, _ in rows) == expected_sum()
    assert all(children == 0 for _, children in rows)


def test_in_task_is_false_outside_a_run() -> None:
    assert not jp.in_task()
    assert jp.map([1, 2], lambda v: jp.in_task(), jobs=2, progress=False) == [True, True]
    assert not jp.in_task()


def test_nested_options_run_inline_without_bars() -> None:
    from jupyter_par.run.options import resolve

    seen = jp.map([0], lambda _: (resolve(jobs=4).backend, resolve(jobs=4).progress),
                  jobs=2, backend="threads", progress=False)
    assert seen == [("inline", False)]
