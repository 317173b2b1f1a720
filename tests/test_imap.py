"""``jp.imap``: results as workers finish them, bounded in memory, stopped by ``break``."""

from __future__ import annotations

import itertools
import os
import time
import tracemalloc

import psutil
import pytest

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.errors import UsageError
from jupyter_par.progress.records import RUNNING

METHODS = ["fork", "spawn"]


class ItemError(ValueError):
    """The user's own exception type."""


def square(x: int) -> int:
    return x * x


def uneven(x: int) -> int:
    time.sleep(0.05 if x % 5 == 0 else 0.0)
    return x * 3


def stuck_from_3(x: int) -> int:
    """Quick for the items a test takes, then long enough that waiting for a busy
    worker (instead of stopping it) shows in the time a ``break`` takes."""
    time.sleep(0.02 if x < 3 else 30)
    return x


def stuck_from_2(x: int) -> int:
    time.sleep(0.02 if x < 2 else 30)
    return x


def stuck_from_4(x: int) -> int:
    time.sleep(0.02 if x < 4 else 30)
    return x


def fails_on_7(x: int) -> int:
    if x == 7:
        msg = f"bad item {x}"
        raise ItemError(msg)
    return x


class Pulled:
    """An endless generator that counts how many items were taken from it."""

    def __init__(self) -> None:
        self.count = 0

    def __iter__(self):
        for i in itertools.count():
            self.count += 1
            yield i


def _busy_workers() -> list[int]:
    pool = backends.warm_backends().get("processes")
    if pool is None:
        return []
    return [p.process.pid for p in pool._procs if p is not None and p.task_id is not None]


@pytest.mark.parametrize("method", METHODS)
def test_ordered_equals_map_and_unordered_as_a_set(method):
    items = list(range(500))
    run = {"jobs": 2, "start_method": method, "progress": False}
    assert list(jp.imap(uneven, items, **run)) == jp.map(items, uneven, **run)
    assert jp.last_run().backend == "processes"
    got = list(jp.imap(uneven, iter(items), ordered=False, **run))  # a generator too
    assert sorted(got) == [3 * x for x in items]
    assert list(jp.imap(square, (x for x in range(50)), chunksize=7, **run)) == [
        x * x for x in range(50)]
    assert list(jp.imap(square, [], **run)) == []


def test_unordered_yields_fast_items_before_a_slow_one():
    got = list(jp.imap(lambda x: (time.sleep(1.0 if x == 0 else 0.01), x)[1], range(20),
                       ordered=False, jobs=2, chunksize=1, progress=False))
    assert sorted(got) == list(range(20))
    assert got.index(0) > 5, got  # the slow first item came late, the rest did not wait


@pytest.mark.parametrize("method", METHODS)
def test_break_over_an_endless_generator_returns_at_once_no_worker_busy(method):
    source = Pulled()
    results = jp.imap(stuck_from_3, source, jobs=2, chunksize=1, start_method=method,
                      progress=False)
    taken, busy = [], []
    try:
        for value in results:
            taken.append(value)
            if len(taken) == 3:
                busy = _busy_workers()  # refilled before the result was handed over
                started = time.monotonic()
                break
    finally:
        results.close()  # what a for loop's break does when the generator is dropped
    assert busy, "the workers should be busy with the next items"
    assert time.monotonic() - started < 10  # the 30 s items were stopped, not waited for
    assert taken == [0, 1, 2]
    assert _busy_workers() == []
    assert source.count <= 3 + 4 * 2, source.count  # read only as far as it was used
    # No worker keeps running a stopped item: every process left is idle and sleeping.
    pool = backends.warm_backends()["processes"]
    for pid in pool.pids():
        assert psutil.Process(pid).cpu_percent(interval=0.05) < 50
    assert list(jp.imap(square, range(10), jobs=2, start_method=method,
                        progress=False)) == [x * x for x in range(10)]


def test_breaking_the_for_loop_itself_stops_the_workers():
    broke_at = []

    def consume() -> list[int]:
        out = []
        for value in jp.imap(stuck_from_2, itertools.count(), jobs=2, chunksize=1,
                             progress=False):
            out.append(value)
            if len(out) == 2:
                broke_at.append(time.monotonic())
                break
        return out  # CPython closes the dropped generator as the loop ends

    assert consume() == [0, 1]
    assert time.monotonic() - broke_at[0] < 10  # the 30 s items were not waited for
    assert _busy_workers() == []


def test_a_million_items_stream_with_bounded_memory():
    tracemalloc.start()
    try:
        count = total = 0
        for value in jp.imap(square, range(1_000_000), jobs=2, progress=False):
            count += 1
            total += value
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 1_000_000 and total == sum(x * x for x in range(1_000_000))
    # All results at once would be > 35 MB (a list of a million ints); the stream holds a
    # few partitions of at most 10,000 items.
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_progress_shows_while_the_loop_goes():
    snapshots = []
    seen_while_running = []
    for value in jp.imap(uneven, range(60), jobs=2, chunksize=5, progress=snapshots.append):
        if value == 90:  # item 30: half way
            seen_while_running = list(snapshots)
    assert seen_while_running and seen_while_running[-1].state == RUNNING
    assert 0 < seen_while_running[-1].rows_done < 60
    assert seen_while_running[-1].rows_total == 60
    assert snapshots[-1].state == "done" and snapshots[-1].rows_done == 60


def test_errors_are_the_users_type_and_skip_goes_on():
    with pytest.raises(ItemError, match="bad item 7"):
        list(jp.imap(fails_on_7, range(20), jobs=2, chunksize=2, progress=False))
    with pytest.warns(jp.PartialResultWarning, match="1 partition"):
        got = list(jp.imap(fails_on_7, range(20), jobs=2, chunksize=2, on_error="skip",
                           progress=False))
    assert got == [x for x in range(20) if x not in (6, 7)]


def test_worker_init_and_threads_backend(tmp_path):
    def setup(offset):
        return {"offset": offset, "pid": os.getpid()}

    got = list(jp.imap(lambda x: x + jp.worker_state()["offset"], range(30), jobs=2,
                       worker_init=setup, worker_init_args=(100,), progress=False))
    assert got == [x + 100 for x in range(30)]
    got = list(jp.imap(square, range(30), backend="threads", jobs=3, ordered=False,
                       progress=False))
    assert sorted(got) == [x * x for x in range(30)]


def test_a_parallel_call_inside_the_loop_is_refused_clearly():
    with pytest.raises(UsageError, match=r"jp\.imap loop still holds"):
        for _ in jp.imap(square, range(100), jobs=2, progress=False):
            jp.map(list(range(10)), square, jobs=2, progress=False, inline_fallback=False)
    # on another backend it runs
    for x in jp.imap(square, range(4), jobs=2, progress=False):
        assert jp.map([x], square, backend="threads", jobs=2, progress=False) == [x * x]


def test_bad_input_is_one_line():
    with pytest.raises(UsageError, match="imap needs"):
        jp.imap(square, 5)
    with pytest.raises(UsageError, match="chunksize"):
        jp.imap(square, [1], chunksize=0)
    with pytest.raises(UsageError, match="unexpected keyword"):
        jp.imap(square, [1], na_action="ignore")
