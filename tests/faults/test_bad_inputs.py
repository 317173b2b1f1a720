"""Bad input to the Python API: one clear line naming the bad value, and nothing changed.

Every case checks that the error message is a single line, that it names what was
wrong, that the input and the session defaults are exactly as before, and that no
worker is left holding a task. Empty inputs are not errors: they must give what
pandas itself gives.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest
from pool_checks import busy_workers
from where_ran import ran

import jupyter_par as jp

pytestmark = pytest.mark.timeout(60)
RUN = {"jobs": 2, "start_method": "fork", "progress": False}


def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(12), "k": list("xyz") * 4},
                        index=pd.Index([f"r{i}" for i in range(12)], name="id"))


def twice(x):
    return x * 2


# name -> (call taking the frame, expected exception type, text the one line must contain)
BAD_CALLS = {
    "jobs_zero": (lambda df: jp.apply(df, twice, jobs=0), jp.UsageError, "got 0"),
    "jobs_string": (lambda df: jp.apply(df, twice, jobs="2"), jp.UsageError, "got '2'"),
    "jobs_float": (lambda df: jp.apply(df, twice, jobs=2.0), jp.UsageError, "got 2.0"),
    "jobs_bool": (lambda df: jp.apply(df, twice, jobs=True), jp.UsageError, "got True"),
    "jobs_zero_map": (lambda df: jp.map(df.a, twice, jobs=0), jp.UsageError, "got 0"),
    # -1 is every CPU (as in joblib); past minus the CPU count no worker is left
    "jobs_too_negative_map": (lambda df: jp.map(df.a, twice, jobs=-1000), jp.UsageError,
                              "jobs=-1000 leaves no worker"),
    "timeout_negative": (lambda df: jp.apply(df, twice, timeout=-1), jp.UsageError, "got -1"),
    "timeout_zero": (lambda df: jp.apply(df, twice, timeout=0), jp.UsageError, "got 0"),
    "timeout_string": (lambda df: jp.apply(df, twice, timeout="5"), jp.UsageError, "'5'"),
    "on_error": (lambda df: jp.apply(df, twice, on_error="x"), jp.UsageError, "got 'x'"),
    "start_method": (lambda df: jp.apply(df, twice, jobs=2, start_method="x"),
                     jp.UsageError, "got 'x'"),
    "backend": (lambda df: jp.apply(df, twice, backend="nope"), jp.UsageError, "'nope'"),
    "partitions_zero": (lambda df: jp.apply(df, twice, axis=1, partitions=0),
                        jp.UsageError, "got 0"),
    "retries_negative": (lambda df: jp.apply(df, twice, axis=1, retries=-1),
                         jp.UsageError, "got -1"),
    "progress_value": (lambda df: jp.apply(df, twice, axis=1, progress="loud", jobs=2),
                       jp.UsageError, "'loud'"),
    "func_not_callable": (lambda df: jp.apply(df, 3), jp.UsageError, "got int: 3"),
    "func_none_groupby": (lambda df: jp.groupby_apply(df, "k", None), jp.UsageError,
                          "got NoneType: None"),
    "series_map_not_callable": (lambda df: jp.map(df.a, 3), jp.UsageError, "got int: 3"),
    # A name goes to pandas, as df.apply("twice") would: pandas' own error.
    "accessor_not_callable": (lambda df: df.par.apply("twice", axis=1), AttributeError,
                              "'twice'"),
    "apply_on_list": (lambda df: jp.apply([1, 2], twice), jp.UsageError, "got list"),
    "map_on_int": (lambda df: jp.map(5, twice), jp.UsageError, "got int"),
    "map_on_string": (lambda df: jp.map("abc", twice), jp.UsageError, "got str"),
    "map_list_with_pandas_kwarg": (lambda df: jp.map([1, 2], twice, na_action="ignore"),
                                   jp.UsageError, "na_action"),
    "map_partitions_on_missing_path": (lambda df: jp.map_partitions("missing.csv", len),
                                       jp.UsageError, "'missing.csv'"),
    "map_partitions_on_int": (lambda df: jp.map_partitions(5, len), jp.UsageError, "got int"),
    "by_missing_column": (lambda df: jp.groupby_apply(df, "nope", len, **RUN),
                          jp.UsageError, "['nope']"),
    "by_one_of_two_missing": (lambda df: jp.groupby_apply(df, ["k", "nope"], len, **RUN),
                              jp.UsageError, "['nope']"),
    "axis_unknown": (lambda df: jp.apply(df, twice, axis="diagonal", **RUN), ValueError,
                     "diagonal"),
    "set_defaults_jobs": (lambda df: jp.set_defaults(jobs=0), jp.UsageError, "got 0"),
    "set_defaults_jobs_negative": (lambda df: jp.set_defaults(jobs=-1000), jp.UsageError,
                                   "jobs=-1000 leaves no worker"),
    "set_defaults_unknown": (lambda df: jp.set_defaults(colour="red"), jp.UsageError,
                             "'colour'"),
    "reader_over_missing_file": (
        lambda df: jp.map_partitions(pd.read_csv("/nonexistent/data.csv", chunksize=5), len),
        FileNotFoundError, "/nonexistent/data.csv"),
}



@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_call_gives_one_clear_line(case):
    call, expected, text = BAD_CALLS[case]
    df = frame()
    before, defaults = df.copy(deep=True), jp.current_defaults()
    with pytest.raises(expected) as info:
        call(df)
    line = str(info.value)
    assert "\n" not in line, f"more than one line: {line!r}"
    assert text in line, f"{text!r} not named in: {line!r}"
    pd.testing.assert_frame_equal(df, before)
    assert jp.current_defaults() == defaults
    assert not busy_workers()


EMPTY_CALLS = {
    "apply_rows": (lambda df, **kw: jp.apply(df, lambda r: r["a"] * 2, axis=1, **kw),
                   lambda df: df.apply(lambda r: r["a"] * 2, axis=1)),
    "apply_columns": (lambda df, **kw: jp.apply(df, lambda c: c.sum(), axis=0, **kw),
                      lambda df: df.apply(lambda c: c.sum(), axis=0)),
    "series_map": (lambda df, **kw: jp.map(df["a"], twice, **kw),
                   lambda df: df["a"].map(twice)),
    "series_apply": (lambda df, **kw: jp.apply(df["a"], twice, **kw),
                     lambda df: df["a"].apply(twice)),
    "groupby_apply": (lambda df, **kw: jp.groupby_apply(df, "k", lambda g: g["a"].sum(), **kw),
                      lambda df: df.groupby("k").apply(lambda g: g["a"].sum())),
}


@pytest.mark.parametrize("case", list(EMPTY_CALLS))
def test_empty_frame_gives_what_pandas_gives(case):
    parallel, serial = EMPTY_CALLS[case]
    df = frame().iloc[0:0]
    before = df.copy(deep=True)
    expected = serial(df)
    # Nothing to split: jupyter_par hands the call to pandas whole, so the result is
    # pandas' own (the workers never see an empty input).
    got = ran("pandas", lambda: parallel(df, **RUN))
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    else:
        pd.testing.assert_series_equal(got, expected)
    pd.testing.assert_frame_equal(df, before)


def test_empty_list_and_empty_columns():
    assert jp.map([], twice, **RUN) == []
    no_columns = pd.DataFrame(index=range(3))
    pd.testing.assert_series_equal(jp.apply(no_columns, len, axis=1, **RUN),
                                   no_columns.apply(len, axis=1))


def slow_len(part):
    time.sleep(0.05)
    return len(part)


def test_generator_that_raises_halfway():
    df = frame()

    def chunks():
        for start in range(0, 12, 3):
            if start == 6:
                msg = "disk went away"
                raise OSError(msg)
            yield df.iloc[start:start + 3]

    with pytest.raises(OSError, match="disk went away") as info:
        jp.map_partitions(chunks(), slow_len, **RUN)
    assert "\n" not in str(info.value)
    assert any("raised by the input itself, after 2 partition(s)" in note
               for note in info.value.__notes__)
    assert not busy_workers()
    assert jp.map_partitions(iter([df.iloc[:5], df.iloc[5:]]), slow_len, **RUN) == [5, 7]


def test_chunked_reader_over_malformed_file(tmp_path):
    path = tmp_path / "broken.csv"
    good = "\n".join(f"{i},{i * 2}" for i in range(20))
    path.write_text(f"a,b\n{good}\n1,2,3,4\n" + good + "\n")
    with pytest.raises(pd.errors.ParserError) as info:
        jp.map_partitions(pd.read_csv(path, chunksize=5), slow_len, **RUN)
    assert any("raised by the input" in note for note in info.value.__notes__)
    assert not busy_workers()
    with pd.read_csv(path, chunksize=5, nrows=20) as reader:
        assert jp.map_partitions(reader, slow_len, **RUN) == [5, 5, 5, 5]
    assert os.path.exists(path)
