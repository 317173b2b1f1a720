"""groupby-apply and agg assembled through pandas' own ``apply`` / ``agg`` with their
loops over the groups answered by the workers' values
(:mod:`jupyter_par.planning.group_assembly`, issue 28 workload 3, issue 23).

Each case asserts where the result was assembled (the module's counter of answered
loops, not timing) and that it equals serial pandas: value, index, dtypes and the
warnings pandas gives. Groups without rows (unobserved categories) are the replay's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from where_ran import ran

import jupyter_par as jp
from jupyter_par.planning import group_assembly, group_replay, groups

PANDAS_2 = int(pd.__version__.split(".")[0]) < 3


def _frame(n: int = 300, n_keys: int = 9, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"k": rng.integers(0, n_keys, n), "j": rng.integers(0, 3, n),
                         "v": rng.standard_normal(n), "s": rng.choice(list("xyz"), n)},
                        index=pd.Index(rng.permutation(n) * 10, name="idx"))


DF = _frame()
NAN_KEYS = DF.assign(k=DF["k"].astype(float).where(DF["k"] != 2))
CATEGORICAL = DF.assign(k=pd.Categorical(DF["k"], categories=list(range(9))))
UNOBSERVED = DF.assign(k=pd.Categorical(DF["k"], categories=list(range(12))))


def scalar(g):
    return g["v"].sum()


def integer(g):
    return len(g)


def text(g):
    return "many" if len(g) > 30 else "few"


def some_none(g):
    return None if len(g) % 3 == 0 else g["v"].mean()


def same_index_series(g):
    return pd.Series({"n": len(g), "total": g["v"].sum()})


def varying_series(g):
    return g["v"].head(len(g) % 4 + 1)


def whole_group(g):
    return g


def transformed(g):
    return g[["v"]] * 2


def reset(g):
    return g.reset_index(drop=True).head(3)


def described(g):
    return g["v"].describe()


def array(g):
    return g["v"].to_numpy()[:2]


def mixed_mutated(g):
    """Indexed like its group for some groups, not for others."""
    return g[["v"]] if len(g) % 2 else g[["v"]].reset_index(drop=True)


FUNCS = [scalar, integer, text, some_none, same_index_series, varying_series, whole_group,
         transformed, reset, described, array, mixed_mutated]

KEYS = [
    ("column", DF, "k", {}),
    ("two groups", DF.assign(k=DF["k"] % 2), "k", {}),
    ("one group", DF.assign(k=1), "k", {}),
    ("two keys", DF, ["k", "j"], {}),
    ("array key", DF, DF["k"].to_numpy() % 4, {}),
    ("Series key", DF, (DF["k"] * 2).rename("twice"), {}),
    ("index level", DF.set_index("k", append=True), None, {"level": "k"}),
    ("NaN keys, dropna=False", NAN_KEYS, "k", {"dropna": False}),
    ("NaN keys dropped", NAN_KEYS, "k", {}),
    ("sort=False", DF, "k", {"sort": False}),
    ("group_keys=False", DF, "k", {"group_keys": False}),
    ("as_index=False", DF, "k", {"as_index": False}),
    ("categorical, all observed", CATEGORICAL, "k", {"observed": False}),
    ("categorical, observed=True", UNOBSERVED, "k", {"observed": True}),
]


def _run(call):
    """``call()``'s value and the warnings it gave, as (category, first line)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = call()
        except Exception as exc:  # noqa: BLE001 - compared with the serial call's
            value = exc
    shown = [(w.category, str(w.message).splitlines()[0]) for w in caught
             if not issubclass(w.category, jp.SerialFallbackWarning | ResourceWarning)]
    return value, shown


def _same(got, expected) -> None:
    if isinstance(expected, Exception):
        assert type(got) is type(expected), got
        return
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    else:
        pd.testing.assert_series_equal(got, expected)


def _parallel(obj, by, func, kwargs, backend="threads", **extra):
    before = group_assembly.answered_calls
    got = _run(lambda: ran("workers", lambda: jp.groupby_apply(
        obj, by, func, jobs=2, partitions=3, backend=backend, progress=False,
        inline_fallback=False, **kwargs, **extra)))
    return got, group_assembly.answered_calls - before


@pytest.mark.parametrize("func", FUNCS, ids=[f.__name__ for f in FUNCS])
@pytest.mark.parametrize(("name", "obj", "by", "kwargs"), KEYS, ids=[k[0] for k in KEYS])
def test_assembled_without_replay_equals_pandas(name, obj, by, kwargs, func) -> None:
    expected, expected_warnings = _run(lambda: obj.groupby(by, **kwargs).apply(func))
    (got, got_warnings), answered = _parallel(obj, by, func, kwargs)
    _same(got, expected)
    assert got_warnings == expected_warnings
    assert answered == 1, "the kernel replayed pandas' loop instead of answering it"


@pytest.mark.parametrize("func", [scalar, same_index_series, whole_group, mixed_mutated],
                         ids=lambda f: f.__name__)
def test_assembled_from_processes(func) -> None:
    expected, _ = _run(lambda: DF.groupby("k", group_keys=True).apply(func))
    (got, _), answered = _parallel(DF, "k", func, {"group_keys": True}, backend="processes")
    _same(got, expected)
    assert answered == 1


def test_series_and_arguments() -> None:
    series = DF.set_index("k")["v"]

    def scaled(g, factor, shift=0.0):
        return g * factor + shift

    expected = series.groupby(level="k").apply(scaled, 2.0, shift=1.0)
    before = group_assembly.answered_calls
    got = ran("workers", lambda: jp.groupby_apply(
        series, None, scaled, 2.0, level="k", shift=1.0, jobs=2, partitions=3,
        backend="threads", progress=False, inline_fallback=False))
    pd.testing.assert_series_equal(got, expected)
    assert group_assembly.answered_calls - before == 1


def test_groups_without_rows_are_replayed() -> None:
    """Unobserved categories: pandas calls the function on them in the caller, which the
    workers never saw; the replay does that, and still equals pandas."""
    def sized(g):
        return len(g)

    expected, expected_warnings = _run(
        lambda: UNOBSERVED.groupby("k", observed=False).apply(sized))
    (got, got_warnings), answered = _parallel(UNOBSERVED, "k", sized, {"observed": False})
    _same(got, expected)
    assert got_warnings == expected_warnings
    assert answered == 0
    assert len(expected) == 12


def test_type_error_on_grouping_columns() -> None:
    """A function that fails on the string key column: pandas 2 calls it again without
    the grouping columns; pandas 3 never gives them. Both: pandas' result and warnings."""
    frame = pd.DataFrame({"k": list("abcab") * 20, "v": np.arange(100.0)})

    def doubled(g):
        return (g * 2.5).sum()

    expected, expected_warnings = _run(lambda: frame.groupby("k").apply(doubled))
    (got, got_warnings), answered = _parallel(frame, "k", doubled, {})
    _same(got, expected)
    assert got_warnings == expected_warnings
    assert answered == 1


@pytest.mark.skipif(not PANDAS_2, reason="pandas 3 never gives a group its key columns")
def test_pandas2_grouping_columns_warning_once() -> None:
    expected, expected_warnings = _run(lambda: DF.groupby("k").apply(integer))
    (got, got_warnings), answered = _parallel(DF, "k", integer, {})
    _same(got, expected)
    assert got_warnings == expected_warnings
    assert any("grouping columns" in message for _, message in got_warnings)
    assert answered == 1


def test_replay_when_the_loop_is_unknown(monkeypatch) -> None:
    """A pandas whose loop differs: the replay assembles, exactly as before."""
    monkeypatch.setattr(group_assembly, "_LOOP", None)
    expected, _ = _run(lambda: DF.groupby("k").apply(same_index_series))
    (got, _), answered = _parallel(DF, "k", same_index_series, {})
    _same(got, expected)
    assert answered == 0


# -- GroupBy.par.apply with a column selection, SeriesGroupBy.apply ----------------------
SELECTIONS = [
    ("frame columns", lambda: DF.groupby("k")[["v", "j"]]),
    ("Series", lambda: DF.groupby("k")["v"]),
    ("Series, group_keys=False", lambda: DF.groupby("k", group_keys=False)["v"]),
    ("Series, two keys", lambda: DF.groupby(["k", "j"])["v"]),
    ("as_index=False", lambda: DF.groupby("k", as_index=False)[["v", "j"]]),
    ("NaN keys, dropna=False", lambda: NAN_KEYS.groupby("k", dropna=False)["v"]),
]
SELECTED_FUNCS = [lambda g: g.sum(), lambda g: g, lambda g: g * 2, lambda g: g.describe(),
                  lambda g: g.head(2), lambda g: g.reset_index(drop=True).head(2)]


def _par(grouped, method, func, backend="threads"):
    counters = (group_assembly.answered_calls, group_assembly.answered_agg_passes)
    got = _run(lambda: ran("workers", lambda: getattr(grouped.par, method)(
        func, jobs=2, partitions=3, backend=backend, progress=False, inline_fallback=False)))
    return got, (group_assembly.answered_calls - counters[0],
                 group_assembly.answered_agg_passes - counters[1])


@pytest.mark.parametrize("func", range(len(SELECTED_FUNCS)))
@pytest.mark.parametrize(("name", "make"), SELECTIONS, ids=[s[0] for s in SELECTIONS])
def test_selected_apply_answered(name, make, func) -> None:
    func = SELECTED_FUNCS[func]
    expected, expected_warnings = _run(lambda: make().apply(func))
    (got, got_warnings), (answered, _) = _par(make(), "apply", func)
    _same(got, expected)
    assert got_warnings == expected_warnings
    assert answered == 1
    assert "apply_groupwise" not in vars(make()._grouper)


# -- GroupBy.par.agg with one function ---------------------------------------------------
def spread(x):
    return x.max() - x.min()


def first_text(x):
    return str(x.iloc[0])


def first_time(x):
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(x.iloc[0] % 5))


def one_row(x):
    return x.head(1)  # a one-row Series: pandas takes its value (and pandas 3 warns)


def an_array(x):
    return x.to_numpy()[:1]


AGG_FUNCS = [spread, first_text, first_time, one_row, an_array]
AGG_GROUPS = [
    ("Series", lambda: DF.groupby("k")["v"]),
    ("integer Series", lambda: DF.groupby("k")["j"]),
    ("two keys", lambda: DF.groupby(["k", "j"])["v"]),
    ("sort=False", lambda: DF.groupby("k", sort=False)["v"]),
    ("NaN keys, dropna=False", lambda: NAN_KEYS.groupby("k", dropna=False)["v"]),
    ("categorical, all observed", lambda: CATEGORICAL.groupby("k", observed=False)["v"]),
    ("frame, columns", lambda: DF.groupby("k")[["v", "j"]]),
    ("frame, as_index=False", lambda: DF.groupby("k", as_index=False)[["v", "j"]]),
]


@pytest.mark.parametrize("func", AGG_FUNCS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("name", "make"), AGG_GROUPS, ids=[g[0] for g in AGG_GROUPS])
def test_agg_answered(name, make, func) -> None:
    expected, expected_warnings = _run(lambda: make().agg(func))
    (got, got_warnings), (_, passes) = _par(make(), "agg", func)
    _same(got, expected)
    assert {c for c, _ in got_warnings} == {c for c, _ in expected_warnings}
    if not isinstance(expected, Exception):
        assert passes >= 1, "pandas' loop over the groups ran again in the kernel"
    assert "_aggregate_series_pure_python" not in vars(make()._grouper)


def test_agg_from_processes() -> None:
    grouped = DF.groupby(["k", "j"])["v"]
    (got, _), (_, passes) = _par(grouped, "agg", spread, backend="processes")
    _same(got, grouped.agg(spread))
    assert passes == 1


def test_agg_replayed_where_not_answerable() -> None:
    """Groups without rows, and a list of functions: the replay, equal to pandas."""
    grouped = UNOBSERVED.groupby("k", observed=False)["v"]
    (got, _), (_, passes) = _par(grouped, "agg", spread)
    _same(got, grouped.agg(spread))
    assert passes == 0
    listed = DF.groupby("k")["v"]
    (got, _), (_, passes) = _par(listed, "agg", [spread, first_text])
    _same(got, listed.agg([spread, first_text]))
    assert passes == 0


# -- SeriesGroupBy.transform: the workers' pieces placed back in input order ------------
TRANSFORM_GROUPS = [
    ("Series", lambda: DF.groupby("k")["v"]),
    ("two keys", lambda: DF.groupby(["k", "j"])["v"]),
    ("sort=False", lambda: DF.groupby("k", sort=False)["v"]),
    ("NaN keys dropped", lambda: NAN_KEYS.groupby("k")["v"]),
    ("NaN keys, dropna=False", lambda: NAN_KEYS.groupby("k", dropna=False)["v"]),
    ("integers", lambda: DF.groupby("k")["j"]),
]


@pytest.mark.parametrize("func", [lambda x: x - x.mean(), lambda x: x.cumsum(),
                                  lambda x: x.rank(), lambda x: len(x)])
@pytest.mark.parametrize(("name", "make"), TRANSFORM_GROUPS, ids=[g[0] for g in TRANSFORM_GROUPS])
def test_series_transform_equals_pandas(name, make, func) -> None:
    expected, expected_warnings = _run(lambda: make().transform(func))
    placed = group_replay.series_transforms_placed
    (got, got_warnings), _ = _par(make(), "transform", func)
    _same(got, expected)
    assert got_warnings == expected_warnings
    assert group_replay.series_transforms_placed == placed + 1


def _other_labels(x):
    return pd.Series(x.to_numpy() * 2, index=x.index[::-1])  # pandas aligns it: reordered


def _fresh_labels(x):
    return x.reset_index(drop=True)  # labels 0..n-1: mostly missing once aligned


def _same_labels_copy(x):
    return pd.Series(x.to_numpy() + 1, index=x.index.copy())


@pytest.mark.parametrize("func", [lambda x: x - x.mean(), lambda x: len(x), _other_labels,
                                  _fresh_labels, _same_labels_copy],
                         ids=["same index", "scalar", "other order", "fresh labels",
                              "equal labels"])
@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("labels", ["unique", "duplicated"])
def test_series_transform_replayed_from_the_pieces_equals_pandas(func, backend, labels) -> None:
    """Unobserved categories: pandas calls the function on the empty groups in the caller,
    so the pieces are not placed directly and pandas' loop is replayed, each group's piece
    standing for its value; equal to pandas whatever index the values carry."""
    obj = UNOBSERVED if labels == "unique" else UNOBSERVED.set_axis(
        np.arange(len(UNOBSERVED)) // 2)
    grouped = obj.groupby("k", observed=False)["v"]
    expected, expected_warnings = _run(lambda: grouped.transform(func))
    placed = group_replay.series_transforms_placed
    (got, got_warnings), _ = _par(grouped, "transform", func, backend=backend)
    _same(got, expected)
    assert got_warnings == expected_warnings
    assert group_replay.series_transforms_placed == placed  # the replay, not the placing


@pytest.mark.parametrize(("obj", "categorical"), [(DF, False), (CATEGORICAL, True)],
                         ids=["integer key", "categorical key"])
def test_split_grouping_reused_unless_pandas2_must_warn(obj, categorical) -> None:
    """The kernel groups the input once: the split's GroupBy assembles the result, except
    on pandas 2 for a categorical key without observed=, whose warning the caller's own
    groupby gives (as the serial call does)."""
    parts = groups.split(obj, "k", 3, {})
    reused = groups.reusable(parts, {}) is parts.grouped
    assert reused == (not (PANDAS_2 and categorical))
    expected, expected_warnings = _run(lambda: obj.groupby("k").apply(scalar))
    (got, got_warnings), answered = _parallel(obj, "k", scalar, {})
    _same(got, expected)
    assert got_warnings == expected_warnings
    assert answered == 1
