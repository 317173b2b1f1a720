"""Arrow-backed text (pandas 3's default ``str`` where pyarrow is installed, and
``pd.ArrowDtype`` columns) through jupyter_par.

Arrow arrays travel as their buffers (pandas pickles an Arrow-backed array as its
pyarrow array, and pyarrow pickles buffers out of band under protocol 5), never one
string at a time: the pickle stream itself stays small whatever the row count, and
jupyter_par's own per-string path (object arrays as one UTF-8 buffer) is not used.
Results equal serial pandas, dtypes included, under every start method.
"""

from __future__ import annotations

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
