"""The fallback's sample of a column-wise apply is single columns, not a partition (issue 28).

The whole first partition in the kernel was ``1 / partitions`` of the run done serially
(two columns of sixteen in the benchmark). Now the sample is the first column (then
pieces twice as wide while the readings are too short to tell), each run once and kept:
the result is still pandas' own, whatever the columns hold.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from fixed_readings import reading
from where_ran import ran

import jupyter_par as jp
from jupyter_par.planning import builders as plans
from jupyter_par.run import fallback as cost
from jupyter_par.run.column_sample import ColumnSample

# 16 columns of 300,000 floats: 38 MB, above the size that calls for a sample.
WIDE = pd.DataFrame(np.random.default_rng(28).standard_normal((300_000, 16)),
                    columns=[f"c{i}" for i in range(16)])


def _sample(frame, func, jobs=2):
    plan = plans.frame_apply(frame, func, 0, {}, jobs, None)
    assert plan.columns_cuttable and not plan.cuttable
    size = cost.measure(plan.parts)
    assert size is not None and cost.worth_a_sample(size, 0.0)
    sample = ColumnSample(size, plan.op, jobs, whole_first=True)
    widths = [piece.size for piece in sample.pieces() if sample.clock(piece.data) is not None]
    return plan, sample, widths


def test_a_slow_column_function_is_sampled_on_one_column_then_goes_to_the_workers():
    def slow(column):
        time.sleep(0.06)
        return float(column.sum())

    plan, sample, widths = _sample(WIDE, slow)
    assert widths == [1]  # one column told; the first partition held more
    assert plan.parts[0].size > 1
    assert sample.verdict is None  # to the workers
    rest = sample.rest(plan.parts)
    assert [p.index for p in rest] == list(range(1, len(rest) + 1))
    assert sum(p.size for p in rest) == WIDE.shape[1] - 1
    assert list(rest[0].data.columns) == list(WIDE.columns[1:plan.parts[0].size])


def test_only_the_first_column_runs_in_the_kernel_and_the_result_is_pandas():
    kernel, in_kernel = os.getpid(), []

    def slow(column):
        if os.getpid() == kernel:
            in_kernel.append(column.name)
        time.sleep(0.06)
        return float(column.sum())

    with warnings.catch_warnings():
        warnings.simplefilter("error", jp.InlineFallbackWarning)
        result = ran("workers", lambda: jp.apply(WIDE, slow, axis=0, jobs=2, progress=False))
    assert in_kernel == ["c0"]
    pd.testing.assert_series_equal(result, WIDE.apply(slow, axis=0))


def test_a_cheap_column_function_grows_its_pieces_and_stays_in_the_kernel(monkeypatch):
    # 0.2 ms a piece: a cheap column function on a quiet machine (the real clock let one
    # scheduler hiccup on a busy CI host end the growth at the first column).
    reading(monkeypatch, 0.0002)
    many = pd.DataFrame(np.ones((80_000, 64)))  # 41 MB, 8 columns a partition
    plan, sample, widths = _sample(many, lambda column: column.iloc[0])
    assert plan.parts[0].size == 8
    assert widths == [1, 2, 4, 1]  # too short to tell: twice as wide, to the partition's end
    assert sample.verdict is not None and sample.verdict.startswith("ran in the kernel")
    with pytest.warns(jp.InlineFallbackWarning):
        result = ran("kernel", lambda: jp.apply(WIDE, lambda c: c.iloc[0], axis=0, jobs=2,
                                                progress=False))
    pd.testing.assert_series_equal(result, WIDE.apply(lambda c: c.iloc[0], axis=0))


def test_a_measurable_piece_ends_the_growth(monkeypatch):
    """Each piece reads 2 ms: the third reading (1 + 2 + 4 columns) passes the measurable
    5 ms, so the sample stops there and the rest of the partition goes on from column 7."""
    reading(monkeypatch, 0.002)
    many = pd.DataFrame(np.ones((80_000, 64)))
    plan, sample, widths = _sample(many, lambda column: column.iloc[0])
    assert widths == [1, 2, 4]
    rest = sample.rest(plan.parts)
    assert rest[0].size == 1 and list(rest[0].data.columns) == [7]


def _mixed() -> pd.DataFrame:
    rows = 2_000
    frame = pd.DataFrame({
        "f": np.arange(rows, dtype=float),
        "s": pd.Series([f"v{i}" for i in range(rows)], dtype=object),
        "i": pd.array(np.arange(rows), dtype="Int64"),
        "c": pd.Categorical(np.arange(rows) % 3),
        "t": pd.date_range("2024-01-01", periods=rows, freq="min"),
        "g": np.arange(rows) * 2,
    })
    frame.insert(2, "f", frame["g"] * 0.5, allow_duplicates=True)  # non-unique names
    return frame


@pytest.mark.parametrize("func", [
    lambda c: c.iloc[-1],
    lambda c: len(c),
    lambda c: c.head(3).reset_index(drop=True),
    lambda c: c.astype(str).str.len().sum(),
], ids=["last", "len", "series", "text"])
def test_mixed_columns_sampled_by_column_equal_pandas(monkeypatch, func, start_method):
    monkeypatch.setattr(cost, "SAMPLE_ABOVE_BYTES", 0)  # sample even this small frame
    frame = _mixed()

    def slowly(column):  # slow enough that what the sample left goes to the workers
        time.sleep(0.02)
        return func(column)

    result = ran("workers", lambda: jp.apply(frame, slowly, axis=0, jobs=2, progress=False,
                                             start_method=start_method))
    _same(result, frame.apply(func, axis=0))


def _same(result, expected):
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(result, expected)
    else:
        pd.testing.assert_series_equal(result, expected)


def _head(column):
    time.sleep(0.02)
    return column.iloc[:2].tolist()


def test_arrow_columns_equal_pandas(monkeypatch):
    pytest.importorskip("pyarrow")
    monkeypatch.setattr(cost, "SAMPLE_ABOVE_BYTES", 0)
    frame = pd.DataFrame({"a": pd.array(["x", "yy", None] * 500, dtype="string[pyarrow]"),
                          "b": pd.array(range(1500), dtype="int64[pyarrow]")})
    _same(ran("workers", lambda: jp.apply(frame, _head, axis=0, jobs=2, progress=False)),
          frame.apply(_head, axis=0))


def test_one_column_and_no_columns_equal_pandas(monkeypatch):
    monkeypatch.setattr(cost, "SAMPLE_ABOVE_BYTES", 0)
    one = WIDE[["c3"]]  # one partition: nothing to sample
    _same(jp.apply(one, _head, axis=0, jobs=2, progress=False), one.apply(_head, axis=0))
    empty = WIDE.iloc[:, :0]
    _same(jp.apply(empty, len, axis=0, jobs=2, progress=False), empty.apply(len, axis=0))
