"""Arrow-backed text (pandas 3's default ``str`` where pyarrow is installed, and
``pd.ArrowDtype`` columns) through jupyter_par.

Arrow arrays travel as their buffers (pandas pickles an Arrow-backed array as its
pyarrow array, and pyarrow pickles buffers out of band under protocol 5), never one
string at a time: the pickle stream itself stays small whatever the row count, and
jupyter_par's own per-string path (object arrays as one UTF-8 buffer) is not used.
Large results come back as one Arrow IPC stream in a shared-memory segment, which the
kernel reads in place. Results equal serial pandas, dtypes included, under every start
method.
"""

from __future__ import annotations

import glob
import os
import pickle

import numpy as np
import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par.wire import pickling

pa = pytest.importorskip("pyarrow")

ROWS = 200_000
START_METHODS = ["fork", "spawn", "forkserver"]


def _texts(rows: int = ROWS) -> list[str]:
    return [f"customer-{i:07d}" for i in range(rows)]


COLUMNS = {
    "str": lambda values: pd.Series(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
    "string[pyarrow]": lambda values: pd.Series(values, dtype=pd.ArrowDtype(pa.string())),
    "large_string[pyarrow]": lambda values: pd.Series(
        values, dtype=pd.ArrowDtype(pa.large_string())),
}


@pytest.mark.parametrize("kind", list(COLUMNS))
def test_arrow_text_pickles_as_buffers_not_per_string(kind, monkeypatch):
    column = COLUMNS[kind](_texts())
    part = column.iloc[ROWS // 4: ROWS // 2]  # a partition: a slice of the array

    def per_string(array):
        msg = f"an Arrow column went through the per-string path: {array.dtype}"
        raise AssertionError(msg)

    monkeypatch.setattr(pickling, "_utf8_reduction", per_string)
    buffers: list[pickle.PickleBuffer] = []
    stream = pickling.dumps_plain(part, buffer_callback=buffers.append)
    text_bytes = sum(len(s) for s in part)
    out_of_band = sum(memoryview(b).nbytes for b in buffers)
    # The characters travel out of band, and only this slice of them.
    assert text_bytes <= out_of_band < 3 * text_bytes, (out_of_band, text_bytes)
    assert len(stream) < 20_000, len(stream)  # no per-string opcodes in the stream
    back = pickle.loads(stream, buffers=buffers)
    pd.testing.assert_series_equal(back, part)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_arrow_columns_through_workers_equal_serial(start_method):
    values = _texts(5_000)
    frame = pd.DataFrame({
        "name": COLUMNS["str"](values),
        "code": COLUMNS["string[pyarrow]"](values),
        "n": np.arange(5_000),
    })
    frame.loc[7, "code"] = None

    def shout(text):
        return text if pd.isna(text) else text.upper()

    def row_text(row):
        return f"{row['name']}:{row['n']}"

    mapped = jp.map(frame["code"], shout, jobs=2, start_method=start_method,
                    progress=False, inline_fallback=False)
    assert jp.last_run().with_workers
    pd.testing.assert_series_equal(mapped, frame["code"].map(shout))
    parts = jp.map_partitions(frame, lambda part: part, jobs=2, start_method=start_method,
                              progress=False, inline_fallback=False)
    pd.testing.assert_frame_equal(parts, frame)  # dtypes kept, Arrow both ways
    applied = jp.apply(frame, row_text, axis=1, jobs=2, start_method=start_method,
                       progress=False, inline_fallback=False)
    pd.testing.assert_series_equal(applied, frame.apply(row_text, axis=1))
    grouped = jp.groupby_apply(frame, frame["n"] % 3, lambda g: g["name"].str.len().sum(),
                               jobs=2, start_method=start_method, progress=False,
                               inline_fallback=False)
    pd.testing.assert_series_equal(
        grouped, frame.groupby(frame["n"] % 3).apply(lambda g: g["name"].str.len().sum()))
    jp.shutdown()


# -- through shared memory ------------------------------------------------------------
def _shared_ranges() -> list[tuple[int, int]]:
    """This process's mappings of jupyter_par segments (named, or removed once mapped)."""
    ranges = []
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            if "/dev/shm/jupyter_par-" in line:
                start, end = line.split()[0].split("-")
                ranges.append((int(start, 16), int(end, 16)))
    return ranges


def _on_shared_pages(column: pd.Series) -> bool:
    """Whether every buffer of an Arrow-backed column lies in a segment's mapping."""
    ranges = _shared_ranges()
    buffers = [b for chunk in column.array._pa_array.chunks for b in chunk.buffers()
               if b is not None and b.size]
    return bool(buffers) and all(any(lo <= b.address and b.address + b.size <= hi
                                     for lo, hi in ranges) for b in buffers)


def _arrow_frame(rows: int) -> pd.DataFrame:
    texts = _texts(rows)
    frame = pd.DataFrame({
        "f": np.linspace(0, 1, rows),
        "str": COLUMNS["str"](texts),
        "string_na": pd.Series(texts, dtype=pd.StringDtype("pyarrow")),
        "string": COLUMNS["string[pyarrow]"](texts),
        "large": COLUMNS["large_string[pyarrow]"](texts),
        "ints": pd.Series(np.arange(rows), dtype="int64[pyarrow]"),
        "lists": pd.Series(pa.array([[i, i + 1] for i in range(rows)]),
                           dtype=pd.ArrowDtype(pa.list_(pa.int64()))),
        "codes": pd.Series(pa.array(["a", "b", "c"] * (rows // 3) + ["a"] * (rows % 3))
                           .dictionary_encode(),
                           dtype=pd.ArrowDtype(pa.dictionary(pa.int32(), pa.string()))),
        "when": pd.Series(pa.array(np.arange(rows) * 10**9, pa.timestamp("ns", tz="UTC")),
                          dtype=pd.ArrowDtype(pa.timestamp("ns", tz="UTC"))),
        "flags": pd.Series(np.arange(rows) % 2 == 0, dtype="bool[pyarrow]"),
        "objects": pd.Series(texts, dtype=object),
    })
    for name in ("str", "string_na", "string", "ints", "lists", "when", "flags"):
        frame.loc[3, name] = None  # missing values travel as the validity bitmap
    return frame


def test_arrow_columns_travel_in_the_segment_as_their_slice_and_land_on_its_pages():
    from jupyter_par.wire import shared_memory as transport

    frame = _arrow_frame(ROWS)
    part = frame.iloc[ROWS // 4: ROWS // 2]  # a partition: a slice of every array
    packed = transport.pack(part)
    assert packed is not None and packed.arrow is not None
    arrow_bytes = sum(transport.arrow_columns.nbytes(part[c]) for c in part.columns)
    whole_bytes = sum(transport.arrow_columns.nbytes(frame[c]) for c in frame.columns)
    # Only the slice's own bytes are written (not the whole column behind it).
    # (pyarrow's nbytes counts a dictionary and a slice's bitmap whole: an upper bound)
    assert arrow_bytes // 2 < packed.arrow[1] <= arrow_bytes + 64 * 1024 < whole_bytes // 2
    back = transport.unpack(packed)
    pd.testing.assert_frame_equal(back, part)
    assert [name for name in back.columns if name not in ("f", "objects")
            and not _on_shared_pages(back[name])] == []
    assert back["objects"].dtype == object  # Python strings still travel pickled
    assert glob.glob(f"/dev/shm/jupyter_par-{os.getpid()}-*") == []


def test_a_series_of_arrow_text_alone_is_packed_above_the_threshold_only():
    from jupyter_par.wire import shared_memory as transport

    big = COLUMNS["str"](_texts(transport.MIN_BYTES // 8))
    assert transport.movable_bytes(big) >= transport.MIN_BYTES
    packed = transport.pack(big)
    assert packed is not None and packed.kind == "series"
    pd.testing.assert_series_equal(transport.unpack(packed), big)
    assert transport.pack(big.iloc[:100]) is None  # small: pickled through the pipe
    assert transport.shared_bytes(big) == 0  # the cost model counts it as pickled
    assert transport.pack(big, arrow=False) is None  # how the kernel sends partitions
    mixed = pd.DataFrame({"f": np.arange(len(big), dtype=float), "s": big})
    packed = transport.pack(mixed, arrow=False)
    assert packed is not None and packed.arrow is None  # the text is in the handle
    pd.testing.assert_frame_equal(transport.unpack(packed), mixed)


def _arrow_on_shared_pages(part: pd.DataFrame) -> bool:
    return all(_on_shared_pages(part[name]) for name in ("str", "string", "lists"))


def _as_is(part: pd.DataFrame) -> pd.DataFrame:
    return part


@pytest.mark.parametrize("start_method", START_METHODS)
def test_large_arrow_results_come_back_through_shared_memory(start_method):
    # Results: the worker writes the segment, the kernel maps it (no copy, no unpickling).
    # Partitions: pickled as Arrow buffers, which costs the kernel less than a fresh
    # segment's pages (measured in benchmarks/text_moves.py), so workers see them off it.
    frame = _arrow_frame(ROWS)
    on_pages: list[bool] = []

    def fold(acc: pd.DataFrame, result: pd.DataFrame) -> pd.DataFrame:
        if not on_pages:
            on_pages.append(_arrow_on_shared_pages(acc))
        on_pages.append(_arrow_on_shared_pages(result))
        return acc

    jp.map_partitions(frame, _as_is, jobs=2, partitions=2, reduce=fold,
                      start_method=start_method, progress=False, inline_fallback=False)
    assert jp.last_run().with_workers
    assert on_pages == [True, True]
    sent = jp.map_partitions(frame, _arrow_on_shared_pages, jobs=2, partitions=2,
                             start_method=start_method, progress=False,
                             inline_fallback=False)
    assert sent == [False, False]
    back = jp.map_partitions(frame, _as_is, jobs=2, partitions=2, start_method=start_method,
                             progress=False, inline_fallback=False)
    pd.testing.assert_frame_equal(back, frame)
    small: list[bool] = []
    jp.map_partitions(frame.iloc[:1000], _as_is, jobs=2, partitions=2,
                      reduce=lambda acc, r: small.append(_arrow_on_shared_pages(r)) or acc,
                      start_method=start_method, progress=False, inline_fallback=False)
    assert small == [False]  # below the threshold: through the pipe
    assert glob.glob(f"/dev/shm/jupyter_par-{os.getpid()}-*") == []
    jp.shutdown()
