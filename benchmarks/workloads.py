"""The seven workloads of the benchmark: their data, their functions, and their serial run.

Every function here is what a data scientist would write in a notebook cell; every
method (:mod:`methods`) must give the same result as :func:`serial`. Data is built
from a fixed seed, so every fresh process sees the same input. Sizes are the issue's;
``--quick`` divides them so CI can keep the harness working in seconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Workload:
    """One row group of the table: what it is, how big, and how it is checked."""

    number: int
    title: str
    rows: int
    quick_rows: int
    #: Workers are threads (I/O) rather than processes.
    io_bound: bool = False


WORKLOADS = {
    1: Workload(1, "row-wise apply(axis=1), ~20 µs/row", 200_000, 8_000),
    2: Workload(2, "cheap Series.map, ~1 µs/element", 2_000_000, 100_000),
    3: Workload(3, "groupby-apply, 2,000 uneven groups", 1_000_000, 40_000),
    4: Workload(4, "per-column apply, 16 columns", 1_000_000, 40_000),
    5: Workload(5, "data-heavy: 8 float columns, cheap vectorised", 5_000_000, 100_000),
    6: Workload(6, "I/O-bound: 200 tasks of 20 ms (threads)", 200, 40, io_bound=True),
    7: Workload(7, "no-op on a tiny frame, warm (fixed cost)", 100, 100),
}


# -- the user's functions (what would be typed in a notebook) ---------------------------
def row_score(row: pd.Series) -> float:
    """About 20 µs of plain Python per row, on top of pandas' own per-row cost."""
    a, b, c = row["a"], row["b"], row["c"]
    total = 0.0
    for k in range(85):
        total += math.sin(a * k) * b + math.cos(c + k)
    return total


def cheap(x: int) -> float:
    """About 1 µs per element including Series.map's own per-element cost."""
    y = float(x)
    for k in range(8):
        y = math.sqrt(y + k) * 1.5 + math.sin(y)
    return y + (x % 7)


def group_stat(group: pd.DataFrame) -> float:
    """Per-group Python work proportional to the group's size."""
    values = group["v"].tolist()
    total = 0.0
    for v in values:
        for k in range(20):
            total += math.sqrt(abs(v) + k) * math.log1p(abs(v)) - math.sin(v * k)
    return total + len(values)


def column_stat(column: pd.Series) -> float:
    """Vectorised per-column work, about a tenth of a second a column."""
    return float(column.rolling(64).std().sum() + column.rank().mean())


def heavy_cheap(part: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """Elementwise and cheap: moving the data costs more than computing it."""
    return part * 2.0 + 1.0


def io_task(x: int) -> int:
    """A 20 ms wait, as a download or a database call would be."""
    time.sleep(0.02)
    return x * 2


def noop(part: Any) -> Any:
    """Nothing at all: what remains is the tool's fixed cost."""
    return part


# -- data --------------------------------------------------------------------------------
def make_data(number: int, rows: int) -> Any:
    """The input of workload ``number`` with ``rows`` rows, the same in every process."""
    rng = np.random.default_rng(number)
    if number == 1:
        return pd.DataFrame(rng.random((rows, 4)), columns=list("abcd"))
    if number == 2:
        return pd.Series(rng.integers(0, 1_000_000, rows), name="x")
    if number == 3:
        groups = 2_000 if rows >= 100_000 else 200
        # Log-normal sizes: a few groups hold many rows, many hold few.
        weights = rng.lognormal(0.0, 1.2, groups)
        keys = rng.choice(groups, size=rows, p=weights / weights.sum())
        return pd.DataFrame({"k": keys, "v": rng.standard_normal(rows)})
    if number == 4:
        return pd.DataFrame(rng.standard_normal((rows, 16)), columns=[f"c{i}" for i in range(16)])
    if number == 5:
        return pd.DataFrame(rng.random((rows, 8)), columns=list("abcdefgh"))
    if number == 6:
        return list(range(rows))
    if number == 7:
        return pd.DataFrame({"a": np.arange(rows), "b": np.arange(rows) * 0.5})
    msg = f"no workload {number}; choose one of {sorted(WORKLOADS)}"
    raise ValueError(msg)


def serial(number: int, data: Any) -> Any:
    """Plain pandas on one core: the reference result and the reference time."""
    if number == 1:
        return data.apply(row_score, axis=1)
    if number == 2:
        return data.map(cheap)
    if number == 3:
        return data.groupby("k").apply(group_stat)
    if number == 4:
        return data.apply(column_stat, axis=0)
    if number == 5:
        return heavy_cheap(data)
    if number == 6:
        return [io_task(x) for x in data]
    if number == 7:
        return noop(data)
    msg = f"no workload {number}"
    raise ValueError(msg)


def same(result: Any, reference: Any) -> bool:
    """Whether ``result`` is what serial pandas gave: values, index, names and dtypes."""
    try:
        if isinstance(reference, pd.DataFrame):
            pd.testing.assert_frame_equal(result, reference, check_exact=False, rtol=1e-9)
        elif isinstance(reference, pd.Series):
            pd.testing.assert_series_equal(result, reference, check_exact=False, rtol=1e-9)
        else:
            return list(result) == list(reference)
    except (AssertionError, TypeError, ValueError):
        return False
    return True
