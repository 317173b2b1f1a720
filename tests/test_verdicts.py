"""A clear "workers" verdict is remembered: the next call of the same function skips the
sample (issue 28), unless its input, the load or the verdict changed.

The sample runs in the kernel before any worker starts (for a per-column apply, a whole
column). A notebook calls the same function again and again; where the workers clearly
won, the next call goes straight to them. Each test here starts with nothing remembered
(conftest's ``fresh_verdicts``), as a new kernel does.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import numpy as np
import pandas as pd
import pytest
from fixed_readings import reading
from where_ran import ran

import jupyter_par as jp
from jupyter_par.machine import load
from jupyter_par.planning.operations import ColumnApply, RowApply
from jupyter_par.run import verdicts

# 16 columns of 300,000 floats: 38 MB, above the size that calls for a sample.
WIDE = pd.DataFrame(np.random.default_rng(28).standard_normal((300_000, 16)),
                    columns=[f"c{i}" for i in range(16)])
KERNEL = os.getpid()


def _slow_columns(seen: list[str]):
    """A column function that takes 60 ms, noting the columns the kernel itself ran."""
    def slow(column):
        if os.getpid() == KERNEL:
            seen.append(column.name)
        time.sleep(0.06)
        return float(column.sum())
    return slow


def _apply(frame, func):
    return ran("workers", lambda: jp.apply(frame, func, axis=0, jobs=2, progress=False))


def test_the_next_call_of_a_function_the_workers_clearly_won_runs_no_sample():
    seen: list[str] = []
    slow = _slow_columns(seen)
    first = _apply(WIDE, slow)
    assert seen == ["c0"]  # sampled: the first column ran in the kernel
    seen.clear()
    again = _apply(WIDE, slow)
    assert seen == []  # no sample: every column ran in a worker
    expected = WIDE.apply(slow, axis=0)
    pd.testing.assert_series_equal(first, expected)
    pd.testing.assert_series_equal(again, expected)


def test_a_cell_run_again_defines_a_new_function_and_still_runs_no_sample():
    seen: list[str] = []
    source = ("def slow(column):\n"
              "    if os.getpid() == KERNEL:\n"
              "        seen.append(column.name)\n"
              "    time.sleep(0.06)\n"
              "    return float(column.sum())\n")
    made = []
    for cell in ("<ipython-input-1>", "<ipython-input-2>"):  # the same cell, run twice
        scope = {"os": os, "time": time, "KERNEL": KERNEL, "seen": seen}
        exec(compile(source, cell, "exec"), scope)
        made.append(scope["slow"])
    assert made[0] is not made[1]
    _apply(WIDE, made[0])
    assert seen == ["c0"]
    seen.clear()
    result = _apply(WIDE, made[1])
    assert seen == []
    pd.testing.assert_series_equal(result, WIDE.apply(made[1], axis=0))


def test_another_function_is_sampled_on_its_own():
    seen: list[str] = []
    _apply(WIDE, _slow_columns(seen))
    seen.clear()

    def other(column):
        if os.getpid() == KERNEL:
            seen.append(column.name)
        time.sleep(0.06)
        return float(column.max())

    result = _apply(WIDE, other)
    assert seen == ["c0"]
    pd.testing.assert_series_equal(result, WIDE.apply(other, axis=0))


def test_an_input_more_than_twice_as_large_is_sampled_again():
    seen: list[str] = []
    slow = _slow_columns(seen)
    _apply(WIDE, slow)
    seen.clear()
    taller = pd.concat([WIDE] * 3, ignore_index=True)
    result = _apply(taller, slow)
    assert seen == ["c0"]
    pd.testing.assert_series_equal(result, taller.apply(slow, axis=0))


def test_a_narrow_margin_is_sampled_again_when_the_load_grew(monkeypatch):
    """Two workers on two CPUs save half the kernel's time on an idle machine, a quarter
    of it beside one busy process (1.33x): a margin of 2.5 then is 1.25 now, under the
    bar, so the call is sampled again (and the sample reads that load too)."""
    monkeypatch.setattr(load, "usable_cpus", lambda: 2)
    seen: list[str] = []
    slow = _slow_columns(seen)
    _apply(WIDE, slow)
    seen.clear()
    ((call, then),) = verdicts._remembered.items()
    verdicts._remembered[call] = dataclasses.replace(then, busy=0.0, margin=2.5)
    monkeypatch.setattr(load, "busy_elsewhere", lambda cpus=None: 1.0)
    result = jp.apply(WIDE, slow, axis=0, jobs=2, progress=False)
    assert seen == ["c0"]
    pd.testing.assert_series_equal(result, WIDE.apply(slow, axis=0))


def test_a_cheap_function_kept_in_the_kernel_is_sampled_every_time(monkeypatch):
    reading(monkeypatch, 0.0002)  # 0.2 ms a column: cheap whatever the host's load
    calls = []

    def cheap(column):
        calls.append(os.getpid())
        return column.iloc[0]

    for _ in range(2):
        calls.clear()
        with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
            result = ran("kernel", lambda: jp.apply(WIDE, cheap, axis=0, jobs=2,
                                                    progress=False))
        assert calls == [KERNEL] * 16
        pd.testing.assert_series_equal(result, WIDE.apply(cheap, axis=0))


def test_a_remembered_run_checks_its_verdict_by_the_workers_compute():
    """The same function made cheap by its settings still goes to the workers once (the
    verdict is remembered), but that run's compute no longer beats moving: the verdict
    is forgotten and the next call is sampled again. Work that stays slow keeps it."""
    settings = {"delay": 0.1}  # 1.6 s of work: clear beside a busy CPU too
    seen: list[str] = []

    def column_work(column):
        if os.getpid() == KERNEL:
            seen.append(column.name)
        time.sleep(settings["delay"])
        return float(column.sum())

    _apply(WIDE, column_work)
    _apply(WIDE, column_work)  # remembered: no sample, and still clear afterwards
    assert len(verdicts._remembered) == 1
    seen.clear()
    settings["delay"] = 0.0
    result = _apply(WIDE, column_work)  # remembered: to the workers, no sample
    assert seen == []
    pd.testing.assert_series_equal(result, WIDE.apply(column_work, axis=0))
    assert verdicts._remembered == {}  # its compute (16 sums) did not pay for moving
    seen.clear()
    with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
        ran("kernel", lambda: jp.apply(WIDE, column_work, axis=0, jobs=2, progress=False))
    assert seen == list(WIDE.columns)  # sampled, and kept in the kernel


def test_a_kernel_verdict_forgets_a_clear_one(monkeypatch):
    seen: list[str] = []
    slow = _slow_columns(seen)
    _apply(WIDE, slow)
    assert len(verdicts._remembered) == 1
    # The same call on an input three times as tall is sampled again; read as cheap
    # (0.2 ms a column) it stays in the kernel, and the clear verdict is dropped.
    reading(monkeypatch, 0.0002)
    taller = pd.concat([WIDE] * 3, ignore_index=True)
    with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
        ran("kernel", lambda: jp.apply(taller, slow, axis=0, jobs=2, progress=False))
    assert verdicts._remembered == {}
    # and the first input is sampled again (still read as cheap: kept in the kernel)
    seen.clear()
    with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
        ran("kernel", lambda: jp.apply(WIDE, slow, axis=0, jobs=2, progress=False))
    assert seen == list(WIDE.columns)


def test_a_row_function_slow_on_its_first_row_is_remembered_too(monkeypatch):
    # Each timed piece reads 60 ms: one row that slow ends the row sample at once (no
    # margin is computed: the work plainly outweighs moving); the run itself is real.
    reading(monkeypatch, 0.06)
    rows = pd.DataFrame(np.random.default_rng(3).standard_normal((40_000, 120)))  # 38 MB
    seen: list[int] = []

    def first_value(row):
        if os.getpid() == KERNEL:
            seen.append(row.name)
        return row.iloc[0] * 2

    ran("workers", lambda: jp.apply(rows, first_value, axis=1, jobs=2, progress=False))
    assert seen == [0, 1]  # the sample: two calls on one row each
    seen.clear()
    result = ran("workers", lambda: jp.apply(rows, first_value, axis=1, jobs=2,
                                             progress=False))
    assert seen == []
    pd.testing.assert_series_equal(result, rows.apply(first_value, axis=1))


# 1,200 groups of 100 rows: a GroupBy call over this many groups is sampled whatever its
# size (each group costs a value moved back and a step of the assembly).
GROUPED = pd.DataFrame({"k": np.repeat(np.arange(1200), 100),
                        "v": np.random.default_rng(5).standard_normal(120_000)})


@pytest.mark.parametrize("method", ["agg", "apply"])
def test_a_groupby_call_the_workers_clearly_won_is_not_sampled_again(method):
    seen: list[int] = []

    def per_group(values):
        if os.getpid() == KERNEL:
            seen.append(1)
        time.sleep(0.001)
        return float(values.sum())

    grouped = GROUPED.groupby("k")["v"]
    call = getattr(grouped.par, method)
    ran("workers", lambda: call(per_group, jobs=2, progress=False))
    assert seen, "the first call ran its first groups in the kernel (the sample)"
    seen.clear()
    result = ran("workers", lambda: call(per_group, jobs=2, progress=False))
    assert seen == []
    pd.testing.assert_series_equal(result, getattr(grouped, method)(per_group))


# -- what a call is known by -------------------------------------------------------------
def _compiled(source: str, name: str, cell: str):
    scope: dict = {}
    exec(compile(source, cell, "exec"), scope)
    return scope[name]


def test_a_call_is_known_by_its_code_form_workers_and_partitions():
    f1 = _compiled("def f(c):\n    return c.sum() + 1\n", "f", "<cell-1>")
    f2 = _compiled("def f(c):\n    return c.sum() + 1\n", "f", "<cell-2>")
    g = _compiled("def f(c):\n    return c.sum() + 2\n", "f", "<cell-3>")
    key = verdicts.key("apply(axis=0)", ColumnApply(f1), 2, 8)
    assert key == verdicts.key("apply(axis=0)", ColumnApply(f2), 2, 8)
    assert key != verdicts.key("apply(axis=0)", ColumnApply(g), 2, 8)  # a constant differs
    assert key != verdicts.key("apply(axis=0)", ColumnApply(f1), 4, 8)
    assert key != verdicts.key("apply(axis=0)", ColumnApply(f1), 2, 16)
    assert key != verdicts.key("apply(axis=1)", ColumnApply(f1), 2, 8)
    assert key != verdicts.key("apply(axis=0)", RowApply(f1), 2, 8)
    raw = verdicts.key("apply(axis=0)", ColumnApply(f1, {"raw": True}), 2, 8)
    assert raw != key
    assert raw == verdicts.key("apply(axis=0)", ColumnApply(f2, {"raw": True}), 2, 8)
    # an argument's data counts by its type, not its value (nor its hash); short plain
    # settings by their value
    assert (verdicts.key("x", ColumnApply(f1, {"args": (np.zeros(3), list(range(100)))}), 2, 8)
            == verdicts.key("x", ColumnApply(f1, {"args": (np.ones(5), list(range(50)))}), 2, 8))
    assert (verdicts.key("x", ColumnApply(f1, {"args": (1, "a")}), 2, 8)
            != verdicts.key("x", ColumnApply(f1, {"args": (2, "a")}), 2, 8))
    # functools.partial: its function; a callable object or a ufunc: its type and name
    assert (verdicts.key("x", ColumnApply(functools.partial(f1)), 2, 8)
            == verdicts.key("x", ColumnApply(functools.partial(f2, 3)), 2, 8))
    assert verdicts.key("x", ColumnApply(np.sqrt), 2, 8) != verdicts.key(
        "x", ColumnApply(np.exp), 2, 8)
    assert verdicts.key("x", object(), 2, 8) is None  # no user function: never remembered


def test_a_groupby_calls_spec_is_known_by_its_functions_and_names():
    f1 = _compiled("def f(c):\n    return c.sum() + 1\n", "f", "<cell-1>")
    f2 = _compiled("def f(c):\n    return c.sum() + 1\n", "f", "<cell-2>")
    g = _compiled("def f(c):\n    return c.max()\n", "f", "<cell-3>")

    @dataclasses.dataclass
    class Call:  # the fields of planning.group_replay.GroupCall the key reads
        method: str
        spec: object
        kwargs: dict

    def key(method, spec, **kwargs):
        return verdicts.key("groupby", Call(method, spec, kwargs), 2, 8)

    assert key("agg", [f1, "sum"]) == key("agg", [f2, "sum"])
    assert key("agg", [f1, "sum"]) != key("agg", [g, "sum"])
    assert key("agg", [f1, "sum"]) != key("agg", [f1, "mean"])
    assert key("agg", {"a": f1}) == key("agg", {"a": f2})
    assert key("agg", {"a": f1}) != key("agg", {"b": f1})
    assert key("agg", f1) != key("transform", f1)
    # named aggregation: the functions are in the keywords
    assert key("agg", None, total=("v", f1)) is None  # no spec, no func: not remembered
    assert (verdicts._settings(Call("agg", None, {"total": ("v", f1)}))
            == verdicts._settings(Call("agg", None, {"total": ("v", f2)})))
    assert (verdicts._settings(Call("agg", None, {"total": ("v", f1)}))
            != verdicts._settings(Call("agg", None, {"total": ("v", g)})))


@pytest.mark.parametrize("margin, kept", [(None, False), (1.2, False), (verdicts.CLEAR, True),
                                          (float("inf"), True)])
def test_only_a_clear_margin_is_kept(monkeypatch, margin, kept):
    monkeypatch.setattr(load, "busy_elsewhere", lambda cpus=None: 0.0)  # the load then
    size = _Size(rows=1000, weighted_bytes=8e6, groups=0)
    verdicts.note(("call",), size, 2, 0.0, margin)
    assert verdicts.clear_for(("call",), size) is kept


class _Size:
    def __init__(self, rows: int, weighted_bytes: float, groups: int) -> None:
        self.rows, self.weighted_bytes, self.groups = rows, weighted_bytes, groups


def test_sizes_within_twice_match_and_beyond_do_not(monkeypatch):
    monkeypatch.setattr(verdicts.load, "busy_elsewhere", lambda cpus=None: 0.0)
    verdicts.note(("call",), _Size(1000, 8e6, 50), 2, 0.0, 10.0)
    assert verdicts.clear_for(("call",), _Size(1999, 15e6, 26))
    assert not verdicts.clear_for(("call",), _Size(2100, 8e6, 50))
    assert not verdicts.clear_for(("call",), _Size(1000, 3e6, 50))
    assert not verdicts.clear_for(("call",), _Size(1000, 8e6, 0))  # groups now, none then
    assert not verdicts.clear_for(("other",), _Size(1000, 8e6, 50))


@pytest.mark.parametrize("margin, clear_beside_one", [(3.0, False), (5.0, True),
                                                     (float("inf"), True)])
def test_a_margin_is_scaled_to_the_load_now(monkeypatch, margin, clear_beside_one):
    """On two CPUs two workers run 2x the kernel when idle, 1.33x beside one busy
    process: the saving halves (0.5 of the kernel's time, then 0.25), and so does the
    margin (3 -> 1.5, under the bar of 2; 5 -> 2.5, still clear)."""
    monkeypatch.setattr(load, "usable_cpus", lambda: 2)
    verdicts.note(("call",), _Size(1000, 8e6, 0), 2, 0.0, margin)
    (then,) = verdicts._remembered.values()
    assert then.margin_now(1.0) == pytest.approx(margin / 2)
    for busy, clear in ((0.0, True), (1.0, clear_beside_one)):
        monkeypatch.setattr(load, "busy_elsewhere", lambda cpus=None, b=busy: b)
        assert verdicts.clear_for(("call",), _Size(1000, 8e6, 0)) is clear, busy


def test_the_memory_keeps_the_most_recently_used_calls():
    for i in range(verdicts.KEPT + 5):
        verdicts.note(("call", i), _Size(10, 10.0, 0), 2, 0.0, 10.0)
    assert len(verdicts._remembered) == verdicts.KEPT
    assert ("call", 0) not in verdicts._remembered
    assert ("call", verdicts.KEPT + 4) in verdicts._remembered
