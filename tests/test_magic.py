"""``%%parallel`` in an in-process IPython shell: results equal a serial run of the same cell.

Each test runs the cell body serially first (plain ``exec`` in a copy of the notebook
namespace) and compares with what the magic wrote back or returned. Worker pools are
shared between tests (two workers) so only the first test pays for starting them.
"""

from __future__ import annotations

import os
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.errors import PartialResultWarning

PROCS = "--jobs 2 --backend processes --no-progress"
THREADS = "--jobs 2 --backend threads --no-progress"

SETUP = """
import numpy as np
import pandas as pd
OFFSET = 3
def helper(x):
    return x * OFFSET
def score(row):
    return helper(row["a"]) + np.sqrt(abs(row["b"]))
rng = np.random.default_rng(0)
n = 120
df = pd.DataFrame(
    {"a": rng.integers(0, 50, n), "b": rng.normal(size=n),
     "k": rng.choice(["x", "y", "z"], n)},
    index=pd.Index([f"r{i}" for i in range(n)], name="id"),
)
"""


@pytest.fixture
def ns(shell):
    """A fresh notebook namespace with ``df``, ``score`` and its helpers."""
    shell.run_cell(SETUP, store_history=False).raise_error()
    return shell.user_ns


def cell(shell, line: str, body: str):
    return shell.run_cell_magic("parallel", line, textwrap.dedent(body))


def serial(ns, target: str, body: str, out: str | None = None):
    """What running the body once over the whole TARGET gives (a copy of the namespace)."""
    scope = dict(ns)
    scope[target] = ns[target].copy() if hasattr(ns[target], "copy") else ns[target]
    body = textwrap.dedent(body)
    *statements, last = body.strip().splitlines()
    try:
        compile(last, "<last>", "eval")
    except SyntaxError:
        exec(body, scope)
        return scope[target]
    exec("\n".join(statements), scope)
    return eval(last, scope)


@pytest.mark.parametrize("line", [PROCS, THREADS, "--jobs 1 --no-progress"])
def test_row_apply_writes_back_what_a_serial_run_gives(shell, ns, line):
    body = """
    df["score"] = df.apply(score, axis=1)
    df["twice"] = df["a"].map(lambda v: v * 2)
    """
    expected = serial(ns, "df", body)
    assert cell(shell, f"{line} df", body) is None
    pd.testing.assert_frame_equal(ns["df"], expected)


def test_trailing_expression_is_the_output_and_target_is_unchanged(shell, ns):
    before = ns["df"]
    body = "df.assign(s=df.apply(score, axis=1))[['s']]\n"
    result = cell(shell, f"{PROCS} df", body)
    pd.testing.assert_frame_equal(result, serial(ns, "df", body))
    assert ns["df"] is before
    stored = cell(shell, f"{PROCS} --out scored df", body)
    assert ns["scored"] is stored
    pd.testing.assert_frame_equal(stored, result)


@pytest.mark.parametrize("line", [PROCS, "--jobs 1 --no-progress"])
def test_a_cell_ending_in_print_writes_target_back_like_a_serial_run(shell, ns, line, capsys):
    body = """
    df["score"] = df.apply(score, axis=1)
    print(len(df))
    """
    scope = dict(ns, df=ns["df"].copy())
    exec(textwrap.dedent(body), scope)
    capsys.readouterr()
    assert cell(shell, f"{line} df", body) is None
    pd.testing.assert_frame_equal(ns["df"], scope["df"])
    assert "score" in ns["df"].columns


def test_out_receives_the_written_back_target(shell, ns):
    before = ns["df"]
    body = "df = df[df['a'] > 10]\n"
    cell(shell, f"{PROCS} --out big df", body)
    assert ns["df"] is before
    pd.testing.assert_frame_equal(ns["big"], serial(ns, "df", body))


def test_by_keeps_groups_whole_and_matches_groupby(shell, ns):
    body = "df.groupby('k').apply(lambda g: g['a'].max() - g['a'].min())\n"
    result = cell(shell, f"{PROCS} --partitions 3 --by k df", body)
    pd.testing.assert_series_equal(result, serial(ns, "df", body))


def test_by_transform_keeps_the_original_row_order(shell, ns):
    body = "df['centred'] = df['b'] - df.groupby('k')['b'].transform('mean')\n"
    expected = serial(ns, "df", body)
    cell(shell, f"{PROCS} --by k df", body)
    pd.testing.assert_frame_equal(ns["df"], expected)


def test_axis_columns(shell, ns):
    ns["wide"] = pd.DataFrame(np.arange(60.0).reshape(6, 10), columns=list("abcdefghij"))
    body = "wide = wide * 2 + 1\n"
    expected = serial(ns, "wide", body)
    cell(shell, f"{PROCS} --axis columns wide", body)
    pd.testing.assert_frame_equal(ns["wide"], expected)
    sums = cell(shell, f"{PROCS} --axis columns wide", "wide.sum()\n")
    pd.testing.assert_series_equal(sums, serial(ns, "wide", "wide.sum()\n"))


def test_series_target(shell, ns):
    ns["s"] = ns["df"]["a"].rename("a")
    body = "s = s.map(helper) + 1\n"
    expected = serial(ns, "s", body)
    cell(shell, f"{PROCS} s", body)
    pd.testing.assert_series_equal(ns["s"], expected)


def test_list_of_tasks_on_threads(shell, ns):
    ns["tasks"] = [{"id": i, "n": i % 7} for i in range(23)]
    body = "tasks = [dict(t, total=helper(t['n'])) for t in tasks]\n"
    expected = serial(ns, "tasks", body)
    cell(shell, f"{THREADS} tasks", body)
    assert ns["tasks"] == expected
    # A trailing expression that is an aggregate (not a list) needs --reduce: a serial
    # run gives one number, stacking would give one per partition.
    with pytest.raises(UsageError, match="--reduce"):
        cell(shell, f"{THREADS} --partitions 4 tasks", "len(tasks)\n")
    assert cell(shell, f"{THREADS} --partitions 4 --reduce list tasks", "len(tasks)\n") == \
        [6, 6, 5, 6]
    assert cell(shell, f"{THREADS} --partitions 4 --reduce sum tasks", "len(tasks)\n") == 23


def test_chunked_reader_is_read_lazily_into_one_frame(shell, ns, tmp_path):
    path = tmp_path / "data.csv"
    ns["df"].to_csv(path)
    ns["reader"] = pd.read_csv(path, chunksize=25, index_col="id")
    body = "reader[reader['a'] > 20].assign(s=reader.apply(score, axis=1))\n"
    result = cell(shell, f"{PROCS} --out picked reader", body)
    frame = pd.read_csv(path, index_col="id")
    expected = frame[frame["a"] > 20].assign(s=frame.apply(ns["score"], axis=1))
    pd.testing.assert_frame_equal(result, expected)
    assert ns["picked"] is result


def test_failure_changes_nothing_and_names_the_cell_line_and_row(shell, ns):
    before = ns["df"]
    ns["bad"] = "r37"
    body = """
    def check(row):
        if row.name == bad:
            raise ValueError(f"cannot score {row.name}")
        return 1
    df["ok"] = df.apply(check, axis=1)
    """
    with pytest.raises(ValueError, match="cannot score r37") as info:
        cell(shell, f"{PROCS} --out result df", body)
    assert ns["df"] is before and "ok" not in before
    assert "result" not in ns
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "row label 'r37'" in notes and "partition" in notes
    remote = info.value.__cause__.traceback_text
    # the body starts with an empty line: the raise is body line 4, cell line 5, and
    # the apply call is body line 6, cell line 7
    assert ", line 5, in check" in remote and "raise ValueError" in remote
    assert ", line 7, in <module>" in remote


@pytest.mark.parametrize("line", [THREADS, "--jobs 1 --no-progress"])
def test_items_changed_in_place_by_a_failed_run_are_left_as_they_were(shell, ns, line):
    ns["jobs"] = [{"n": i} for i in range(8)]
    body = """
    for t in jobs:
        t['n'] += 100
    if any(t['n'] == 106 for t in jobs):
        raise OSError('partition 3 fails after the others changed their items')
    """
    with pytest.raises(OSError):
        # the condition is per partition on purpose: one partition fails, others changed
        cell(shell, f"{line} --partitions 4 --per-partition jobs", body)
    assert ns["jobs"] == [{"n": i} for i in range(8)]


def test_on_error_skip_keeps_the_rest_and_reports(shell, ns):
    body = """
    if df.index[0] == "r0":
        raise KeyError("first partition")
    df["s"] = df.apply(score, axis=1)
    """
    report = "(?s)1 partition.*4 in all.*KeyError: .first partition"
    with pytest.warns(PartialResultWarning, match=report):
        # failing the partition that starts at r0 is per partition on purpose
        cell(shell, f"{PROCS} --partitions 4 --on-error skip --per-partition df", body)
    expected = ns["df"]
    assert len(expected) == 90 and expected.index[0] == "r30"
    # Python's default filter shows a warning once per place; every skip must be reported
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(2):  # df now starts at r30: that partition fails
            cell(shell, f"{PROCS} --partitions 3 --on-error skip --per-partition --out again df",
                 body.replace("r0", "r30"))
    assert sum(issubclass(w.category, PartialResultWarning) for w in caught) == 2


def test_output_printed_before_a_failure_is_still_shown(shell, ns, capsys):
    body = "print('checking', df.index[0])\nif df.index[0] == 'r30':\n    raise ValueError('r30')\n"
    with pytest.raises(ValueError):
        cell(shell, f"{PROCS} --partitions 4 --per-partition df", body)  # on purpose
    out = capsys.readouterr().out
    assert "[partition 1, worker" in out and "checking r30" in out, out


def test_failures_show_the_user_frames_not_ours(shell, ns, capsys):
    shell.run_cell("def strict(row):\n    if row.name == 'r44':\n        raise ValueError('r44!')\n"
                   "    return 1", store_history=True)
    before = ns["df"]
    result = shell.run_cell(f"%%parallel {PROCS} df\ndf['s'] = df.apply(strict, axis=1)",
                            store_history=True)
    assert type(result.error_in_exec) is ValueError and ns["df"] is before
    shown = capsys.readouterr().out
    assert f"Cell In[{result.execution_count}], line 2" in shown
    assert "raise ValueError('r44!')" in shown and "row label 'r44'" in shown
    assert "jupyter_par" + os.sep not in shown and "run_cell_magic" not in shown, shown
    result = shell.run_cell(f"%%parallel {PROCS} --timeout 0.3 --partitions 2 df\n"
                            "import time\ntime.sleep(20)", store_history=True)
    assert isinstance(result.error_in_exec, jp.PartitionTimeoutError)
    shown = capsys.readouterr().out.strip()
    assert shown.startswith("PartitionTimeoutError: partition") and "\n" not in shown, shown


def test_assigned_names_are_reported_in_one_line(shell, ns, capsys):
    cell(shell, f"{THREADS} df", "tmp = df['a'] + 1\ndf['c'] = tmp\n")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "stayed in the workers" in ln]
    assert lines == [
        "jupyter_par: tmp stayed in the workers; only the result is written back (to df)."
    ]


def test_output_is_grouped_per_partition_in_order(shell, ns, capsys):
    cell(shell, f"{PROCS} --partitions 3 df", "print('first', df.index[0])\nprint('last')\n")
    out = capsys.readouterr().out.splitlines()
    headings = [i for i, ln in enumerate(out) if ln.startswith("[partition ")]
    assert [out[i].split(",")[0] for i in headings] == [
        "[partition 0", "[partition 1", "[partition 2"]
    for i, first in zip(headings, ["r0", "r40", "r80"]):
        assert out[i + 1 : i + 3] == [f"first {first}", "last"]


def test_share_sends_names_the_body_cannot_name(shell, ns):
    ns["lookup"] = {"x": 1, "y": 2, "z": 3}
    body = "df['v'] = df['k'].map(globals()['lookup'])\n"
    with pytest.raises(KeyError):
        cell(shell, f"{PROCS} df", body)
    cell(shell, f"{PROCS} --share lookup df", body)
    assert list(ns["df"]["v"]) == [ns["lookup"][k] for k in ns["df"]["k"]]


def test_share_maps_data_read_only_once_per_warm_worker(shell, ns):
    ns["big"] = np.arange(10_000)
    body = ("import os\nimport jupyter_par.wire.shared_objects as s\n"
            "(os.getpid(), s.loads_in_this_process(), big.flags.writeable,\n"
            " int(big[df['a']].sum()))")
    first = cell(shell, f"{PROCS} --partitions 4 --share big --reduce list df", body)
    again = cell(shell, f"{PROCS} --partitions 4 --share big --reduce list df", body)
    # the workers see the notebook's array through read-only shared memory...
    assert not any(writeable for _, _, writeable, _ in first + again)
    a = ns["df"]["a"].to_numpy()
    assert [r[3] for r in first] == [int(ns["big"][a[i:i + 30]].sum()) for i in (0, 30, 60, 90)]
    # ...and a warm worker that already holds the same content loads nothing new
    loaded = {pid: n for pid, n, _, _ in first}
    assert all(n == loaded.get(pid, n) for pid, n, _, _ in again)


def test_attribute_names_do_not_send_notebook_variables(shell, ns):
    # a generator cannot be pickled: sending it would fail the run
    ns["clip"] = ns["values"] = ns["shape"] = (i for i in range(3))
    body = "df['r'] = df['a'].clip(5, 40)\ndf['n'] = df.values.shape[1]\n"
    expected = serial(ns, "df", body)
    cell(shell, f"{PROCS} df", body)
    pd.testing.assert_frame_equal(ns["df"], expected)


def test_jobs_1_runs_in_the_kernel_and_processes_elsewhere(shell, ns):
    ns["items"] = list(range(8))
    body = "import os\nos.getpid()\n"
    assert set(cell(shell, "--jobs 1 --no-progress --reduce list items", body)) == {os.getpid()}
    assert os.getpid() not in cell(shell, f"{PROCS} --reduce list items", body)


def test_pandas_is_counted_only_inside_worker_processes(shell, ns):
    body = "hasattr(pd.DataFrame.apply, '__wrapped__')\n"
    assert set(cell(shell, f"{PROCS} --reduce list df", body)) == {True}
    assert set(cell(shell, f"{THREADS} --reduce list df", body)) == {False}
    assert not hasattr(pd.DataFrame.apply, "__wrapped__")


def test_rows_are_reported_inside_a_partition(shell, ns):
    seen = []
    jp.set_defaults(progress=seen.append)
    try:
        body = """
        import time
        df["s"] = df.apply(lambda r: time.sleep(0.004) or r["a"], axis=1)
        """
        cell(shell, "--jobs 2 --backend processes --partitions 2 df", body)
    finally:
        jp.set_defaults(progress=None)
    partial = [w for p in seen for w in p.workers if 0 < w.rows_done < w.rows_assigned]
    assert partial, "no update showed a worker part-way through its partition"
    assert seen[-1].rows_done == len(ns["df"])


@pytest.mark.parametrize(("line", "body", "message"), [
    ("", "x\n", "the following arguments are required: TARGET"),
    ("--jobs 2 nothing", "x\n", "TARGET 'nothing' is not defined"),
    ("--jobs 2 number", "x\n", "TARGET number is a int"),
    ("--jobs 2 text", "x\n", "TARGET text is a str"),
    ("--jobs 2 mapping", "x\n", "TARGET mapping is a dict"),
    ("--bogus df", "x\n", "unrecognized arguments: --bogus"),
    ("--jobs 0 df", "x\n", "jobs must be a whole number: 1 or more, or -1 for all CPUs"),
    ("--jobs -9 df", "x\n", "jobs=-9 leaves no worker on"),
    ("--jobs two df", "x\n", "argument -j/--jobs: invalid int value"),
    ("--partitions 0 df", "x\n", "partitions must be a whole number of at least 1"),
    ("--retries -1 df", "x\n", "retries must be a whole number of at least 0"),
    ("--timeout 0 df", "x\n", "timeout must be a number of seconds above 0"),
    ("--backend gpu df", "x\n", "backend must be one of processes"),
    ("--by nope df", "x\n", "--by column(s) 'nope' not in df"),
    ("--by k number", "x\n", "--by needs a DataFrame or Series TARGET"),
    ("--by k --axis columns df", "x\n", "--by and --axis columns cannot be combined"),
    ("--axis columns tasks", "x\n", "--axis columns needs a DataFrame TARGET"),
    ("--share missing df", "df\n", "--share names 'missing', not defined"),
    ("--out 1x df", "df\n", "--out must be a variable name"),
    ("df", "df['a'] = 1\nx = (\n", "the cell body does not compile: '(' was never closed "
                                   "(cell line 3)"),
    ("df", "  \n", "the %%parallel cell has no body"),
])
def test_bad_input_is_one_line_usage_error(shell, ns, line, body, message):
    ns.update(number=3, text="abc", mapping={"a": 1}, tasks=[1, 2])
    before = ns["df"]
    with pytest.raises(UsageError) as info:
        cell(shell, line, body)
    assert message in str(info.value)
    assert "\n" not in str(info.value).strip()
    assert ns["df"] is before


def test_config_shutdown_and_unload(shell, capsys):
    shell.run_line_magic("parallel_config", "--jobs 3 --backend threads --progress off")
    shown = capsys.readouterr().out
    assert "jobs" in shown and "3" in shown and "'threads'" in shown
    assert jp.current_defaults()["jobs"] == 3 and jp.current_defaults()["progress"] is False
    shell.run_line_magic("parallel_config", "--start spawn")  # setting one keeps the others
    assert jp.current_defaults()["jobs"] == 3 and jp.current_defaults()["backend"] == "threads"
    assert jp.current_defaults()["start_method"] == "spawn"
    with pytest.raises(UsageError, match="jobs must be"):
        shell.run_line_magic("parallel_config", "--jobs 0")
    shell.run_line_magic("parallel_config", "--reset")
    assert jp.current_defaults()["backend"] == "processes"
    shell.run_line_magic("parallel_shutdown", "")
    assert backends.warm_backends() == {}
    assert "stopped" in capsys.readouterr().out
    shell.run_line_magic("unload_ext", "jupyter_par")
    assert "parallel" not in shell.magics_manager.magics["cell"]
    assert "parallel_config" not in shell.magics_manager.magics["line"]
    shell.run_line_magic("load_ext", "jupyter_par")
    assert "parallel" in shell.magics_manager.magics["cell"]


def test_help_teaches_with_an_example(shell):
    doc = shell.find_cell_magic("parallel").__doc__
    assert "%%parallel --jobs 4 df" in doc and "--on-error" in doc and "TARGET" in doc
