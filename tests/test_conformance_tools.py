"""The conformance suite's own parts: how calls are rewritten, and how runs are compared.

The suite itself (``scripts/conformance.sh``) runs pandas' tests; these check that the
plugin turns each pandas call into the jupyter_par call a user would write, passes on
what the API cannot express, stays invisible to warning locations, and that the
comparison counts and excuses as documented.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

import jupyter_par as jp

sys.path.insert(0, str(Path(__file__).parent / "conformance"))
import compare
import jp_route


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 1, 2], "b": [1.0, 2.0, 3.0]})


def _plan(plan, method, obj, *args, **kwargs):
    return plan(method, obj, args, kwargs)


def test_frame_apply_keeps_every_pandas_keyword(df):
    func, args, kwargs = _plan(jp_route.plan_apply, pd.DataFrame.apply, df, len, axis=1,
                               raw=True, args=(2,), k=3)
    assert func is jp.apply
    assert args == (df, len)
    assert {"axis": 1, "raw": True, "args": (2,), "k": 3}.items() <= kwargs.items()
    assert kwargs["jobs"] == 2 and kwargs["inline_fallback"] is False


@pytest.mark.parametrize(("func", "kwargs", "reason"), [
    ("sum", {}, "func is not callable (str)"),
    ([len], {}, "func is not callable (list)"),
    (len, {"timeout": 3}, "keyword named like a jupyter_par argument: timeout"),
])
def test_apply_shapes_the_api_cannot_express_pass_through(df, func, kwargs, reason):
    assert _plan(jp_route.plan_apply, pd.DataFrame.apply, df, func, **kwargs) == reason


def test_series_apply_keyword_named_axis_passes_through(df):
    # jp.apply takes axis itself and ignores it for a Series: the function would lose it.
    reason = _plan(jp_route.plan_apply, pd.Series.apply, df["b"], max, axis=0)
    assert reason == "keyword named like a jupyter_par argument: axis"


def test_series_map_routes_callables_dicts_and_series(df):
    for arg in (str, {1.0: "x"}, pd.Series({1.0: "x"})):
        func, args, kwargs = _plan(jp_route.plan_map, pd.Series.map, df["b"], arg,
                                   na_action="ignore")
        assert func is jp.map and args[1] is arg and kwargs["na_action"] == "ignore"
    assert "neither callable" in _plan(jp_route.plan_map, pd.Series.map, df["b"], [1])


def test_groupby_apply_reads_keys_and_flags(df):
    grouped = df.groupby("a", as_index=False, sort=False, dropna=False, group_keys=False)
    func, args, kwargs = _plan(jp_route.plan_groupby_apply, None, grouped, len, 5, x=1)
    assert func is jp.groupby_apply
    assert args[0] is df and args[1] == "a" and args[2] is len and args[3:] == (5,)
    assert {"as_index": False, "sort": False, "dropna": False, "group_keys": False,
            "x": 1}.items() <= kwargs.items()
    assert "level" not in kwargs


def test_groupby_apply_by_level_passes_level_and_no_keys(df):
    grouped = df.set_index("a").groupby(level=0)
    _, args, kwargs = _plan(jp_route.plan_groupby_apply, None, grouped, len)
    assert args[1] is None and kwargs["level"] == 0


@pytest.mark.parametrize("select", ["b", ["b"]])
def test_groupby_column_selection_is_routed_through_par(df, select):
    # gb[label] and gb[list] are routed through .par.apply (issue 23), not passed through.
    grouped = df.groupby("a")[select]
    call, args, kwargs = _plan(jp_route.plan_groupby_apply, None, grouped, len)
    assert call.__func__.__name__ == "apply" and type(call.__self__).__name__ == "GroupByParallel"
    assert args == (len,) and kwargs["jobs"] == 2
    routed = call(lambda g: len(g), backend="threads", jobs=2, partitions=3, progress=False,
                  inline_fallback=False)
    pd.testing.assert_series_equal(routed, grouped.apply(len))
    assert jp.last_run().ran == "workers"


def test_calls_from_outside_pandas_tests_go_straight_to_pandas(df):
    # This file is not in pandas/tests: the wrapper must call pandas itself.
    calls = []

    def original(self, *args, **kwargs):
        calls.append(args)
        return "pandas"

    wrapper = jp_route._wrapper("DataFrame.apply", original, jp_route.plan_apply)
    assert wrapper(df, len) == "pandas"
    assert calls == [(len,)]


def _warn_for_caller():
    warnings.warn("from the call", UserWarning, stacklevel=2)


def test_trampoline_gives_warnings_the_callers_file_and_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        jp_route._call_from(sys._getframe(), _warn_for_caller)
    assert caught[0].filename == __file__
    assert caught[0].lineno == line


def _report(mode="fork", **tests):
    calls = sum(t.get("routed", 0) for t in tests.values())
    workers = sum(t.get("ran", {}).get("workers", 0) for t in tests.values())
    return {"mode": mode, "pandas": pd.__version__, "routed_calls": {"Series.map": calls},
            "ran_calls": {"workers": workers, "kernel": 0, "pandas": calls - workers,
                          "unknown": 0},
            "passed_through_calls": [], "tests": tests}


def _test(outcome, routed=1, where="", message="", workers=None):
    workers = routed if workers is None else workers
    return {"outcome": outcome, "routed": routed, "where": where, "message": message,
            "ran": {"workers": workers, "pandas": routed - workers}}


def test_compare_counts_only_what_passes_plain(tmp_path):
    excused = tmp_path / "excused.txt"
    excused.write_text("# comment\n"
                       "t.py::side | ^assert names == | side effect\n"
                       "t.py::param | ^assert x is | identity\n")
    base = _report(ok=_test("passed"), bad=_test("passed"), side=_test("passed"),
                   other=_test("passed"), **{"t.py::param[1]": _test("passed")},
                   skipped=_test("skipped"), xfail=_test("xfailed"))
    routed = _report(
        ok=_test("passed"),
        bad=_test("failed", message="AssertionError: Series are different"),
        side=_test("failed", where="assert names == list(df.index)"),
        other=_test("passed", routed=0),
        **{"t.py::param[1]": _test("failed", where="assert x is y")},
        skipped=_test("failed"), xfail=_test("failed"))
    base["tests"]["t.py::side"] = base["tests"].pop("side")
    routed["tests"]["t.py::side"] = routed["tests"].pop("side")
    counts, failures, _ = compare.compare(base, routed, compare.read_excused(excused))
    assert counts == {"tests": 5, "routed tests": 4, "through workers": 4, "passed": 1,
                      "excused": 2, "failed": 1}
    assert [f[0] for f in failures] == ["bad"]


def test_an_excuse_covers_only_its_assertion(tmp_path):
    excused = tmp_path / "excused.txt"
    excused.write_text("t.py::side | ^assert names == | side effect\n")
    base = _report(**{"t.py::side": _test("passed")})
    routed = _report(**{"t.py::side": _test("failed", where="tm.assert_frame_equal(a, b)")})
    counts, _, _ = compare.compare(base, routed, compare.read_excused(excused))
    assert counts["failed"] == 1 and counts["excused"] == 0


def test_excuse_without_reason_is_refused(tmp_path):
    excused = tmp_path / "excused.txt"
    excused.write_text("t.py::side | ^assert\n")
    with pytest.raises(SystemExit, match="nodeid \\| regex \\| reason"):
        compare.read_excused(excused)


def test_the_excused_list_parses():
    entries = compare.read_excused(Path(__file__).parent / "conformance" / "excused.txt")
    assert 0 < len(entries) <= 30
    assert all(e.pattern.pattern.startswith("^") for e in entries.values())


# --- the comparison fails the run on what would make it pass without checking ---------------

def _run_compare(tmp_path, base, routed, excuses="") -> tuple[int, str]:
    """compare.py as scripts/conformance.sh (and so .ci/run) runs it: exit status, output."""
    import subprocess

    for name, data in (("plain.json", base), ("routed.json", routed)):
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "excused.txt").write_text(excuses)
    done = subprocess.run(
        [sys.executable, str(Path(compare.__file__)), str(tmp_path / "plain.json"),
         str(tmp_path / "routed.json"), str(tmp_path / "excused.txt")],
        capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


def _passing_run(n=5, **extra):
    base = _report(mode="plain", **{f"t.py::t{i}": _test("passed") for i in range(n)})
    routed = _report(**{f"t.py::t{i}": _test("passed") for i in range(n)}, **extra)
    return base, routed


def test_a_run_that_routes_and_passes_passes(tmp_path):
    code, out = _run_compare(tmp_path, *_passing_run())
    assert code == 0, out
    assert "routed tests 5 (5 through the workers)" in out and "workers 5" in out


def test_a_run_that_routed_nothing_fails(tmp_path):
    base = _report(mode="plain", **{f"t.py::t{i}": _test("passed") for i in range(5)})
    routed = _report(**{f"t.py::t{i}": _test("passed", routed=0) for i in range(5)})
    code, out = _run_compare(tmp_path, base, routed)
    assert code == 1 and "nothing was really routed" in out, out


def test_calls_handed_back_to_pandas_do_not_count_as_routed(tmp_path):
    # Every call "routed", none reached the workers (dict mappers, empty inputs...).
    base = _report(mode="plain", **{f"t.py::t{i}": _test("passed") for i in range(5)})
    routed = _report(**{f"t.py::t{i}": _test("passed", workers=0) for i in range(5)})
    code, out = _run_compare(tmp_path, base, routed)
    assert code == 1 and "nothing was really routed" in out, out
    assert "only 0 of 5 routed calls reached the workers" in out


def test_a_run_below_the_floor_of_calls_in_the_workers_fails(tmp_path):
    base = _report(mode="plain", **{f"t.py::t{i}": _test("passed") for i in range(10)})
    routed = _report(**{f"t.py::t{i}": _test("passed", workers=int(i < 2)) for i in range(10)})
    code, out = _run_compare(tmp_path, base, routed)
    assert code == 1 and "only 2 of 10 routed calls reached the workers" in out, out
    # The default path's floor is its own: the fallback runs small inputs in the kernel.
    routed["mode"] = "default"
    code, out = _run_compare(tmp_path, base, routed)
    assert code == 0, out


def test_a_stale_excuse_fails_the_run(tmp_path):
    base, routed = _passing_run()
    code, out = _run_compare(tmp_path, base, routed, "t.py::t1 | ^assert seen | side effect\n")
    assert code == 1 and "STALE excuse t.py::t1" in out, out
    # An excuse for a test this run does not have is stale too (renamed upstream).
    code, out = _run_compare(tmp_path, base, routed, "t.py::gone | ^assert x | identity\n")
    assert code == 1 and "STALE excuse t.py::gone" in out, out


def test_an_excuse_limited_to_some_runs_is_neither_used_nor_stale_in_others(tmp_path):
    base, _ = _passing_run(n=2)
    failing = {"t.py::t0": _test("failed", where="assert names == list(df.index)",
                                 message="AssertionError: assert [] == ['a']"),
               "t.py::t1": _test("passed")}
    excuse = "t.py::t0 | ^assert names == | side effect in processes | fork spawn\n"
    code, out = _run_compare(tmp_path, base, _report(**failing), excuse)
    assert code == 0, out
    # Under threads the side effect is visible: the same failure is a real one there...
    code, out = _run_compare(tmp_path, base, _report(mode="threads", **failing), excuse)
    assert code == 1 and "FAIL t.py::t0" in out, out
    # ...and a pass there does not make the processes-only excuse stale.
    code, out = _run_compare(tmp_path, base, _report(mode="threads", **{
        "t.py::t0": _test("passed"), "t.py::t1": _test("passed")}), excuse)
    assert code == 0, out


def test_an_unanchored_or_unknown_excuse_is_refused(tmp_path):
    excused = tmp_path / "excused.txt"
    excused.write_text("t.py::side | groups\\[0\\] | side effect\n")
    with pytest.raises(SystemExit, match="must start with '\\^'"):
        compare.read_excused(excused)
    excused.write_text("t.py::side | ^assert | side effect | forks\n")
    with pytest.raises(SystemExit, match="unknown condition"):
        compare.read_excused(excused)


def test_the_excuse_is_matched_at_the_failing_statement_not_anywhere(tmp_path):
    base, _ = _passing_run(n=1)
    routed = _report(t0=_test("failed", where="tm.assert_frame_equal(groups[0], expected)",
                              message="AssertionError: DataFrame.iloc[:, 0] are different"))
    routed["tests"]["t.py::t0"] = routed["tests"].pop("t0")
    # Excuses the empty caller list only (IndexError), not wrong group contents.
    excuse = ("t.py::t0 | ^tm\\.assert_frame_equal\\(groups\\[0\\], .*\\nIndexError: "
              "| side effect\n")
    code, out = _run_compare(tmp_path, base, routed, excuse)
    assert code == 1 and "FAIL t.py::t0" in out, out




def test_window_and_resample_calls_route_through_par(df):
    """Rolling / Expanding apply and resample with a callable become the .par calls
    (jp_route_windows, issue 23); other shapes go to pandas, with the reason."""
    import jp_route_windows as windows

    rolling = df["b"].rolling(2)
    func, args, kwargs = _plan(windows.plan_window_apply, pd.api.typing.Rolling.apply,
                               rolling, sum, raw=True, kwargs={"x": 1})
    assert args == (rolling, sum) and kwargs["raw"] is True and kwargs["kwargs"] == {"x": 1}
    assert kwargs["jobs"] == 2 and "partitions" in kwargs
    assert func is windows._window_apply
    assert "not callable" in _plan(windows.plan_window_apply, pd.api.typing.Rolling.apply,
                                   rolling, "sum")
    stamped = df.set_index(pd.date_range("2024", periods=3, freq="h"))["b"]
    planner = windows.plan_resample("agg")
    _, args, kwargs = _plan(planner, None, stamped.resample("2h"), len, 3, y=4)
    assert args[1:] == ("agg", len, 3) and kwargs["y"] == 4
    assert "not callable" in _plan(planner, None, stamped.resample("2h"), ["sum"])
    assert "jobs" in _plan(planner, None, stamped.resample("2h"), len, jobs=1)


ORDER_EXCUSE = ("t.py::once | ^assert names == want\\n(AssertionError: )?assert "
                "(?P<got>\\[.*\\]) == (?P<want>\\[.*\\]) | order: completion order | threads\n")


def _assert_excused_or_failed(tmp_path, excuse: str, mode: str, message: str,
                              excused: bool) -> None:
    """``t.py::once`` passes plain and fails routed in ``mode`` with ``message`` at
    ``assert names == want``: ``excuse`` excuses it (or not), and is not stale."""
    path = tmp_path / "excused.txt"
    path.write_text(excuse)
    base = _report(**{"t.py::once": _test("passed")})
    routed = _report(mode=mode,
                     **{"t.py::once": _test("failed", where="assert names == want",
                                            message=message)})
    found = compare.applicable(compare.read_excused(path), mode, "3.1.1")
    counts, _, stale = compare.compare(base, routed, found)
    assert (counts["excused"], counts["failed"]) == ((1, 0) if excused else (0, 1))
    assert stale == []


@pytest.mark.parametrize(("message", "excused"), [
    ("assert [2, 1, 3] == [1, 2, 3]", True),          # each once, another order
    ("assert [2.0, 1.0] == [1, 2]", True),            # the same values, printed as floats
    ("assert [np.int64(2), np.int64(1)] == [1, 2]", True),   # numpy scalars
    ("assert [np.int64(2),..., np.int64(3)] == [1, 2, 3]", False),  # cut short: unknown
    ("assert [1, 1, 3] == [1, 2, 3]", False),         # 1 twice, 2 never
    ("assert [1, 2] == [1, 2, 3]", False),            # 3 never ran
    ("assert [<NA>, 1] == [1, 2]", False),            # not a list of literals: not excused
])
def test_an_order_excuse_excuses_only_a_reordering(tmp_path, message, excused):
    _assert_excused_or_failed(tmp_path, ORDER_EXCUSE, "threads", message, excused)


def test_an_order_excuse_that_excused_nothing_is_not_stale(tmp_path):
    path = tmp_path / "excused.txt"
    path.write_text(ORDER_EXCUSE)
    base = _report(**{"t.py::once": _test("passed")})
    routed = _report(mode="threads", **{"t.py::once": _test("passed")})
    found = compare.applicable(compare.read_excused(path), "threads", "3.1.1")
    assert compare.compare(base, routed, found)[2] == []


def test_one_test_has_one_excuse_per_disjoint_set_of_modes(tmp_path):
    path = tmp_path / "excused.txt"
    path.write_text("t.py::once | ^assert x | side effect | fork spawn\n" + ORDER_EXCUSE)
    entries = compare.read_excused(path)
    assert compare.applicable(entries, "fork", "3.1.1")["t.py::once"].reason == "side effect"
    assert compare.applicable(entries, "threads", "3.1.1")["t.py::once"].reason.startswith(
        "order:")
    path.write_text("t.py::once | ^assert x | side effect | fork threads\n" + ORDER_EXCUSE)
    with pytest.raises(SystemExit, match="second excuse for the same runs"):
        compare.read_excused(path)


@pytest.mark.parametrize(("message", "excused"), [
    ("assert [] == [1, 2, 3]", True),          # every row in worker processes
    ("assert [1] == [1, 2, 3]", True),         # the sample's row in the kernel, the rest not
    ("assert [1, 1] == [1, 2, 3]", False),     # a row run twice in the kernel
])
def test_a_fallback_excuse_allows_part_of_the_items_none_twice(tmp_path, message, excused):
    excuse = ("t.py::once | ^assert names == want\\n(AssertionError: )?assert "
              "(?P<got>\\[.*\\]) == (?P<want>\\[.*\\]) | fallback: timed | default\n")
    _assert_excused_or_failed(tmp_path, excuse, "default", message, excused)


def test_an_excuse_for_a_file_the_run_left_out_is_not_stale(tmp_path):
    path = tmp_path / "excused.txt"
    path.write_text("other.py::t | ^assert x | side effect\nt.py::t0 | ^assert x | side effect\n")
    base, routed = _passing_run(1)
    _, _, stale = compare.compare(base, routed, compare.read_excused(path))
    assert stale == ["t.py::t0"]  # t.py ran and its excuse excused nothing; other.py did not run
