"""The Python API returns what pandas returns serially, on every backend and start method."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from where_ran import assert_all_ran, ran, recording, where_for

import jupyter_par as jp
from jupyter_par.errors import JupyterParWarning

BACKENDS = {
    "fork": {"backend": "processes", "start_method": "fork", "jobs": 2},
    "spawn": {"backend": "processes", "start_method": "spawn", "jobs": 2},
    "forkserver": {"backend": "processes", "start_method": "forkserver", "jobs": 2},
    "threads": {"backend": "threads", "jobs": 3},
    "inline": {"backend": "inline", "jobs": 2},
}


@pytest.fixture(scope="module", params=list(BACKENDS))
def kw(request) -> dict:
    """Options selecting one backend; module scope keeps each pool warm across tests.

    No inline fallback: each call must run where its backend runs (checked by
    :func:`runs_where_the_backend_runs`), not in the kernel because it is small.
    """
    return {**BACKENDS[request.param], "progress": False, "inline_fallback": False}


@pytest.fixture(autouse=True)
def runs_where_the_backend_runs(kw, monkeypatch):
    """Every call a test makes ran in the workers (in the kernel for ``inline``), unless
    the test checked it with :func:`where_ran.ran` (the calls handed back to pandas)."""
    with recording(monkeypatch) as made:
        yield
    assert_all_ran(made, where_for(kw))


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 503
    return pd.DataFrame(
        {
            "a": rng.integers(0, 100, n),
            "b": rng.normal(size=n),
            "s": rng.choice(["x", "y", "z"], n),
            "c": pd.Categorical(rng.choice(["lo", "hi"], n)),
            "k": rng.integers(0, 17, n),
        },
        index=pd.Index([f"r{i}" for i in range(n)], name="id"),
    )


OFFSET = 3


def helper(x):
    return x * OFFSET


def score(row):
    return helper(row["a"]) + row["b"]


def test_apply_rows_scalar(frame, kw):
    pd.testing.assert_series_equal(jp.apply(frame, score, axis=1, **kw),
                                   frame.apply(score, axis=1))


def test_apply_rows_lambda_and_closure(frame, kw):
    factor = 2.5

    def scaled(row):
        return row["b"] * factor

    pd.testing.assert_series_equal(jp.apply(frame, scaled, axis=1, **kw),
                                   frame.apply(scaled, axis=1))
    pd.testing.assert_series_equal(jp.apply(frame, lambda r: r["s"] * 2, axis=1, **kw),
                                   frame.apply(lambda r: r["s"] * 2, axis=1))


def test_apply_rows_expand_and_args(frame, kw):
    def two(row, k):
        return pd.Series({"x": row["a"] + k, "y": str(row["c"])})

    pd.testing.assert_frame_equal(jp.apply(frame, two, axis=1, args=(5,), **kw),
                                  frame.apply(two, axis=1, args=(5,)))
    pd.testing.assert_frame_equal(
        jp.apply(frame[["a", "b"]], lambda r: [r[0], r[1] * 2], axis=1, raw=True,
                 result_type="expand", **kw),
        frame[["a", "b"]].apply(lambda r: [r[0], r[1] * 2], axis=1, raw=True,
                                result_type="expand"),
    )


def test_apply_columns(frame, kw):
    numeric = frame[["a", "b", "k"]]
    pd.testing.assert_series_equal(jp.apply(numeric, np.mean, **kw), numeric.apply(np.mean))
    pd.testing.assert_frame_equal(jp.apply(numeric, lambda c: c - c.mean(), axis=0, **kw),
                                  numeric.apply(lambda c: c - c.mean(), axis=0))


def test_series_map_and_apply(frame, kw):
    s = frame["s"]
    pd.testing.assert_series_equal(jp.map(s, str.upper, **kw), s.map(str.upper))
    # A dict mapper is one vectorised lookup: handed to pandas whole, never to workers.
    pd.testing.assert_series_equal(ran("pandas", lambda: jp.map(s, {"x": 1, "y": 2}, **kw)),
                                   s.map({"x": 1, "y": 2}))
    with_na = frame["b"].where(frame["a"] > 50)
    pd.testing.assert_series_equal(jp.map(with_na, lambda v: v + 1, na_action="ignore", **kw),
                                   with_na.map(lambda v: v + 1, na_action="ignore"))
    pd.testing.assert_series_equal(jp.apply(frame["a"], helper, **kw), frame["a"].apply(helper))


def test_groupby_apply(frame, kw):
    def summary(g):
        return pd.Series({"n": len(g), "mean_b": g["b"].mean()})

    pd.testing.assert_frame_equal(jp.groupby_apply(frame, "k", summary, **kw),
                                  frame.groupby("k").apply(summary))
    pd.testing.assert_series_equal(
        jp.groupby_apply(frame, ["s", "k"], lambda g: g["a"].sum(), **kw),
        frame.groupby(["s", "k"]).apply(lambda g: g["a"].sum()),
    )


def test_groupby_apply_missing_keys_and_unobserved_categories(frame, kw):
    # Rows whose key is missing belong to no group (dropna) or to their own (dropna=False);
    # an unobserved category is a group with no rows (observed=False).
    df = frame.assign(
        m=frame["k"].where(frame["k"] % 5 != 0),
        cat=pd.Categorical(frame["s"], categories=["x", "y", "z", "never"]),
    )

    def total(g):
        return g["a"].sum()

    full = df.assign(cat=pd.Categorical(df["s"], categories=["x", "y", "z"]))
    for data, by, extra in ((df, "m", {}), (df, "m", {"dropna": False}),
                            (df, "cat", {"observed": True}),
                            (df, ["cat", "m"], {"observed": True}),
                            (full, "cat", {"observed": False})):  # no empty group: in parallel
        pd.testing.assert_series_equal(jp.groupby_apply(data, by, total, **extra, **kw),
                                       data.groupby(by, **extra).apply(total))
    # Empty groups (a category without rows, pairs that never occur): pandas calls func
    # on them too, in order; the kernel does that for them while the workers do the rest,
    # so the run stays parallel and says nothing.
    for data, by in ((df, "cat"), (full, ["cat", "s"])):
        with warnings.catch_warnings():
            warnings.simplefilter("error", JupyterParWarning)
            result = jp.groupby_apply(data, by, total, observed=False, **kw)
        pd.testing.assert_series_equal(result, data.groupby(by, observed=False).apply(total))


def test_groupby_apply_transform_like(frame, kw):
    def demean(g):
        return g[["b"]] - g[["b"]].mean()

    for extra in ({}, {"group_keys": False}, {"sort": False}):
        pd.testing.assert_frame_equal(jp.groupby_apply(frame, "k", demean, **extra, **kw),
                                      frame.groupby("k", **extra).apply(demean))


def test_map_partitions(frame, kw):
    pd.testing.assert_frame_equal(
        jp.map_partitions(frame, lambda p, n: p.assign(z=p["a"] + n), 1, **kw),
        frame.assign(z=frame["a"] + 1),
    )
    sizes = jp.map_partitions(frame, len, partitions=4, **kw)
    assert sum(sizes) == len(frame) and len(sizes) == 4
    assert max(sizes) - min(sizes) <= 1  # even cuts, in order


def test_map_over_list_and_generator(kw):
    items = [{"id": i, "x": i * i} for i in range(40)]
    assert jp.map(items, lambda t: t["x"] + t["id"], **kw) == [t["x"] + t["id"] for t in items]
    assert jp.map((i for i in range(10)), helper, **kw) == [helper(i) for i in range(10)]
    chunks = jp.map_partitions((list(range(i, i + 3)) for i in range(0, 12, 3)), sum, **kw)
    assert chunks == [3, 12, 21, 30]


def test_accessors(frame, kw):
    pd.testing.assert_series_equal(frame.par.apply(score, axis=1, **kw),
                                   frame.apply(score, axis=1))
    pd.testing.assert_series_equal(frame["a"].par.map(helper, **kw), frame["a"].map(helper))
    pd.testing.assert_series_equal(frame["a"].par.apply(helper, **kw), frame["a"].apply(helper))
    pd.testing.assert_frame_equal(frame.par.map_partitions(lambda p: p.head(2), **kw).iloc[:2],
                                  frame.head(2))


@pytest.mark.parametrize(
    "index",
    [
        pd.RangeIndex(0, 40),
        pd.Index([f"k{i % 7}" for i in range(40)]),  # duplicates
        pd.MultiIndex.from_arrays([np.arange(40) % 3, np.arange(40)[::-1]]),
        pd.Index(np.random.default_rng(1).permutation(40)),  # non-monotonic
    ],
    ids=["range", "duplicates", "multi", "shuffled"],
)
def test_index_kinds(index, kw):
    df = pd.DataFrame({"v": np.arange(40) * 1.5, "t": pd.date_range("2024", periods=40,
                                                                     tz="UTC")}, index=index)
    pd.testing.assert_series_equal(jp.apply(df, lambda r: r["v"] + 1, axis=1, **kw),
                                   df.apply(lambda r: r["v"] + 1, axis=1))
    pd.testing.assert_series_equal(jp.map(df["t"], lambda t: t.day, **kw),
                                   df["t"].map(lambda t: t.day))


def test_empty_inputs(frame, kw):
    # Empty input is handed to pandas whole (nothing to split): the result is pandas' own.
    empty = pd.DataFrame({"a": pd.Series([], dtype="int64"), "k": pd.Series([], dtype="int64")})
    expected = empty.apply(lambda r: r["a"], axis=1)
    got = ran("pandas", lambda: jp.apply(empty, lambda r: r["a"], axis=1, **kw))
    assert type(got) is type(expected)
    pd.testing.assert_frame_equal(got.to_frame(), expected.to_frame()) if isinstance(
        got, pd.Series) else pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_series_equal(ran("pandas", lambda: jp.map(empty["a"], helper, **kw)),
                                   empty["a"].map(helper))
    assert ran("pandas", lambda: jp.map([], helper, **kw)) == []
    # Empty results made in the workers, from every partition, combine as pandas would.
    pd.testing.assert_frame_equal(jp.map_partitions(frame, lambda p: p.iloc[0:0], **kw),
                                  frame.iloc[0:0])
