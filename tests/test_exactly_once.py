"""Each row, element and group runs exactly once, on every path (issue 25).

The in-kernel fallback's sample used to run the function on the first rows in the
kernel and then let the workers run every row again. Now the sample's pieces are the
run's own first partitions: a counter shared with the workers (a file each call appends
its row's id and its process to) must read every row exactly once, whether the verdict
sends the rest to the workers or keeps it in the kernel. The sample is forced on small
inputs by lowering the size it starts at (the decision is the kernel's, made in this
process); the test asserts the sample ran (calls in this process) where it applies.
"""

from __future__ import annotations

import os
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par.machine.limits import OversubscribeWarning
from jupyter_par.run import fallback as cost
from jupyter_par.run.options import resolve
from jupyter_par.widgets.runner import Selection

ROWS = 3000
BACKENDS = [("processes", "fork"), ("processes", "spawn"), ("threads", None),
            ("inline", None)]


@pytest.fixture
def sampled(monkeypatch):
    """Every input is worth a sample (the cost model runs in this, the kernel's, process)."""
    monkeypatch.setattr(cost, "SAMPLE_ABOVE_BYTES", 0)


#: The sample's one-row calls (the first warms up; the faster of the two is the verdict's
#: cost of one call): slow on both, the run goes to the workers with no further sample.
ONE_ROW_CALLS = (0, 1)


def counting(path: Path, slow_rows: tuple[int, ...] = ()):
    """A function of one value that appends ``pid value`` to ``path`` per call; the row
    ``slow_rows`` sleep past the one-row limit, which sends the run to the workers."""
    name = str(path)

    def count(value):
        with open(name, "a") as f:
            f.write(f"{os.getpid()} {int(value)}\n")
        if int(value) in slow_rows:
            time.sleep(0.08)
        return value * 2

    return count


def calls(path: Path) -> tuple[Counter, set[int]]:
    """How many times each value was seen, and the processes that saw them."""
    seen, pids = Counter(), set()
    for line in path.read_text().splitlines():
        pid, value = line.split()
        seen[int(value)] += 1
        pids.add(int(pid))
    return seen, pids


def options(backend: str, start: str | None) -> dict:
    extra = {"start_method": start} if start else {}
    return {"jobs": 2, "backend": backend, "progress": False, "partitions": 8, **extra}


def assert_once(path: Path, values) -> set[int]:
    seen, pids = calls(path)
    twice = {v: n for v, n in seen.items() if n != 1}
    assert not twice, f"values run more than once: {dict(list(twice.items())[:5])}"
    assert set(seen) == set(values)
    return pids


@pytest.mark.parametrize(("backend", "start"), BACKENDS)
@pytest.mark.parametrize("verdict", ["kernel", "workers"])
def test_map_and_apply_run_each_row_once(tmp_path, sampled, monkeypatch, backend, start,
                                         verdict):
    series = pd.Series(np.arange(ROWS), name="v")
    slow = ONE_ROW_CALLS if verdict == "workers" else ()
    if verdict == "kernel":  # moving made to look dear: the rest stays in the kernel
        monkeypatch.setattr(cost, "PARTITION_SECONDS", 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = jp.map(series, counting(tmp_path / "map", slow), **options(backend, start))
        pd.testing.assert_series_equal(got, series * 2)
        frame = pd.DataFrame({"v": np.arange(ROWS)})
        func = counting(tmp_path / "apply", slow)
        got = jp.apply(frame, lambda row: func(row["v"]), axis=1, **options(backend, start))
        pd.testing.assert_series_equal(got, frame.apply(lambda row: row["v"] * 2, axis=1))
    pids = assert_once(tmp_path / "map", range(ROWS))
    assert_once(tmp_path / "apply", range(ROWS))
    fallback = [w for w in caught if issubclass(w.category, jp.InlineFallbackWarning)]
    if backend == "processes":
        assert os.getpid() in pids  # the sample ran its pieces here, once
        assert bool(fallback) == (verdict == "kernel")
        if verdict == "workers":
            assert pids - {os.getpid()}, "the rest went to the workers"
    assert jp.last_run() is not None


@pytest.mark.parametrize(("backend", "start"), BACKENDS)
def test_groupby_runs_each_group_once(tmp_path, sampled, backend, start):
    frame = pd.DataFrame({"k": np.arange(ROWS) % 500, "v": np.arange(ROWS)})
    func = counting(tmp_path / "groups")
    with warnings.catch_warnings():  # either verdict: the groups are counted
        warnings.simplefilter("ignore", jp.InlineFallbackWarning)
        got = jp.groupby_apply(frame, "k", lambda g: func(g.name) + len(g),
                               **options(backend, start))
    expected = frame.groupby("k").apply(lambda g: g.name * 2 + len(g))
    pd.testing.assert_series_equal(got, expected)
    assert_once(tmp_path / "groups", range(500))


@pytest.mark.parametrize(("backend", "start"), BACKENDS)
def test_the_panel_runs_each_row_once(tmp_path, sampled, backend, start):
    frame = pd.DataFrame({"v": np.arange(ROWS)})
    func = counting(tmp_path / "panel")
    selection = Selection(frame, lambda row: func(row["v"]))
    resolved = resolve(**options(backend, start))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jp.InlineFallbackWarning)
        got, _ = selection.run(resolved)
    pd.testing.assert_series_equal(got, frame.apply(lambda row: row["v"] * 2, axis=1))
    assert_once(tmp_path / "panel", range(ROWS))


@pytest.mark.parametrize(("backend", "start"), BACKENDS)
def test_the_magic_runs_each_row_once(tmp_path, sampled, shell, backend, start):
    shell.user_ns["df_once"] = pd.DataFrame({"v": np.arange(ROWS)})
    shell.user_ns["count"] = counting(tmp_path / "magic")
    flags = f"--backend {backend} -j 2 --partitions 8 --no-progress" + \
        (f" --start {start}" if start else "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jp.InlineFallbackWarning)
        shell.run_cell_magic("parallel", f"df_once {flags}",
                             textwrap.dedent("df_once['w'] = df_once.v.map(count)\n"))
    got = shell.user_ns["df_once"]
    assert got["w"].tolist() == list(range(0, 2 * ROWS, 2))
    pids = assert_once(tmp_path / "magic", range(ROWS))
    if backend == "processes":
        assert os.getpid() in pids  # the sample's pieces ran in the kernel, once


FAIL_FAST_SETUP = '''
import time
def agg_part(frame):
    time.sleep(0.5)
    with open(FINISHED, "a") as f:
        f.write(f"{frame.v.iloc[0]}\\n")
    return int(frame.v.sum())
'''


def finished_partitions(path: Path) -> Counter:
    return Counter(path.read_text().split()) if path.exists() else Counter()


@pytest.mark.parametrize("flag", ["--reduce sum", "--per-partition"])
def test_a_refused_cell_stops_at_its_first_partition_and_keeps_it(tmp_path, shell, flag):
    """16 partitions of 0.5 s on two workers: the refusal comes after the first, not after
    all eight rounds; nothing is written; the flag's run computes only what was not kept."""
    from IPython.core.error import UsageError

    shell.user_ns["FINISHED"] = str(tmp_path / "finished")
    shell.run_cell(FAIL_FAST_SETUP, store_history=False).raise_error()
    frame = pd.DataFrame({"v": np.arange(160)})
    shell.user_ns["df_ff"] = frame
    jp.map(pd.Series([1, 2]), abs, jobs=2, progress=False, inline_fallback=False)  # warm
    started = time.perf_counter()
    with pytest.raises(UsageError, match=r"value of df_ff is not row-aligned.*finished are kept"):
        shell.run_cell_magic("parallel", "df_ff -j 2 --partitions 16 --no-progress",
                             "df_ff = agg_part(df_ff)\n")
    assert time.perf_counter() - started < 3.0  # all eight rounds would take 4 s
    assert shell.user_ns["df_ff"] is frame  # nothing written
    first = finished_partitions(tmp_path / "finished")
    assert 1 <= sum(first.values()) <= 2
    shell.run_cell_magic("parallel", f"df_ff -j 2 --partitions 16 --no-progress {flag}",
                         "df_ff = agg_part(df_ff)\n")
    both = finished_partitions(tmp_path / "finished")
    assert sorted(both) == sorted(str(10 * i) for i in range(16))
    assert set(both.values()) == {1}, "a kept partition was computed again"
    sums = [int(frame.v.iloc[10 * i:10 * i + 10].sum()) for i in range(16)]
    expected = sum(sums) if flag.startswith("--reduce") else sums
    got = shell.user_ns["df_ff"]
    assert (got.tolist() if isinstance(got, pd.Series) else got) == expected


COLUMNS_SETUP = '''
import pandas as pd
def clean(column):
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes  # a Series without the column's name
    return column.fillna(0)
'''
COLUMNS_BODY = "df_c = pd.concat([clean(df_c[c]) for c in df_c.columns], axis=1)\n"


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_column_cleaning_under_axis_columns_equals_serial(shell, backend):
    shell.run_cell(COLUMNS_SETUP, store_history=False).raise_error()
    frame = pd.DataFrame({
        "a": [1.0, None, 3.0, 4.0], "b": pd.Categorical(["x", "y", "x", "z"]),
        "c": [None, 2.0, 2.0, 1.0], "d": pd.Categorical(["u", "u", "v", "v"]),
        "e": [5, 6, 7, 8], "f": pd.Categorical(["p", "q", "p", "q"])})
    namespace = {"pd": pd, "df_c": frame, "clean": shell.user_ns["clean"]}
    exec(COLUMNS_BODY, namespace)  # the serial run over the whole frame
    shell.user_ns["df_c"] = frame
    shell.run_cell_magic("parallel", f"df_c --axis columns -j 2 --partitions 3 "
                         f"--backend {backend} --no-progress", COLUMNS_BODY)
    pd.testing.assert_frame_equal(shell.user_ns["df_c"], namespace["df_c"])


def test_a_column_body_that_cannot_be_combined_gets_advice_for_columns(shell):
    from IPython.core.error import UsageError

    shell.user_ns["df_c"] = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    with pytest.raises(UsageError, match=r"does not keep its partition's columns.*--reduce") \
            as raised:
        shell.run_cell_magic("parallel", "df_c --axis columns -j 2 --partitions 3 "
                             "--backend threads --no-progress", "df_c = df_c.sum().sum()\n")
    assert "--by" not in str(raised.value)


def test_jupyter_pars_own_warnings_point_at_the_users_line(shell):
    """An oversubscription notice names the caller's line (the API) or the cell (the
    magic), never a line of jupyter_par's own (issue 25, item 4)."""
    series = pd.Series(range(8))
    with pytest.warns(OversubscribeWarning) as api_warnings:
        jp.map(series, abs, jobs=400, backend="threads", progress=False)
    assert [w.filename for w in api_warnings] == [__file__]
    shell.user_ns["df_w"] = pd.DataFrame({"v": range(8)})
    with pytest.warns(OversubscribeWarning) as cell_warnings:
        shell.run_cell_magic("parallel", "df_w -j 400 --backend threads --no-progress",
                             "df_w['w'] = df_w.v + 1\n")
    assert all("jupyter_par" not in w.filename for w in cell_warnings)
    assert all(w.lineno == 1 for w in cell_warnings)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_function_of_whole_partitions_is_sampled_on_the_first_one_whole(tmp_path, sampled,
                                                                          start):
    """map_partitions and groups cannot be cut anywhere: the sample is the first partition
    itself, run once in the kernel and kept, and the verdict comes from it."""
    frame = pd.DataFrame({"v": np.arange(ROWS)})
    log = str(tmp_path / "parts")

    def per_partition(part):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {part.v.iloc[0]} {len(part)}\n")
        return part.v * 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = jp.map_partitions(frame, per_partition, jobs=2, partitions=8, progress=False,
                                start_method=start)
    pd.testing.assert_series_equal(got, frame.v * 2)
    lines = [line.split() for line in Path(log).read_text().splitlines()]
    assert sorted(int(first) for _, first, _ in lines) == list(range(0, ROWS, ROWS // 8))
    assert sum(int(n) for _, _, n in lines) == ROWS  # eight calls, every row once
    assert int(lines[0][0]) == os.getpid()  # the first partition, in the kernel
    fell_back = any(issubclass(w.category, jp.InlineFallbackWarning) for w in caught)
    assert fell_back == all(int(pid) == os.getpid() for pid, _, _ in lines)


@pytest.mark.parametrize("verdict", ["kernel", "workers"])
def test_the_progress_counts_the_samples_rows_once(tmp_path, sampled, monkeypatch, verdict):
    """The sample's pieces are the run's first partitions: the bar's totals hold every
    row once, the sample's shown as done by the kernel."""
    if verdict == "kernel":
        monkeypatch.setattr(cost, "PARTITION_SECONDS", 1.0)
    series = pd.Series(np.arange(ROWS))
    snapshots = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jp.InlineFallbackWarning)
        slow = () if verdict == "kernel" else ONE_ROW_CALLS
        jp.map(series, counting(tmp_path / "p", slow), jobs=2, partitions=8,
               progress=snapshots.append)
    final = snapshots[-1]
    assert final.rows_done == final.rows_total == ROWS
    assert final.partitions_done == final.partitions_total > 8  # the sample's pieces too
    assert any(w.worker == "kernel" for w in final.workers)
