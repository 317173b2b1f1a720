"""rolling / expanding ``.par.apply``: equal to pandas at every window edge (issue 23).

Property tests draw windows around the partition size (smaller, equal, larger than a
partition, larger than the input), ``center=True``, ``min_periods``, every ``closed=``,
``step=``, time windows over irregular and duplicate timestamps, and groups that span
partitions, and compare the parallel result with pandas' own. Other tests check that
workers ran it (``jp.last_run()``), that each window runs exactly once, and that bad
input fails as pandas fails it, before any worker starts.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jupyter_par as jp

pytestmark = pytest.mark.timeout(300)

_HUNT = int(os.environ.get("JP_HYPOTHESIS_EXAMPLES", "0"))
EXAMPLES = settings(max_examples=_HUNT or 40, deadline=None, derandomize=not _HUNT,
                    database=None, suppress_health_check=[HealthCheck.too_slow])
RUN = {"jobs": 2, "progress": False, "inline_fallback": False, "start_method": "fork"}


def _f(x):
    """Depends on every value of the window and its length, as an aggregate does."""
    return float(np.nansum(np.asarray(x, dtype=float) * np.arange(1, len(x) + 1))) + len(x)


def _same(got, expected) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    else:
        pd.testing.assert_series_equal(got, expected)


@st.composite
def values(draw, n: int) -> np.ndarray:
    drawn = draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, -3.0, np.nan, np.inf]),
                          min_size=n, max_size=n))
    return np.array(drawn, dtype=float)


@st.composite
def row_windows(draw):
    n = draw(st.integers(1, 60))
    parts = draw(st.integers(2, 7))
    per_part = max(1, n // parts)
    window = draw(st.sampled_from(sorted({0, 1, 2, per_part - 1, per_part, per_part + 1,
                                          2 * per_part + 1, n, n + 3} - {-1})))
    kw = {"window": window,
          "min_periods": draw(st.one_of(st.none(), st.integers(0, max(0, window)))),
          "center": draw(st.booleans()),
          "closed": draw(st.sampled_from([None, "right", "both", "left", "neither"])),
          "step": draw(st.one_of(st.none(), st.integers(1, 5)))}
    frame = draw(st.booleans())
    data = (pd.DataFrame({"b": draw(values(n)), "a": draw(values(n))},
                         index=pd.Index([f"r{i}" for i in range(n)]))
            if frame else pd.Series(draw(values(n)), name="v"))
    return data, kw, parts, draw(st.booleans())


@EXAMPLES
@given(row_windows())
def test_row_windows_equal_pandas(case):
    data, kw, parts, raw = case
    try:
        expected = data.rolling(**kw).apply(_f, raw=raw)
    except Exception as exc:  # noqa: BLE001 - then the parallel call fails alike
        with pytest.raises(type(exc)):
            data.rolling(**kw).par.apply(_f, raw=raw, partitions=parts, **RUN)
        return
    _same(data.rolling(**kw).par.apply(_f, raw=raw, partitions=parts, **RUN), expected)


@st.composite
def time_windows(draw):
    n = draw(st.integers(1, 50))
    # Irregular gaps, duplicates (gap 0) included, in minutes.
    gaps = draw(st.lists(st.sampled_from([0, 0, 1, 5, 30, 90, 240]), min_size=n, max_size=n))
    stamps = pd.Timestamp("2024-03-01") + pd.to_timedelta(np.cumsum(gaps), unit="min")
    kw = {"window": draw(st.sampled_from(["1min", "10min", "2h", "5h", "3D"])),
          "min_periods": draw(st.one_of(st.none(), st.integers(0, 3))),
          "center": draw(st.booleans()),
          "closed": draw(st.sampled_from([None, "right", "both", "left", "neither"]))}
    on_column = draw(st.booleans())
    frame = pd.DataFrame({"x": draw(values(n)), "y": draw(values(n))})
    if on_column:
        frame["t"] = stamps
        kw["on"] = "t"
    else:
        frame.index = stamps
    if draw(st.booleans()):
        frame = frame.iloc[::-1]  # decreasing timestamps: pandas takes those too
    return frame, kw, draw(st.integers(2, 7))


@EXAMPLES
@given(time_windows())
def test_time_windows_equal_pandas(case):
    frame, kw, parts = case
    try:
        expected = frame.rolling(**kw).apply(_f, raw=True)
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(type(exc)):
            frame.rolling(**kw).par.apply(_f, raw=True, partitions=parts, **RUN)
        return
    _same(frame.rolling(**kw).par.apply(_f, raw=True, partitions=parts, **RUN), expected)


@EXAMPLES
@given(st.integers(1, 60), st.integers(0, 4), st.integers(2, 7), st.data())
def test_expanding_equals_pandas(n, min_periods, parts, data):
    series = pd.Series(data.draw(values(n)))
    expected = series.expanding(min_periods).apply(_f, raw=True)
    _same(series.expanding(min_periods).par.apply(_f, raw=True, partitions=parts, **RUN),
          expected)


@st.composite
def grouped_windows(draw):
    n = draw(st.integers(1, 60))
    keys = draw(st.lists(st.integers(0, draw(st.integers(0, 6))), min_size=n, max_size=n))
    frame = pd.DataFrame({"k": keys, "b": draw(values(n)), "a": draw(values(n))})
    expanding = draw(st.booleans())
    kw = ({"min_periods": draw(st.integers(0, 3))} if expanding else
          {"window": draw(st.integers(1, 12)), "center": draw(st.booleans()),
           "min_periods": draw(st.one_of(st.none(), st.integers(0, 2)))})
    select = draw(st.sampled_from([None, "b", ["a", "b"]]))
    return frame, draw(st.booleans()), select, expanding, kw, draw(st.integers(2, 7))


@EXAMPLES
@given(grouped_windows())
def test_grouped_windows_equal_pandas(case):
    frame, sort, select, expanding, kw, parts = case

    def window():
        grouped = frame.groupby("k", sort=sort)
        if select is not None:
            grouped = grouped[select]
        return grouped.expanding(**kw) if expanding else grouped.rolling(**kw)

    try:
        expected = window().apply(_f, raw=True)
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(type(exc)):
            window().par.apply(_f, raw=True, partitions=parts, **RUN)
        return
    _same(window().par.apply(_f, raw=True, partitions=parts, **RUN), expected)


# -- workers ran it, each window once ---------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda s: s.rolling(30, center=True, min_periods=2),
    lambda s: s.rolling(7, step=3),
    lambda s: s.expanding(5),
    lambda s: s.to_frame().assign(t=pd.date_range("2024", periods=len(s), freq="7min"))
               .rolling("1h", on="t"),
], ids=["center", "step", "expanding", "time"])
def test_each_window_runs_once_in_the_workers(make):
    series = pd.Series(np.random.default_rng(3).normal(size=400))
    serial_calls: list[int] = []
    parallel_calls: list[int] = []

    def count(into):
        def f(x):
            into.append(len(x))
            return float(x.sum())
        return f

    expected = make(series).apply(count(serial_calls), raw=True)
    got = make(series).par.apply(count(parallel_calls), raw=True, jobs=2, partitions=6,
                                 backend="threads", progress=False, inline_fallback=False)
    _same(got, expected)
    assert sorted(parallel_calls) == sorted(serial_calls)
    run = jp.last_run()
    assert run.with_workers and run.backend == "threads"


def test_processes_ran_it(start_method):
    frame = pd.DataFrame({"b": np.arange(300.0), "g": np.arange(300) % 7})
    expected = frame["b"].rolling(50).apply(lambda x: x[-1] - x[0], raw=True)
    got = frame["b"].rolling(50).par.apply(lambda x: x[-1] - x[0], raw=True, jobs=2,
                                           partitions=5, start_method=start_method,
                                           progress=False, inline_fallback=False)
    _same(got, expected)
    assert jp.last_run().with_workers
    expected = frame.groupby("g")["b"].rolling(20).apply(lambda x: x.mean(), raw=False)
    got = frame.groupby("g")["b"].rolling(20).par.apply(
        lambda x: x.mean(), jobs=2, partitions=3, start_method=start_method, progress=False,
        inline_fallback=False)
    _same(got, expected)
    assert jp.last_run().with_workers


@pytest.mark.parametrize("periods", [None, 0], ids=["bounds", "wrapper"])
def test_a_failing_window_names_its_row(periods):
    """Both paths: pandas' bounds handed back (the row found from the traceback) and,
    with ``min_periods=0``, the wrapper that skips the overlap windows."""
    series = pd.Series(np.arange(100.0), index=[f"r{i}" for i in range(100)])

    def f(x):
        if x[-1] == 77:
            msg = "bad window"
            raise ZeroDivisionError(msg)
        return 0.0

    with pytest.raises(ZeroDivisionError, match="bad window") as info:
        series.rolling(10, min_periods=periods).par.apply(f, raw=True, partitions=4, **RUN)
    assert "r77" in "".join(getattr(info.value, "__notes__", [])) + str(info.getrepr())


# -- bad input and what runs in the caller ------------------------------------------------

@pytest.mark.parametrize(("call", "error"), [
    ({"raw": "yes"}, ValueError),
    ({"engine": "fast"}, ValueError),
    ({"engine": "cython", "engine_kwargs": {"nopython": True}}, ValueError),
])
def test_arguments_pandas_rejects_fail_as_pandas(call, error, monkeypatch):
    series = pd.Series(np.arange(50.0))
    with pytest.raises(error) as serial:
        series.rolling(5).apply(np.sum, **call)
    started: list[object] = []
    monkeypatch.setattr("jupyter_par.run.engine.run", lambda *a, **k: started.append(a))
    with pytest.raises(error) as parallel:
        series.rolling(5).par.apply(np.sum, **call, **RUN)
    assert str(parallel.value) == str(serial.value)
    assert not started


def test_ewm_says_what_to_call():
    series = pd.Series(np.arange(10.0))
    with pytest.raises(jp.UsageError, match=r"ewm\(span=10\)\.mean\(\)"):
        _ = series.ewm(span=3).par


def test_weighted_windows_say_what_to_call():
    series = pd.Series(np.arange(10.0))
    pytest.importorskip("scipy")  # pandas builds weighted windows with scipy
    with pytest.raises(jp.UsageError, match="win_type"):
        _ = series.rolling(3, win_type="triang").par


def test_method_table_runs_in_the_caller_with_one_warning():
    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as parallel:
            frame.rolling(3, method="table").par.apply(np.sum, raw=True, **RUN)
    with pytest.raises(ValueError) as serial:
        frame.rolling(3, method="table").apply(np.sum, raw=True)
    assert str(parallel.value) == str(serial.value)
    fallbacks = [w for w in caught if issubclass(w.category, jp.SerialFallbackWarning)]
    assert len(fallbacks) == 1 and "method='table'" in str(fallbacks[0].message)


def test_function_form_and_accessor_agree():
    series = pd.Series(np.arange(40.0))
    expected = series.rolling(4).apply(np.sum, raw=True)
    _same(jp.window_apply(series.rolling(4), np.sum, raw=True, partitions=3, **RUN), expected)
    with pytest.raises(jp.UsageError, match="kwargs="):
        jp.window_apply(series.rolling(4), np.sum, raw=True, axis=0)
    with pytest.raises(jp.UsageError, match="rolling"):
        jp.window_apply(series, np.sum)


# -- resample(...).par: whole bins, pandas assembles -------------------------------------

@st.composite
def resampled(draw):
    n = draw(st.integers(1, 60))
    gaps = draw(st.lists(st.sampled_from([0, 1, 7, 30, 200]), min_size=n, max_size=n))
    stamps = pd.Timestamp("2024-03-01 05:00") + pd.to_timedelta(np.cumsum(gaps), unit="min")
    frame = pd.DataFrame({"x": draw(values(n)), "y": draw(values(n))}, index=stamps)
    obj = frame if draw(st.booleans()) else frame["x"]
    freq = draw(st.sampled_from(["7min", "1h", "90min", "1D"]))
    closed = draw(st.sampled_from([None, "left", "right"]))
    method = draw(st.sampled_from(["apply", "agg", "transform"]))
    return obj, freq, closed, method, draw(st.integers(2, 7))


@EXAMPLES
@given(resampled())
def test_resample_equals_pandas(case):
    obj, freq, closed, method, parts = case
    func = (lambda x: x - x.sum()) if method == "transform" else (lambda x: float(x.sum()) + len(x))
    expected = getattr(obj.resample(freq, closed=closed), method)(func)
    got = getattr(obj.resample(freq, closed=closed).par, method)(func, partitions=parts, **RUN)
    _same(got, expected)


def test_resample_runs_each_bin_once_in_the_workers():
    stamps = pd.date_range("2024", periods=300, freq="17min")
    series = pd.Series(np.arange(300.0), index=stamps)
    serial_calls: list[int] = []
    parallel_calls: list[int] = []

    def count(into):
        def f(x):
            into.append(len(x))
            return float(x.sum())
        return f

    expected = series.resample("2h").apply(count(serial_calls))
    got = series.resample("2h").par.apply(count(parallel_calls), jobs=2, partitions=4,
                                          backend="threads", progress=False,
                                          inline_fallback=False)
    _same(got, expected)
    assert sorted(parallel_calls) == sorted(serial_calls)
    assert jp.last_run().with_workers


def test_resample_values_that_change_pandas_path_run_in_the_caller_and_say_so():
    series = pd.Series(np.arange(50.0), index=pd.date_range("2024", periods=50, freq="h"))
    expected = series.resample("6h").apply(lambda x: x.describe())
    with pytest.warns(jp.SerialFallbackWarning, match="ran again in the caller"):
        got = series.resample("6h").par.apply(lambda x: x.describe(), partitions=3, **RUN)
    _same(got, expected)
