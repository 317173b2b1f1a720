"""The in-kernel fallback counts what strings and objects cost to move (issue 18, item 7).

Strings travel pickled through a pipe, which costs more than a cheap function over them:
such a run must go to the kernel, not be slower than serial. A function that is slow
per row goes to the workers whatever its data, without the kernel spending long on the
sample.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pandas as pd
import psutil
import pytest
from fixed_readings import reading
from where_ran import ran

import jupyter_par as jp
from jupyter_par.errors import InlineFallbackWarning
from jupyter_par.machine import load
from jupyter_par.planning import builders as plans
from jupyter_par.run import fallback as cost

# Python strings (object dtype): with pyarrow, pandas 3's default str is Arrow-backed and
# moves as a few buffers, which a cheap function can be worth the workers for.
STRINGS = pd.Series([f"{i:08d}" + "x" * 1000 for i in range(100_000)], name="s", dtype=object)
RUN = {"jobs": 2, "progress": False}


def test_a_cheap_function_over_strings_runs_in_the_kernel():
    with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
        result = ran("kernel", lambda: jp.map(STRINGS, len, **RUN))
    pd.testing.assert_series_equal(result, STRINGS.map(len))


def test_shared_objects_do_not_turn_the_fallback_off():
    with pytest.warns(jp.InlineFallbackWarning):
        result = jp.map(STRINGS, len, shared={"table": {"a": 1}}, **RUN)
    pd.testing.assert_series_equal(result, STRINGS.map(len))

    def shout(value):  # the sample in the kernel sees the shared objects too
        return value + jp.shared["tail"]["tail"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jp.InlineFallbackWarning)
        result = jp.map(STRINGS, shout, shared={"tail": {"tail": "!"}}, **RUN)
    pd.testing.assert_series_equal(result, STRINGS.map(lambda value: value + "!"))


def test_a_function_slow_per_row_goes_to_the_workers_after_a_short_sample():
    sampled = []

    def slow(value):
        if os.getpid() == kernel:
            sampled.append(value)  # the sample runs in the kernel: count its rows
        time.sleep(0.06)
        return os.getpid()

    kernel = os.getpid()
    plan = plans.series_call(STRINGS, slow, "map", {}, 2, None)
    size = cost.measure(plan.parts)
    assert size is not None and cost.worth_a_sample(size, 0.0)
    sample = cost.Sample(size, plan.op, 2)
    pieces = [piece.size for piece in sample.pieces() if sample.clock(piece.data) is not None]
    assert sample.verdict is None  # to the workers
    assert pieces == [1, 1]  # one row told (after one to warm up); no thousand-row sample
    assert 1 <= len(sampled) <= 3, len(sampled)
    with warnings.catch_warnings():
        warnings.simplefilter("error", jp.InlineFallbackWarning)
        pids = ran("workers", lambda: jp.map(STRINGS.iloc[:40], slow, **RUN))
    assert kernel not in set(pids)


def test_a_cheap_call_with_a_large_shared_text_table_runs_in_the_kernel():
    """Preparing shared objects for the workers is moving cost too (issue 18, item 7):
    a few thousand cheap lookups into a million-row table with text would spend far
    longer writing the table for the workers than the lookups take in the kernel."""
    table = pd.DataFrame({"name": [f"customer-{i:07d}" for i in range(1_000_000)],
                          "value": np.arange(1_000_000, dtype=float)})
    small = pd.DataFrame({"k": np.arange(0, 1_000_000, 500)})

    def look(row):
        return len(jp.shared["table"]["name"].iat[row["k"]])

    assert cost.sharing_seconds({"table": table}) > cost.SHARING_SMALL_SECONDS
    with pytest.warns(InlineFallbackWarning, match=r"shared objects: .* of it"):
        result = jp.apply(small, look, axis=1, jobs=2, shared={"table": table},
                          progress=False)
    assert result.tolist() == [16] * len(small)


def test_sharing_costs_nothing_without_shared_objects_and_little_for_small_ones():
    assert cost.sharing_seconds(None) == 0.0
    assert cost.sharing_seconds({"rates": pd.Series([0.5, 1.0])}) < cost.SHARING_SMALL_SECONDS


# -- the verdict under load (issue 29's test_cost item; issue 25's verdict) ---------------
HOG = "import os\nos.write(1, b'spinning\\n')\nwhile True:\n    pass\n"


@pytest.fixture
def hogs():
    """Two processes that keep a CPU each busy (``stress --cpu 2`` where installed),
    running before the test goes on (each has written its line), killed after it."""
    import shutil
    import subprocess
    import sys

    if shutil.which("stress"):
        started = [subprocess.Popen(["stress", "--cpu", "2"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)]
        parent = psutil.Process(started[0].pid)
        while len(parent.children()) < 2:  # stress forks its workers after it starts
            time.sleep(0.01)
        spinners = [p.pid for p in parent.children()]
    else:
        started = [subprocess.Popen([sys.executable, "-c", HOG], stdout=subprocess.PIPE)
                   for _ in range(2)]
        for process in started:
            assert process.stdout.readline() == b"spinning\n"  # it is in its loop
        spinners = [p.pid for p in started]
    try:
        yield spinners
    finally:
        for process in started:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()
            process.stdout.close()


def _busy_while(pids: list[int]) -> float:
    """The load the fallback reads now, once every hog has used CPU time (they run)."""
    for pid in pids:
        process = psutil.Process(pid)
        while sum(process.cpu_times()[:2]) == 0:
            time.sleep(0.01)
    return load.busy_elsewhere()


def test_a_cheap_function_over_strings_stays_in_the_kernel_beside_busy_cpus(hogs):
    assert _busy_while(hogs) >= 1  # the hogs are seen (more where others run too)
    for _ in range(3):
        with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
            result = ran("kernel", lambda: jp.map(STRINGS, len, **RUN))
        pd.testing.assert_series_equal(result, STRINGS.map(len))


def spin(value, seconds=2e-4):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return len(value)


def test_an_expensive_function_still_goes_to_the_workers_beside_busy_cpus(hogs):
    _busy_while(hogs)
    strings = STRINGS.iloc[:8000]  # 8,000 x 0.2 ms of work, 64 MB of strings by weight
    with warnings.catch_warnings():
        warnings.simplefilter("error", jp.InlineFallbackWarning)
        result = ran("workers", lambda: jp.map(strings, spin, **RUN))
    pd.testing.assert_series_equal(result, strings.map(len))


def test_the_workers_saving_is_counted_at_the_speed_the_machine_gives_now():
    """Without timing anything: the same measured work and moving, read beside no
    other load and beside two busy processes on two CPUs."""
    assert load.speedup(2, 0.0, cpus=2) == 2.0
    assert load.speedup(2, 2.0, cpus=2) == pytest.approx(1.5)
    assert load.speedup(8, 0.0, cpus=2) == 2.0  # no more than the CPUs
    assert load.speedup(2, 0.0, cpus=1) == 1.0
    plan = plans.series_call(STRINGS, len, "map", {}, 2, None)
    size = cost.measure(plan.parts)
    sample = cost.Sample(size, plan.op, 2)
    moving = 0.1
    work = cost.MARGIN * moving / 0.4  # saves 0.5 of it at 2x (worth it), 1/3 at 1.5x
    sample.clock.cpus = 2  # the machine the figures are for, whatever this one is
    moved_in = moving - size.partitions * cost.PARTITION_SECONDS \
        - size.numeric * cost.MOVE_SECONDS_PER_BYTE
    sample.clock.busy = [0.0]
    assert sample._verdict(work, moved_in, 0.0, 0.0) is None
    sample.clock.busy = [2.0]
    verdict = sample._verdict(work, moved_in, 0.0, 0.0)
    assert verdict is not None and "2.0 CPUs busy elsewhere now" in verdict


def test_a_pause_in_one_piece_does_not_send_cheap_work_to_the_workers():
    """A 1,000-row piece that met a collection (50 ms) beside its twin (1 ms): the cost
    per row is the twin's."""
    sample = cost.Sample(cost.measure(plans.series_call(STRINGS, len, "map", {}, 2,
                                                        None).parts), len, 2)
    rows = STRINGS.iloc[:1024]
    sample.clock.calls = [(2e-4, rows.iloc[:64], None), (3e-4, rows.iloc[:64], None),
                          (7e-4, rows, None), (0.05, rows, None)]
    assert sample._per_row() == pytest.approx(7e-4 / 1023)


# -- groupby calls: the assembly counted, the kept call finished as pandas ----------------
GROUPS = pd.DataFrame({"k": np.repeat(np.arange(2000), 50),
                       "v": np.arange(100_000, dtype=float),
                       "w": np.arange(100_000, dtype=float) % 7})


def test_a_cheap_groupby_agg_stays_in_the_kernel_and_runs_each_group_once(monkeypatch):
    """Read as cheap (0.2 ms for the sample's 16 groups), the agg stays in the kernel. On
    the real clock the sample's one pandas call (~0.7 ms here, most of it pandas' fixed
    cost) is scaled by 128, so this call's verdict flipped to the workers in 3-5 of 30
    runs, quiet or loaded: the test read the clock, not the rule (issue 28's note)."""
    reading(monkeypatch, 0.0002)
    calls = []

    def first(values):  # a few microseconds: pandas' own loop is most of the call
        calls.append(os.getpid())
        return values.iat[0]

    grouped = GROUPS.groupby("k")["v"]
    expected = grouped.agg(lambda v: v.iat[0])
    # pandas' agg answered from the workers' values needs no walk of its loop, so the
    # verdict counts no assembly here before one is measured: the work alone decides.
    with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
        result = ran("kernel", lambda: grouped.par.agg(first, **RUN))
    pd.testing.assert_series_equal(result, expected)
    assert len(calls) == 2000 and set(calls) == {os.getpid()}


def test_an_assembly_that_walks_pandas_loop_is_counted_against_the_workers():
    """``filter`` is assembled by replaying pandas' loop over every group in the kernel:
    the verdict counts that walk on the workers' side, and names it."""
    calls = []

    def wide(values):
        calls.append(os.getpid())
        return values.iat[0] > 0.5

    grouped = GROUPS.groupby("k")["v"]
    expected = grouped.filter(lambda v: v.iat[0] > 0.5)
    with pytest.warns(jp.InlineFallbackWarning, match="assembling the result about"):
        result = ran("kernel", lambda: grouped.par.filter(wide, **RUN))
    pd.testing.assert_series_equal(result, expected)
    assert len(calls) == 2000 and set(calls) == {os.getpid()}


def test_a_costly_groupby_agg_still_goes_to_the_workers_beside_busy_cpus(hogs):
    _busy_while(hogs)
    frame = GROUPS.iloc[:50_000]  # 1,000 groups of 1 ms

    def slow(values):
        spin("", 1e-3)
        return float(values.sum())

    with warnings.catch_warnings():
        warnings.simplefilter("error", jp.InlineFallbackWarning)
        result = ran("workers", lambda: frame.groupby("k")["v"].par.agg(slow, **RUN))
    pd.testing.assert_series_equal(result, frame.groupby("k")["v"].agg("sum"))


def _spread(into):
    def spread(values):
        into.append(1)
        return float(np.asarray(values).max() - np.asarray(values).min())
    return spread


def _wide(into):
    def wide(values):
        into.append(1)
        return float(np.asarray(values).max() - np.asarray(values).min()) > 40
    return wide


@pytest.mark.parametrize(("selection", "method", "make"), [
    ("v", "agg", _spread),
    (["v", "w"], "agg", _spread),  # a pass per column
    ("v", "transform", _spread),
    ("v", "filter", _wide),
    (["v", "w"], "apply", _spread),
])
def test_a_groupby_call_kept_in_the_kernel_is_pandas_own_call(selection, method, make,
                                                               monkeypatch):
    """Kept in the kernel whatever its cost, the call finishes as pandas' own: the
    sample's recorded values for the first partition's groups, the rest called there;
    the same value as pandas, and as many calls as pandas makes."""
    monkeypatch.setattr(cost, "MARGIN", 1e9)
    theirs, ours = [], []
    expected = getattr(GROUPS.groupby("k")[selection], method)(make(theirs))
    with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
        result = ran("kernel", lambda: getattr(GROUPS.groupby("k")[selection].par, method)(
            make(ours), **RUN))
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(result, expected)
    else:
        pd.testing.assert_series_equal(result, expected)
    assert len(ours) == len(theirs)
