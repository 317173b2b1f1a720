"""Each difference from serial pandas found in issue 13, and its neighbours, on every backend.

Every test compares with the serial pandas call on the same input. Few groups and small
partitions are the point: a partition holding one or two groups is where a parallel
groupby-apply used to change shape.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from where_ran import assert_all_ran, ran, recording, where_for

import jupyter_par as jp

PANDAS_MAJOR = int(pd.__version__.split(".")[0])
BACKENDS = [
    pytest.param({"backend": "processes", "start_method": "fork"}, id="fork"),
    pytest.param({"backend": "processes", "start_method": "spawn"}, id="spawn"),
    pytest.param({"backend": "threads"}, id="threads"),
    pytest.param({"backend": "inline"}, id="inline"),
]


@pytest.fixture(params=BACKENDS)
def kw(request):
    return {**request.param, "jobs": 2, "partitions": 4, "progress": False,
            "inline_fallback": False}


@pytest.fixture(autouse=True)
def runs_where_the_backend_runs(request, monkeypatch):
    """Each call of a test on ``kw`` ran in the workers (in the kernel for ``inline``),
    unless the test checked where with :func:`where_ran.ran` (calls handed to pandas)."""
    if "kw" not in request.fixturenames:
        yield
        return
    where = where_for(request.getfixturevalue("kw"))
    with recording(monkeypatch) as made:
        yield
    assert_all_ran(made, where)


def _same(result, expected):
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(result, expected)
    elif isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(result, expected)
    else:
        assert type(result) is type(expected)
        assert result == expected


def _quiet(call):
    """pandas' own deprecation warnings, raised by both sides alike, are not the subject."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return call()


# -- 1. groupby-apply keeps pandas' shape whatever the number of groups per partition -----
@pytest.mark.parametrize("n_groups", [1, 2, 3, 8, 9, 12, 16, 20])
def test_groupby_series_results_with_few_groups(kw, n_groups):
    df = pd.DataFrame({"k": np.repeat(np.arange(n_groups), 3), "v": np.arange(3 * n_groups)})
    for func in (lambda g: g.v * 10, lambda g: g["v"] - g["v"].mean(),
                 lambda g: g["v"].describe(), lambda g: g.v.sum()):
        _same(_quiet(lambda f=func: jp.groupby_apply(df, "k", f, **kw)),
              _quiet(lambda f=func: df.groupby("k").apply(f)))


def test_subtract_group_mean_three_groups_duplicate_index(kw):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.integers(0, 3, 600), "b": rng.normal(size=600)},
                      index=np.repeat(np.arange(300), 2))
    func = lambda g: g["b"] - g["b"].mean()  # noqa: E731
    _same(_quiet(lambda: jp.groupby_apply(df, "a", func, **kw)),
          _quiet(lambda: df.groupby("a").apply(func)))
    _same(_quiet(lambda: jp.groupby_apply(df, "a", func, group_keys=False, **kw)),
          _quiet(lambda: df.groupby("a", group_keys=False).apply(func)))


def test_group_returning_none_or_mixed(kw):
    df = pd.DataFrame({"k": list("aabbcc"), "v": [1, 2, 3, 4, 5, 6]})
    for func in (lambda g: None if g.name == "b" else g.v.sum(),
                 lambda g: None if g.name == "b" else g[["v"]],
                 lambda g: None):
        _same(_quiet(lambda f=func: jp.groupby_apply(df, "k", f, **kw)),
              _quiet(lambda f=func: df.groupby("k").apply(f)))


# -- 2/3. flags -----------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [
    {"as_index": False}, {"group_keys": False}, {"sort": False}, {"dropna": False},
    {"dropna": False, "group_keys": False}, {"as_index": False, "group_keys": False},
])
def test_groupby_flags_with_repeated_index_labels(kw, flags):
    df = pd.DataFrame({"k": ["b", "a", None, "b", "a", None, "c"], "v": range(7)},
                      index=[0, 0, 1, 1, 2, 2, 3])
    for func in (lambda g: g.v.sum(), lambda g: g[["v"]] * 2, lambda g: g.head(1)):
        _same(_quiet(lambda f=func: jp.groupby_apply(df, "k", f, **flags, **kw)),
              _quiet(lambda f=func: df.groupby("k", **flags).apply(f)))


# -- 4. every key form --------------------------------------------------------------------
def test_every_key_form(kw):
    df = pd.DataFrame({"let": list("xyzxyzxy"), "num": [1, 2, 1, 2, 1, 2, 1, 2],
                       "v": np.arange(8.0)})
    indexed = df.set_index("let")
    func = lambda g: g["v"].sum() * 2  # noqa: E731
    cases = [
        (df, "let", {}), (df, ["let", "num"], {}), (df, df.let, {}), (df, [df.let], {}),
        (df, [df.let, df.num], {}), (df, df["let"].to_numpy(), {}),
        (df, list(df["let"]), {}), (df, pd.Grouper(key="let"), {}),
        (indexed, None, {"level": 0}), (indexed, "let", {}), (indexed, str.upper, {}),
        (df, lambda i: i % 3, {}), (df, {i: i % 2 for i in range(8)}, {}),
    ]
    for obj, by, extra in cases:
        expected = _quiet(lambda o=obj, b=by, e=extra: o.groupby(b, **e).apply(func))
        result = _quiet(lambda o=obj, b=by, e=extra: jp.groupby_apply(o, b, func, **e, **kw))
        _same(result, expected)


def test_series_groupby(kw):
    s = pd.Series(np.arange(10), index=list("aabbccddee"))
    _same(jp.groupby_apply(s, s.index, lambda g: g - g.mean(), **kw),
          s.groupby(s.index).apply(lambda g: g - g.mean()))
    _same(jp.groupby_apply(s, None, lambda g: g.max(), level=0, **kw),
          s.groupby(level=0).apply(lambda g: g.max()))


def test_time_grouper_bins_over_the_whole_input_so_runs_in_the_caller(kw):
    df = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=20, freq="13h"),
                       "v": range(20)})
    with pytest.warns(jp.SerialFallbackWarning, match="freq"):
        result = ran("pandas", lambda: jp.groupby_apply(
            df, pd.Grouper(key="t", freq="2D"), lambda g: g.v.sum(), **kw))
    _same(result, df.groupby(pd.Grouper(key="t", freq="2D")).apply(lambda g: g.v.sum()))


# -- 5. builtins --------------------------------------------------------------------------
def test_builtin_functions(kw):
    df = pd.DataFrame({"k": [1, 1, 2, 2, 3], "v": [5, 1, 3, 9, 2]})
    for func in (max, min, sum, len):
        _same(_quiet(lambda f=func: jp.groupby_apply(df["v"], df["k"], f, **kw)),
              _quiet(lambda f=func: df["v"].groupby(df["k"]).apply(f)))


# -- 6. dict mappers with NaN keys ---------------------------------------------------------
def test_map_dicts_with_nan_keys(kw):
    # A dict or Series mapper is one vectorised lookup: jupyter_par hands it to pandas.
    s = pd.Series([1, np.nan, 2, np.nan, 3])
    for mapper in (defaultdict(int, {1: 10, np.nan: 42}), {1.0: "a", np.nan: "n"},
                   pd.Series({1.0: 7, np.nan: 8})):
        _same(ran("pandas", lambda m=mapper: jp.map(s, m, **kw)), s.map(mapper))
    _same(ran("pandas", lambda: jp.map(s, {1.0: "a", np.nan: "n"}, na_action="ignore", **kw)),
          s.map({1.0: "a", np.nan: "n"}, na_action="ignore"))


def test_lookups_of_nan_keys_in_the_workers(kw):
    # The same lookups as functions do run in the workers: NaN values arrive as NaN
    # (missing from a dict keyed by another NaN object, as serially), skipped by "ignore".
    s = pd.Series([1, np.nan, 2, np.nan, 3])
    table = {1.0: "a", np.nan: "n", 3.0: "c"}
    for na_action in (None, "ignore"):
        _same(jp.map(s, lambda v: table.get(v, "missing"), na_action=na_action, **kw),
              s.map(lambda v: table.get(v, "missing"), na_action=na_action))


# -- 7. keywords whose meaning partitions would change -------------------------------------
def test_by_row_false_calls_once_on_the_whole_series(kw):
    s = pd.Series([1, 2, 3, 4])
    with pytest.warns(jp.SerialFallbackWarning, match="by_row=False"):
        assert ran("pandas", lambda: jp.apply(s, lambda x: x.sum(), by_row=False, **kw)) == 10


def test_named_and_listed_functions_go_to_pandas(kw):
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]})
    _same(ran("pandas", lambda: jp.apply(df, "sum", axis=1, **kw)), df.apply("sum", axis=1))
    _same(ran("pandas", lambda: jp.apply(df, ["sum", "max"], **kw)), df.apply(["sum", "max"]))
    _same(ran("pandas", lambda: jp.apply(df, np.sqrt, axis=1, **kw)),
          df.apply(np.sqrt, axis=1))
    _same(ran("pandas", lambda: jp.apply(df["a"], np.exp, **kw)), df["a"].apply(np.exp))


# -- 8. Series.apply returning Series ------------------------------------------------------
def test_series_apply_returning_series_of_different_lengths(kw):
    s = pd.Series([[1, 2, 3], [4, 5, 6, 7], [8], [9, 10]])
    _same(jp.apply(s, pd.Series, **kw), s.apply(pd.Series))
    same_length = pd.Series([[1, 2], [3, 4], [5, 6], [7, 8]])
    _same(jp.apply(same_length, pd.Series, **kw), same_length.apply(pd.Series))


# -- 9. a run never returns another run's rows --------------------------------------------
@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_failed_run_leaves_nothing_for_the_next(backend):
    release = threading.Event()

    def slow(x):
        if x == "fail":
            raise ValueError("boom")
        if x == 0:
            release.wait(2) if backend == "threads" else time.sleep(1.0)
        return x

    opts = {"backend": backend, "jobs": 2, "partitions": 2, "progress": False,
            "inline_fallback": False}
    with pytest.raises(ValueError, match="boom"):
        jp.map(pd.Series([0, "fail"], index=["old0", "old1"]), slow, **opts)
    release.set()
    time.sleep(0.1)
    fresh = pd.Series([10, 20], index=["new0", "new1"])
    for _ in range(3):
        _same(jp.map(fresh, slow, **opts), fresh.map(slow))


# -- 10. warnings obey the caller's filters -----------------------------------------------
class NotebookWarning(UserWarning):
    pass


def _warns(x):
    warnings.warn(f"odd value {x % 2}", NotebookWarning, stacklevel=1)
    return x


def test_warnings_follow_the_callers_filters(kw):
    s = pd.Series(range(8))
    with pytest.warns(NotebookWarning, match="odd value"):
        _same(jp.map(s, _warns, **kw), s.map(_warns))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("ignore")
        jp.map(s, _warns, **kw)
    assert seen == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotebookWarning)
        with pytest.raises(NotebookWarning):
            jp.map(s, _warns, **kw)


def test_pandas_own_warnings_reach_the_caller_once(kw):
    df = pd.DataFrame({"k": [1, 1, 2, 2, 3, 3], "v": range(6)})
    with warnings.catch_warnings(record=True) as serial:
        warnings.simplefilter("always")
        expected = df.groupby("k").apply(lambda g: g.v.sum())
    with warnings.catch_warnings(record=True) as parallel:
        warnings.simplefilter("always")
        result = jp.groupby_apply(df, "k", lambda g: g.v.sum(), **kw)
    _same(result, expected)
    assert [(w.category, str(w.message)) for w in parallel] == \
        [(w.category, str(w.message)) for w in serial]
    if PANDAS_MAJOR < 3:  # the grouping-columns deprecation, pointing at this file
        assert serial and {w.filename for w in parallel} == {__file__}
    else:
        assert not serial and not parallel


def _regex_with_groups(group: pd.DataFrame) -> int:
    return int(group["t"].str.contains("(a)").sum())  # pandas warns here: match groups


def test_pandas_warnings_inside_the_function_reach_the_caller_once_at_its_line(kw):
    # On every pandas: pandas warns inside the user's function, in the workers; the
    # caller sees that warning once, at the function's file and line, as serially.
    df = pd.DataFrame({"k": [1, 1, 2, 2, 3, 3], "t": list("abcabc")})
    with warnings.catch_warnings(record=True) as serial:
        warnings.simplefilter("always")
        expected = df.groupby("k").apply(_regex_with_groups, include_groups=False)
    with warnings.catch_warnings(record=True) as parallel:
        warnings.simplefilter("always")
        result = jp.groupby_apply(df, "k", _regex_with_groups, include_groups=False, **kw)
    _same(result, expected)
    where = {(w.category, str(w.message), w.filename, w.lineno) for w in serial}
    assert len(where) == 1 and next(iter(where))[0] is UserWarning, where
    assert [(w.category, str(w.message), w.filename, w.lineno) for w in parallel] == \
        list(where)


def test_the_callers_numpy_error_settings_reach_the_workers(kw):
    s = pd.Series([1.0, 0.0, -1.0, 2.0, 0.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):
            _same(jp.map(s, lambda v: np.float64(1.0) / v, **kw),
                  s.map(lambda v: np.float64(1.0) / v))
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        jp.map(s, lambda v: np.float64(1.0) / v, **kw)


def test_a_column_given_as_its_own_series_is_left_out_of_the_groups(kw):
    df = pd.DataFrame({"date": pd.date_range("2010-01-01", freq="12h", periods=6),
                       "vals": range(6), "let": list("abcdea")})
    for by in ([df.let, df.date.dt.date], df.let, [df.let]):
        _same(jp.groupby_apply(df, by, lambda x: x.iloc[0:], group_keys=False, **kw),
              df.groupby(by, group_keys=False).apply(lambda x: x.iloc[0:]))
    copy = df.let.copy()  # equal values, another Series: pandas keeps the column
    _same(jp.groupby_apply(df, copy, lambda x: x.iloc[0:], group_keys=False, **kw),
          df.groupby(copy, group_keys=False).apply(lambda x: x.iloc[0:]))


def test_a_function_that_fails_on_the_grouping_column_is_retried_without_it(kw):
    # pandas 2 calls func again without the grouping columns when it raised TypeError
    # with them; pandas 3 never passes them. Either way, as the serial call.
    df = pd.DataFrame({"A": ["a", "a", "b", "b", "c"], "B": [1, 2, 3, 4, 5], "C": [4, 6, 5, 1, 2]})
    for extra in ({"group_keys": False}, {"as_index": False}):
        func = (lambda x: x / x.sum()) if "group_keys" in extra else (lambda x: x.mean())
        _same(_quiet(lambda e=extra, f=func: jp.groupby_apply(df, "A", f, **e, **kw)),
              _quiet(lambda e=extra, f=func: df.groupby("A", **e).apply(f)))


# -- 9. what the function receives, seen in the workers ------------------------------------
# pandas' own tests of these (test_map_apply_masked_element_types,
# test_map_datetime_series_passes_scalar_timestamps) record into a list in the caller,
# which worker processes cannot fill (tests/conformance/excused.txt): the same checks
# here return what each call received, so they run in the workers.
def _received(value):
    return (type(value).__name__, value is pd.NA, value)


@pytest.mark.parametrize("method", ["map", "apply"])
@pytest.mark.parametrize("dtype", ["Int32", "Int64", "Float64", "boolean"])
def test_masked_values_reach_the_function_as_scalars_and_na(kw, dtype, method):
    values = [True, False, None] if dtype == "boolean" else [1, 2, None]
    ser = pd.Series(values * 4, dtype=dtype)
    got = getattr(jp, method)(ser, _received, **kw)
    pd.testing.assert_series_equal(got, getattr(ser, method)(_received))
    if PANDAS_MAJOR < 3:
        return  # pandas 2 passes floats and NaN (GH#60766, fixed in pandas 3): as serially
    seen = got.tolist()
    assert [v for _, _, v in seen[:2]] == values[:2]
    assert all(is_na for _, is_na, _ in seen[2::3])
    if dtype != "Float64":
        assert not any(name == "float" for name, _, _ in seen)


@pytest.mark.parametrize("method", ["map", "apply"])
def test_tz_aware_datetimes_reach_the_function_as_timestamps(kw, method):
    ser = pd.Series(pd.date_range("2021-01-01", periods=12, tz="UTC"))
    got = getattr(jp, method)(ser, lambda ts: (type(ts).__name__, str(ts.tz)), **kw)
    assert set(got) == {("Timestamp", "UTC")}
