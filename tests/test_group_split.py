"""Groups cut lazily (issue 16): every row's group is found once, each partition's rows
are taken out when the engine first reads it. Each partition must hold exactly the rows
of its groups, in input order, whichever order the partitions are read in, and the run
must equal serial pandas for the key forms whose grouping differs most."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from where_ran import ran

import jupyter_par as jp
from jupyter_par.planning import groups
from jupyter_par.planning.partition import LazyPartition


def _frame(n: int = 240, n_keys: int = 7, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, n_keys, n)
    return pd.DataFrame({"k": keys, "j": rng.integers(0, 3, n), "v": rng.standard_normal(n)},
                        index=pd.Index(rng.permutation(n) * 10, name="idx"))


def _cases() -> list[tuple[str, pd.DataFrame, object, dict]]:
    df = _frame()
    nan_keys = df.assign(k=df["k"].astype(float).where(df["k"] != 2))
    categorical = df.assign(k=pd.Categorical(df["k"], categories=list(range(10))))
    levels = df.set_index("k", append=True)
    multi = df.set_index(["k", "j"])
    return [
        ("few groups", df.assign(k=df["k"] % 2), "k", {}),
        ("one group", df.assign(k=1), "k", {}),
        ("NaN keys, dropna=False", nan_keys, "k", {"dropna": False}),
        ("NaN keys, dropped", nan_keys, "k", {}),
        ("categorical, observed=False", categorical, "k", {"observed": False}),
        ("sort=False", df, "k", {"sort": False}),
        ("two keys", df, ["k", "j"], {}),
        ("Grouper by key", df, pd.Grouper(key="k"), {}),
        ("Grouper by level", levels, pd.Grouper(level="k"), {}),  # runs whole, in the caller
        ("MultiIndex levels", multi, None, {"level": ["k", "j"]}),
        ("array key (sliced)", df, df["k"].to_numpy() % 3, {}),
        ("Series key (sliced)", df, (df["k"] * 2).rename("twice"), {}),
    ]


CASES = _cases()


def _expected_rows(obj, by, kwargs, parts) -> list[np.ndarray]:
    """The eager cut: each partition's groups by their numbers, rows in input order."""
    numbers = obj.groupby(by, **groups._quiet_keywords(kwargs)).ngroup().to_numpy(
        dtype=float, na_value=np.nan)
    rows = []
    for part in parts:
        lo, hi = (int(x) for x in part.span.removeprefix("groups ").split("-"))
        rows.append(np.flatnonzero((numbers >= lo) & (numbers <= hi)))
    return rows


@pytest.mark.parametrize(("name", "obj", "by", "kwargs"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("n_parts", [1, 3, 8])
@pytest.mark.parametrize("read_order", ["in order", "reversed"])
def test_lazy_cut_holds_exactly_each_partitions_groups(name, obj, by, kwargs, n_parts,
                                                       read_order) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        parts = groups.split(obj, by, n_parts, kwargs)
    if name == "Grouper by level":  # binned over the whole input: never cut
        assert isinstance(parts, str) and "level=" in parts
        return
    assert not isinstance(parts, str), parts
    assert all(isinstance(p, LazyPartition) and not p.is_cut for p in parts)
    expected = _expected_rows(obj, by, kwargs, parts)
    assert [p.size for p in parts] == [len(r) for r in expected]
    order = range(len(parts)) if read_order == "in order" else reversed(range(len(parts)))
    for i in order:
        part = parts[i]
        np.testing.assert_array_equal(part.rows, expected[i])
        data = part.data.data if isinstance(part.data, groups.Keyed) else part.data
        pd.testing.assert_frame_equal(data, obj.iloc[expected[i]])
    assert all(p.is_cut for p in parts)


def group_summary(group: pd.DataFrame) -> pd.Series:
    return pd.Series({"n": len(group), "total": group["v"].sum()})


@pytest.mark.parametrize(("name", "obj", "by", "kwargs"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_lazy_cut_runs_equal_serial_pandas(name, obj, by, kwargs, backend) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", jp.SerialFallbackWarning)
        expected = obj.groupby(by, **kwargs).apply(group_summary)
        # Split in groups: the workers ran it. Not split (binned over the whole input):
        # handed to pandas, as test_lazy_cut_holds_exactly_each_partitions_groups says.
        where = "pandas" if isinstance(groups.split(obj, by, 5, kwargs), str) else "workers"
        got = ran(where, lambda: jp.groupby_apply(
            obj, by, group_summary, jobs=2, partitions=5, backend=backend, progress=False,
            inline_fallback=False, **kwargs))
    pd.testing.assert_frame_equal(got, expected)
    assert where == "workers" or name == "Grouper by level"


def test_the_first_partition_is_dispatched_before_the_others_are_cut() -> None:
    obj = _frame(n=400, n_keys=40)
    parts = groups.split(obj, "k", 8, {})
    first = parts[0].data  # what the engine reads to hand out the first partition
    assert len(first) == parts[0].size
    assert [p.is_cut for p in parts] == [True] + [False] * (len(parts) - 1)
