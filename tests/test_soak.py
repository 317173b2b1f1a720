"""Soak: 200 consecutive runs in one process, mixing successes and failures, leak nothing.

After a warm-up, the test records child processes, open file descriptors, this
process's shared-memory segments and resident memory, runs 200 calls of which about
a quarter fail (exceptions, workers that exit, a partition timeout, an unsendable
result; every 20th run moves partitions large enough for shared memory), and
checks that none of the four has grown beyond a small bound. Run with
``-s`` to see the figures.
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pandas as pd
import psutil
import pytest

import jupyter_par as jp
from jupyter_par.run import resume

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RUNS = 200
RUN = {"jobs": 2, "start_method": "fork", "progress": False}
#: Allowed growth over 200 runs. Each run allocates and frees frames; the allocator
#: keeps some pages, so memory gets a bound rather than zero. fds and processes get none.
RSS_BOUND_MB = 40


def _plus_one(row):
    return row["a"] + 1


def _fail_on_seven(row):
    if row["a"] == 7:
        msg = "seven"
        raise ValueError(msg)
    return row["a"]


def _exit_on_seven(x):
    if x == 7:
        os._exit(3)
    return x


def _spin_on_seven(x):
    while x == 7:
        pass
    return x


def _generator_back(part):
    return (v for v in part)


def _group_sum(g):
    return g["a"].sum()


def _snapshot() -> dict[str, float]:
    # A failed run's finished partitions are kept for --resume on purpose (at most 8 runs;
    # a result mapped from shared memory holds its segment's descriptor): not a leak.
    resume.STORE.clear()
    # A failed run's exception and its traceback's frames form a cycle that may still hold
    # a finished partition's result mapped from shared memory (its descriptor) until the
    # next collection: garbage, not a leak. What survives a collection is counted.
    gc.collect()
    me = psutil.Process()
    prefix = f"jupyter_par-{os.getpid()}-"
    shm = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)] \
        if os.path.isdir("/dev/shm") else []
    live = [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    return {
        "children": len(live),
        "fds": me.num_fds(),
        "shm": len(shm),
        "rss_mb": me.memory_info().rss / 2**20,
    }


def _halve_or_fail(part):
    if len(part) and part.index[-1] == 899_999:
        msg = "last partition refused"
        raise ValueError(msg)
    return part / 2


_BIG = pd.DataFrame(np.random.default_rng(2).normal(size=(900_000, 2)), columns=["x", "y"])


def _check_big_halved() -> None:
    got = jp.map_partitions(_BIG.iloc[:-1], _halve_or_fail, partitions=3, **RUN)
    pd.testing.assert_frame_equal(got, _BIG.iloc[:-1] / 2)


def _check_groups(df: pd.DataFrame) -> None:
    got = jp.groupby_apply(df, "k", _group_sum, **RUN)
    pd.testing.assert_series_equal(got, df.groupby("k").apply(_group_sum))


def _check_plus_one(df: pd.DataFrame) -> None:
    got = jp.apply(df, _plus_one, axis=1, **RUN)
    pd.testing.assert_series_equal(got, df["a"] + 1, check_names=False)


def _one_run(i: int, df: pd.DataFrame) -> str:
    """Run number ``i``: mostly successes, with every kind of failure now and then.

    Every 20th run moves partitions of about 4.8 MB, which travel through shared
    memory, half of them ending in a failure. Each failing run must fail with its own
    fault's error (a run that fails otherwise fails the test).
    """
    kind = i % 8
    if i % 20 == 6:
        call, expected = _check_big_halved, None
    elif i % 20 == 16:
        call, expected = (lambda: jp.map_partitions(_BIG, _halve_or_fail, partitions=3, **RUN),
                          ValueError)
    elif i % 50 == 49:
        call, expected = (lambda: jp.map(list(range(10)), _spin_on_seven, timeout=0.3, **RUN),
                          jp.PartitionTimeoutError)
    elif i % 25 == 12:
        call, expected = (lambda: jp.map(list(range(10)), _exit_on_seven, **RUN),
                          jp.WorkerDiedError)
    elif kind == 1:
        call, expected = lambda: jp.apply(df, _fail_on_seven, axis=1, **RUN), ValueError
    elif kind == 3:
        call, expected = lambda: jp.map_partitions(df, _generator_back, **RUN), jp.ShippingError
    elif kind == 5:
        call, expected = lambda: _check_groups(df), None
    else:
        call, expected = lambda: _check_plus_one(df), None
    if expected is None:
        call()
        return "ok"
    try:
        call()
    except expected:
        return expected.__name__
    msg = f"run {i} (kind {kind}) should have failed with {expected.__name__}"
    raise AssertionError(msg)


def test_200_runs_leak_nothing():
    df = pd.DataFrame({"a": np.arange(40), "k": np.arange(40) % 5})
    for i in range(16):  # warm-up: pools, imports and caches reach their steady size
        _one_run(i, df)
    before = _snapshot()
    started = time.monotonic()
    outcomes: dict[str, int] = {}
    for i in range(RUNS):
        result = _one_run(i, df)
        outcomes[result] = outcomes.get(result, 0) + 1
    elapsed = time.monotonic() - started
    _one_run(0, df)  # a success, so a worker lost to the last failure is replaced
    after = _snapshot()
    figures = ", ".join(f"{k} {before[k]:g} -> {after[k]:g}" for k in before)
    print(f"\nsoak: {RUNS} runs in {elapsed:.1f} s, outcomes {outcomes}; {figures}")
    assert outcomes["ok"] >= RUNS // 2 and len(outcomes) == 5, outcomes
    assert after["children"] == before["children"], figures
    assert after["fds"] <= before["fds"], figures
    assert after["shm"] == 0, figures
    assert after["rss_mb"] - before["rss_mb"] < RSS_BOUND_MB, figures


KERNEL_SOAK = """
%load_ext jupyter_par
import os, json, psutil
import numpy as np, pandas as pd
df = pd.DataFrame({"a": np.arange(40), "k": np.arange(40) % 5})
snapshot = df.copy(deep=True)

def fail_on_seven(row):
    if row["a"] == 7:
        raise ValueError("seven")
    return row["a"]

def exit_on_seven(row):
    if row["a"] == 7:
        os._exit(3)
    return row["a"]

def snapshot_of_leaks():
    me = psutil.Process()
    prefix = f"jupyter_par-{os.getpid()}-"
    return {
        "children": len([c for c in me.children(recursive=True)
                         if c.status() != psutil.STATUS_ZOMBIE]),
        "fds": me.num_fds(),
        "shm": len([n for n in os.listdir("/dev/shm") if n.startswith(prefix)]),
        "rss_mb": me.memory_info().rss / 2**20,
    }

FLAGS = "--jobs 2 --start fork --no-progress"
BODY = "df.apply(%s, axis=1)"
def one(i):
    ip = get_ipython()
    try:
        if i % 4 == 1:
            ip.run_cell_magic("parallel", f"{FLAGS} --out bad df", BODY % "fail_on_seven")
        elif i % 25 == 12:
            ip.run_cell_magic("parallel", f"{FLAGS} --out bad df", BODY % "exit_on_seven")
        else:
            ip.run_cell_magic("parallel", f"{FLAGS} df", "df['b'] = df['a'] * 2")
            assert df["b"].equals(df["a"] * 2)
            del df["b"]
            return "ok"
    except (ValueError, RuntimeError) as exc:
        assert "bad" not in globals() and df.equals(snapshot)
        return type(exc).__name__
    raise AssertionError(i)

for i in range(8):
    one(i)
before = snapshot_of_leaks()
outcomes = {}
for i in range(RUNS):
    result = one(i)
    outcomes[result] = outcomes.get(result, 0) + 1
one(0)
print("SOAK", json.dumps({"before": before, "after": snapshot_of_leaks(), "outcomes": outcomes}))
"""


@pytest.mark.kernel
def test_magic_runs_in_one_kernel_leak_nothing():
    import json

    from notebook_runner import outputs_text, run_cells

    nb = run_cells([KERNEL_SOAK.replace("RUNS", str(RUNS))], timeout=200)
    text = outputs_text(nb.cells[0])
    figures = json.loads(text.split("SOAK", 1)[1])
    before, after = figures["before"], figures["after"]
    print(f"\nkernel soak: {RUNS} %%parallel runs, {figures['outcomes']}; "
          + ", ".join(f"{k} {before[k]:g} -> {after[k]:g}" for k in before))
    assert figures["outcomes"]["ok"] >= RUNS // 2 and len(figures["outcomes"]) == 3
    assert after["children"] == before["children"]
    assert after["fds"] <= before["fds"]
    assert after["shm"] == 0
    assert after["rss_mb"] - before["rss_mb"] < RSS_BOUND_MB
