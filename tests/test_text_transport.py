"""Text moves as one UTF-8 buffer, not one pickled string at a time (issue 18, item 7).

Object arrays that hold mostly ``str`` (pandas' ``object`` and python-backed ``str``
columns) are pickled by :class:`jupyter_par.wire.pickling.DataPickler` as one buffer plus the
other values and their positions. What comes back must be the same array: every value
equal and of the same type, missing values of the same kind, same shape and order.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jupyter_par as jp
from jupyter_par.wire import pickling as _pickling


class Tag(str):
    """A str subclass: must come back as itself, not as a plain str."""


def roundtrip(obj):
    buffers: list[pickle.PickleBuffer] = []
    data = _pickling.dumps_plain(obj, buffer_callback=buffers.append)
    return pickle.loads(data, buffers=buffers), data, buffers


def same_values(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.flags.f_contiguous == b.flags.f_contiguous
    for x, y in zip(a.ravel(order="K"), b.ravel(order="K"), strict=True):
        assert type(x) is type(y)
        if x is None or x is pd.NA or x is pd.NaT:
            assert y is x
        elif isinstance(x, float) and x != x:
            assert y != y
        else:
            assert x == y


values = st.one_of(
    st.text(),  # any code point, empty, separators and surrogates included
    st.sampled_from([None, np.nan, pd.NA, pd.NaT, 3, 2.5, b"raw", Tag("tagged"),
                     np.str_("numpy"), ("a", "tuple"), ["a", "list"]]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(values, min_size=0, max_size=120), st.booleans())
def test_any_object_array_comes_back_the_same(items, fortran):
    array = np.empty(len(items), dtype=object)
    array[:] = items
    back, _, _ = roundtrip(array)
    same_values(back, array)
    if len(items) >= 2 and len(items) % 2 == 0:
        square = array.reshape((2, -1), order="F" if fortran else "C")
        back, _, _ = roundtrip(square)
        same_values(back, square)


def test_a_text_column_is_one_buffer_out_of_band():
    text = [f"customer-{i}" for i in range(1000)]
    array = np.array(text, dtype=object)
    back, data, buffers = roundtrip(array)
    same_values(back, array)
    assert len(buffers) == 1 and buffers[0].raw().nbytes == len("\0".join(text).encode())
    assert len(data) < 500  # the strings are not in the stream


def test_a_string_holding_the_separator_is_pickled_as_before():
    array = np.array(["a\0b"] + ["x"] * 100, dtype=object)
    back, _, buffers = roundtrip(array)
    same_values(back, array)
    assert buffers == []


@pytest.mark.parametrize("dtype", ["object", "str", "string"])
def test_frames_series_and_indexes_of_text_come_back_equal(dtype):
    words = [f"w{i}" if i % 7 else None for i in range(500)]
    frame = pd.DataFrame({"a": words, "b": [f"é{i}😀" for i in range(500)],
                          "n": range(500)}, index=pd.Index([f"r{i}" for i in range(500)]))
    frame = frame.astype({"a": dtype, "b": dtype})
    back, _, _ = roundtrip(frame)
    pd.testing.assert_frame_equal(back, frame)
    assert [type(x) for x in back["a"]] == [type(x) for x in frame["a"]]
    back, _, _ = roundtrip(frame.index)
    pd.testing.assert_index_equal(back, frame.index)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_text_partitions_and_results_cross_worker_processes_intact(start_method):
    words = pd.Series([f"name {i}" if i % 5 else None for i in range(3000)], dtype=object)
    result = jp.map(words, lambda w: w if w is None else w.upper() + "\0!", jobs=2,
                    start_method=start_method, progress=False, inline_fallback=False)
    pd.testing.assert_series_equal(
        result, words.map(lambda w: w if w is None else w.upper() + "\0!"))
