"""Shared-memory transport: exact round trips, and no segment left behind, ever."""

from __future__ import annotations

import glob
import mmap
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par.run import fallback as cost
from jupyter_par.wire import shared_memory as transport

pytestmark = pytest.mark.skipif(not transport.available(), reason="no /dev/shm here")

#: Rows that put each half's float64 column above the transport's threshold.
BIG = 2 * (transport.MIN_BYTES // 8 + 1000)


def _segments() -> list[str]:
    return glob.glob(f"/dev/shm/jupyter_par-{os.getpid()}-*")


def _mixed_frame(n: int) -> pd.DataFrame:
    df = pd.DataFrame({
        "f": np.linspace(0, 1, n),
        "i": np.arange(n, dtype="int32"),
        "b": np.arange(n) % 3 == 0,
        "t": pd.date_range("2024-01-01", periods=n, freq="min"),
        "s": [f"k{i % 7}" for i in range(n)],
        "c": pd.Categorical(["x", "y"] * (n // 2) + ["x"] * (n % 2)),
        "n": pd.array([1, None] * (n // 2) + [1] * (n % 2), dtype="Int64"),
    })
    df.columns.name = "fields"
    return df


@pytest.mark.parametrize("index", ["range", "strings", "multi", "duplicates"])
def test_frame_round_trip_is_exact(index):
    df = _mixed_frame(50)
    if index == "strings":
        df.index = [f"r{i}" for i in range(50)]
    elif index == "multi":
        df.index = pd.MultiIndex.from_arrays([np.arange(50) % 5, np.arange(50)])
    elif index == "duplicates":
        df.index = np.arange(50) // 2
    df.attrs["source"] = "test"
    packed = transport.pack(df.iloc[3:], min_bytes=0)
    assert packed is not None
    back = transport.unpack(packed)
    pd.testing.assert_frame_equal(back, df.iloc[3:])
    assert back.attrs == {"source": "test"}
    assert _segments() == []


def test_series_and_duplicate_columns_round_trip():
    series = pd.Series(np.arange(10, dtype="float32"), index=list("abcdefghij"), name="v")
    pd.testing.assert_series_equal(transport.unpack(transport.pack(series, min_bytes=0)), series)
    dup = pd.DataFrame(np.ones((5, 2)), columns=["a", "a"])
    pd.testing.assert_frame_equal(transport.unpack(transport.pack(dup, min_bytes=0)), dup)


def test_strided_columns_round_trip_exactly():
    # Every other row of a frame: each column is a strided view, written in pieces;
    # enough rows that the pieces are several, not one.
    n = 2 * (2**20 // 8) + 11
    df = pd.DataFrame({"f": np.linspace(0, 1, n),
                       "t": pd.date_range("2024-01-01", periods=n, freq="s")})
    view = df.iloc[::2]
    assert not view["f"].to_numpy(copy=False).flags.c_contiguous
    pd.testing.assert_frame_equal(transport.unpack(transport.pack(view, min_bytes=0)), view)
    assert _segments() == []


def test_small_or_non_pandas_data_is_not_packed():
    assert transport.pack(pd.DataFrame({"a": [1.0, 2.0]})) is None
    assert transport.pack([1, 2, 3], min_bytes=0) is None
    # Python strings travel pickled; Arrow-backed ones go into the segment (test_arrow.py).
    assert transport.pack(pd.DataFrame({"s": ["a", "b"]}, dtype=object), min_bytes=0) is None


def test_sweep_removes_only_the_owners_tagged_segments():
    frame = pd.DataFrame({"a": np.ones(10)})
    mine = transport.pack(frame, min_bytes=0, name=transport.new_name("w7."))
    other = transport.pack(frame, min_bytes=0, name=transport.new_name("w70."))
    assert transport.sweep(tag="w7.") == 1
    assert [os.path.basename(p) for p in _segments()] == [other.segment]
    assert mine is not None and transport.sweep() == 1
    assert _segments() == []


def _double(part: pd.DataFrame) -> pd.DataFrame:
    return part * 2


def _fail_on_second(part: pd.DataFrame) -> pd.DataFrame:
    if part.index[0] > 0:
        raise ValueError("bad partition")
    return part


def _die_on_second(part: pd.DataFrame) -> pd.DataFrame:
    if part.index[0] > 0:
        os._exit(3)
    return part


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(BIG, dtype="float64"), "s": ["x"] * BIG})


def _mapped(part: pd.DataFrame) -> bool:
    base = part["a"].to_numpy()
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None) if not isinstance(base, memoryview) else base.obj
    return base is not None


def test_workers_receive_large_partitions_through_shared_memory(big):
    big_run = jp.map_partitions(big, _mapped, jobs=2, partitions=2, progress=False,
                                inline_fallback=False)
    assert big_run == [True, True]
    small_run = jp.map_partitions(big.iloc[:1000], _mapped, jobs=2, partitions=2, progress=False)
    assert small_run == [False, False]


def test_large_partitions_travel_and_come_back_exactly(big):
    result = jp.map_partitions(big, _double, jobs=2, partitions=2, progress=False,
                                inline_fallback=False)
    pd.testing.assert_frame_equal(result, big * 2)
    assert _segments() == []


def test_no_segment_left_after_a_failure(big):
    with pytest.raises(ValueError, match="bad partition"):
        jp.map_partitions(big, _fail_on_second, jobs=2, partitions=2, progress=False,
                              inline_fallback=False)
    assert _segments() == []


def test_no_segment_left_after_a_worker_dies(big):
    with pytest.raises(jp.WorkerDiedError):
        jp.map_partitions(big, _die_on_second, jobs=2, partitions=2, progress=False,
                          inline_fallback=False)
    assert _segments() == []


def test_no_segment_left_after_a_timeout(big):
    def slow(part: pd.DataFrame) -> pd.DataFrame:
        import time

        time.sleep(30)
        return part

    with pytest.raises(TimeoutError):
        jp.map_partitions(big, slow, jobs=2, partitions=2, timeout=0.5, progress=False)
    assert _segments() == []


def test_work_too_small_to_pay_for_moving_runs_in_the_kernel(monkeypatch):
    monkeypatch.setattr(cost, "SAMPLE_ABOVE_BYTES", 2**20)
    frame = pd.DataFrame(np.arange(400_000, dtype="float64").reshape(-1, 4), columns=list("abcd"))
    with pytest.warns(jp.errors.InlineFallbackWarning, match="ran in the kernel"):
        pids = jp.map_partitions(frame, lambda part: pd.Series([os.getpid()]), jobs=2,
                                 progress=False)
    assert set(pids) == {os.getpid()}
    forced = jp.map_partitions(frame, lambda part: pd.Series([os.getpid()]), jobs=2,
                               progress=False, inline_fallback=False)
    assert os.getpid() not in set(forced)


def test_heavy_work_on_large_data_still_goes_to_the_workers(monkeypatch):
    monkeypatch.setattr(cost, "SAMPLE_ABOVE_BYTES", 2**20)
    frame = pd.DataFrame(np.arange(400_000, dtype="float64").reshape(-1, 4), columns=list("abcd"))

    def slow(part: pd.DataFrame) -> pd.Series:
        import time

        time.sleep(len(part) * 2e-6)  # 0.2 s for the whole frame: worth two workers
        return pd.Series([os.getpid()])

    with warnings.catch_warnings():
        warnings.simplefilter("error", jp.errors.InlineFallbackWarning)
        pids = jp.map_partitions(frame, slow, jobs=2, progress=False)
    # The first partition is the fallback's sample: it ran once, in the kernel, and was
    # kept (issue 25); every other partition went to the workers.
    assert os.getpid() not in set(pids.iloc[1:])


@pytest.mark.parametrize("cut", ["whole", "slice"])
def test_object_columns_keep_their_dtype_beside_shared_ones(cut):
    # pandas 3 reads an object array of strings as ``str`` when building a frame: a column
    # that travels pickled beside shared ones must come back object, as it was sent.
    n = 40
    df = pd.DataFrame({
        "f": np.arange(n, dtype=float),
        "text": pd.Series([f"t{i}" for i in range(n)], dtype=object),
        "mixed": pd.Series(["a", 1] * (n // 2), dtype=object),
        "when": pd.Series(list(pd.date_range("2024-01-01", periods=n)), dtype=object),
    }, index=np.arange(n) // 2)  # duplicate labels: no alignment may happen
    part = df if cut == "whole" else df.iloc[5:30]
    back = transport.unpack(transport.pack(part, min_bytes=0))
    pd.testing.assert_frame_equal(back, part)
    text = part["text"]
    pd.testing.assert_series_equal(transport.unpack(transport.pack(
        pd.Series(np.arange(len(text), dtype=float), index=text.index), min_bytes=0)),
        pd.Series(np.arange(len(text), dtype=float), index=text.index))
    assert _segments() == []


def _as_is(part: pd.DataFrame) -> pd.DataFrame:
    return part


def test_large_partitions_with_object_text_come_back_object(big):
    frame = big.assign(text=pd.Series(["x"] * len(big), dtype=object, index=big.index))
    result = jp.map_partitions(frame, _as_is, jobs=2, partitions=2, progress=False,
                               inline_fallback=False)
    pd.testing.assert_frame_equal(result, frame)
    assert _segments() == []
