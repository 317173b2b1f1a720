"""The static check of ``%%parallel`` bodies (jupyter_par.cell.meaning, issue 18).

A body whose value or write-back depends on other rows of TARGET is refused before any
worker starts, naming the expression and its cell line; row-local code is never refused.
The shell tests at the end show what the refusal and its two acknowledgements
(``--per-partition``, ``--reduce``) do to the notebook, compared with serial pandas.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError as IPythonUsageError

from jupyter_par.cell.meaning import CROSS_ROW_METHODS, check, cross_row_uses
from jupyter_par.errors import UsageError

# (body, the expression the message must name, its cell line; the magic line is line 1)
REFUSED = [
    ("df.head(3)", "df.head(3)", 2),
    ("df.iloc[:5]", "df.iloc[:5]", 2),
    ("df.tail(2)", "df.tail(2)", 2),
    ('df.nlargest(3, "x")', 'df.nlargest(3, "x")', 2),
    ("df.sample(frac=0.5, random_state=1)", "df.sample(frac=0.5, random_state=1)", 2),
    ("df.drop_duplicates()", "df.drop_duplicates()", 2),
    ("df[:4]", "df[:4]", 2),
    ('df["z"] = df["x"] - df["x"].mean()', 'df["x"].mean()', 2),
    ('df["r"] = df.x.rank()', "df.x.rank()", 2),
    ('df["c"] = df.x.cumsum()', "df.x.cumsum()", 2),
    ('df["e"] = df.x.expanding().max()', "df.x.expanding().max()", 2),
    # windows the syntax does not bound (see test_windows_with_literal_sizes_...)
    ('df["m"] = df.x.rolling("2h").mean()', 'df.x.rolling("2h").mean()', 2),
    ('df["m"] = df.x.rolling(w).mean()', "df.x.rolling(w).mean()", 2),
    ('df["s"] = df.x.shift(k)', "df.x.shift(k)", 2),
    ('df["m"] = df.x.rolling(3, step=2).mean()', "df.x.rolling(3, step=2).mean()", 2),
    ('d = df[df.x > 0]\ndf["s"] = d.x.shift(1)', "d.x.shift(1)", 3),
    ('df = df[df.x > 0]\ndf["s"] = df.x.shift(1)', "df.x.shift(1)", 3),
    ('df.dropna(inplace=True)\ndf["s"] = df.x.diff()', "df.x.diff()", 3),
    ('for i in range(2):\n    df["x"] = df.x.shift(1)', "df.x.shift(1)", 3),
    ('df["s"] = (df.x + df.y).rolling(3).sum()', "(df.x + df.y).rolling(3).sum()", 2),
    ('df["w"] = df.x.ewm(span=3).mean()', "df.x.ewm(span=3).mean()", 2),
    ('df["f"] = df.x / df.x.sum()', "df.x.sum()", 2),
    ('df["x"] = df.x.fillna(df.x.median())', "df.x.median()", 2),
    ('df["dup"] = df.duplicated()', "df.duplicated()", 2),
    ('df["n"] = len(df)', "len(df)", 2),
    ('df["n"] = df.shape[0]', "df.shape", 2),
    ('df["mx"] = df.x.max()', "df.x.max()", 2),
    ('df["mn"] = np.mean(df.x)', "np.mean(df.x)", 2),
    ('df["vc"] = df.x.map(df.x.value_counts())', "df.x.value_counts()", 2),
    ('df["nu"] = df.x.nunique()', "df.x.nunique()", 2),
    ('df["q"] = df.x.quantile(.9)', "df.x.quantile(.9)", 2),
    ('df["t"] = df.groupby("g").x.transform("mean")', 'df.groupby("g").x.transform("mean")', 2),
    ('df["i"] = df.x.idxmax()', "df.x.idxmax()", 2),
    ('df = df.sort_values("x")', 'df.sort_values("x")', 2),
    ('df.sort_values("x", inplace=True)', 'df.sort_values("x", inplace=True)', 2),
    ("df = df[df.x > df.x.mean()]", "df.x.mean()", 2),
    ("df[df.x > df.x.mean()]", "df.x.mean()", 2),
    ('df["y"] = df.x.isin(df.z)', "df.x.isin(df.z)", 2),
    ('df["k"] = pd.cut(df.x, 4)', "pd.cut(df.x, 4)", 2),
    ('df["y"] = df.apply(np.sum)', "df.apply(np.sum)", 2),
    ('df["y"] = df.x.transform("cumsum")', 'df.x.transform("cumsum")', 2),
    ('df["y"] = df.x.fillna(method="ffill")', 'df.x.fillna(method="ffill")', 2),
    ('df["y"] = df.x.ffill()', "df.x.ffill()", 2),
    ('df.query("x > x.mean()")', "x.mean() in df.query(\"x > x.mean()\")", 2),
    ('df["y"] = df.apply(lambda r: r.x / df.x.max(), axis=1)', "df.x.max()", 2),
    ("df = df.assign(z=lambda d: d.x - d.x.mean())", "d.x.mean()", 2),
    ("df.x.sum()", "df.x.sum()", 2),
    ('df.groupby("g").sum()', 'df.groupby("g").sum()', 2),
    ('x = 1\nif len(df) > 3:\n    df["y"] = 1', "len(df)", 3),
    # followed through local names: refused where the name is used, named where it came from
    ('m = df.x.mean()\ndf["z"] = df.x - m', "df.x.mean()", 2),
    ('mask = df.x > df.x.mean()\ndf.loc[mask, "y"] = 1', "df.x.mean()", 2),
    ('d = df[df.x > 0]\ndf["y"] = d.x.mean()', "d.x.mean()", 3),
    ('top = df.head(2)\ntop', "df.head(2)", 2),
    ('total = 0\ntotal += len(df)\ntotal', "len(df)", 3),
    ('for c in ["x", "y"]:\n    df[c] = df[c] - df[c].mean()', "df[c].mean()", 3),
    ('df["i"] = range(len(df))', "len(df)", 2),
    ("df.loc[df.index[0]]", "df.index[0]", 2),
    ('df["v"] = df.x.values[:3]', "df.x.values[:3]", 2),
    ('df["c"] = df.x.astype("category")', 'df.x.astype("category")', 2),
    ("df = pd.get_dummies(df)", "pd.get_dummies(df)", 2),
    ('df["j"] = df.name.str.cat(sep=",")', 'df.name.str.cat(sep=",")', 2),
    ("np.full(len(df), df.x.mean())", "df.x.mean()", 2),
    ('df["s"] = df.x.dot(df.y)', "df.x.dot(df.y)", 2),
]

ACCEPTED = [
    # A check only raises; it changes no result.
    'assert all(isinstance(v, float) for v in df.x)\ndf["z"] = df.x * 2',
    'assert df.x.notna().all(), "missing x"\ndf["z"] = df.x * 2',
    'df["z"] = df.x * df.y - 3',
    'df["s"] = df.name.str.upper()',
    'df["l"] = df.name.str.len()',
    'df["yr"] = df.t.dt.year',
    'df["i"] = df.x.astype(int)',
    'df["r"] = df.x.round(2)',
    'df["c"] = df.x.clip(0, 10)',
    'df["f"] = df.x.fillna(0)',
    'df["b"] = df.x.isin([1, 2])',
    'df["bt"] = df.x.between(1, 5)',
    'df["w"] = df.x.where(df.x > 0, 0)',
    'df["m"] = df.x.mask(df.y < 0, df.y)',
    'df["l"] = np.log(df.x)',
    'df["a"] = np.where(df.x > 0, 1, 0)',
    'df["a"] = df.apply(f, axis=1)',
    'df["a"] = df.apply(lambda r: r.sum(), axis=1)',
    'df["m"] = df.x.map(f)',
    'df["m"] = df.x.map(lambda v: v + 1)',
    'df["m"] = df.x.apply(f)',
    "df = df.assign(z=df.x + 1)",
    "df = df.assign(z=lambda d: d.x * 2)",
    "df[df.x > 0]",
    "df = df[df.x > 0]",
    'df.loc[df.x > 0, "y"] = 1',
    "df.loc[lambda d: d.x > 0]",
    'df.query("x > 0")',
    'df.query("x > @limit")',
    'df["t"] = pd.to_datetime(df.x)',
    'df["r"] = df.x.replace({1: 2})',
    'df["c"] = df.x.cat.codes',
    "df = clean(df)",
    "clean(df)",
    'df["z"] = df.x - other.x.mean()',
    "other.sort_values('x').head(3)",
    'df["s"] = df[["a", "b"]].sum(axis=1)',
    'df["s"] = df.sum(axis="columns")',
    'df["m"] = df[["a", "b"]].max(axis=1)',
    'df["k"] = pd.cut(df.x, [0, 1, 2])',
    'for c in df.columns:\n    df[c] = df[c] * 2',
    'df["z"] = sum([df.a, df.b])',
    'x_mean = 3\ndf["z"] = df.x - x_mean',
    'df["s"] = df.x.shift(1, freq="D")',
    'df["y"] = df.index.year',
    'df["d"] = df.pop("x")',
    'df["g2"] = df.g.str.cat(df.h, sep="-")',
    "print(len(df))\ndf['y'] = 1",
    'n = df.x.mean()',  # computed and never used: changes no result
    "df.x.values.sum(axis=1)",
    "df['n'] = df.values.shape[1]",
    'df["n"] = np.random.rand(len(df))',
    'df["n"] = rng.normal(size=len(df))',
    'df["z"] = np.zeros(df.shape[0])',
    "for col in cols:\n    df[col] = df[col].apply(f)",
    'df["v"] = df.x.values * 2',
    'df["l"] = df.x.to_numpy()[df.y.to_numpy() > 0]',
    'df["x"] = df.x.str.replace(",", "").astype(float)',
    'df["w"] = df.name.str.split().str[0]',
    "df = df.dropna(subset=['x']).rename(columns=str.lower)",
    'df["u"] = df.x.combine_first(df.y)',
    "df.dropna(inplace=True)",
    'df["s"] = df[["a", "b"]].dot(weights)',
    'for i, row in df.iterrows():\n    df.at[i, "z"] = row.x * 2',
    'df["v"] = lookup.reindex(df.k).to_numpy()',
]


@pytest.mark.parametrize(("body", "expression", "line"), REFUSED)
def test_cross_row_uses_are_refused_naming_the_expression_and_line(body, expression, line):
    with pytest.raises(UsageError) as info:
        check(body, "df")
    text = str(info.value)
    assert text.startswith(f"cell line {line}: {expression} sees one partition of df"), text
    assert "--per-partition" in text and "\n" not in text


@pytest.mark.parametrize("body", ACCEPTED)
def test_row_local_code_is_accepted(body):
    assert cross_row_uses(body, "df") == []


def test_the_advice_names_a_value_to_compute_before_the_cell():
    with pytest.raises(UsageError, match=r'compute it before the cell \(x_mean = df\["x"\]'
                                         r'\.mean\(\)\) and use that name in the body'):
        check('df["z"] = df["x"] - df["x"].mean()', "df")


def test_a_local_name_says_where_it_carries_the_value():
    with pytest.raises(UsageError, match="m carries it to line 3"):
        check('m = df.x.mean()\ndf["z"] = df.x - m', "df")


def test_names_other_than_target_and_shadowing_parameters_are_free():
    assert cross_row_uses("other.x.mean()", "df") == []
    assert cross_row_uses('df["y"] = df.x.map(lambda df: df + 1)', "df") == []
    assert cross_row_uses("def f(df):\n    return df.sum()\ndf['y'] = df.x.map(f)", "df") == []
    # a function defined in the body that reads TARGET itself is seen
    assert cross_row_uses("def f(v):\n    return v / df.x.max()\ndf['y'] = df.x.map(f)", "df")


@pytest.mark.parametrize("body", [
    'df.groupby("g").x.transform("mean")',
    'df["t"] = df.groupby("g").x.transform("mean")',
    'df.groupby(["g", "h"]).x.sum()',
    'df.groupby(df.g).apply(lambda d: d.x - d.x.mean())',
    'df["r"] = df.groupby("g").x.rank()',
])
def test_groupby_including_the_by_keys_is_whole(body):
    assert cross_row_uses(body, "df", by=["g"]) == []


@pytest.mark.parametrize(("body", "by", "advice"), [
    ('df.groupby("h").x.sum()', ["g"], "add --by h"),
    ('df.groupby("g").x.sum()', ["g", "h"], "add --by g"),
    ('df["z"] = df.x - df.x.mean()', ["g"], "x_mean = df.x.mean()"),
    ("df.head(2)", ["g"], "--reduce"),
])
def test_by_does_not_make_other_cross_row_uses_whole(body, by, advice):
    with pytest.raises(UsageError, match="sees one partition") as info:
        check(body, "df", by=by)
    assert advice in str(info.value)


def test_reduce_acknowledges_the_trailing_expression_only():
    check("df.head(3)", "df", reduce=True)
    check("int(df.x.sum())", "df", reduce=True)
    check("m = df.x.sum()\nm", "df", reduce=True)
    with pytest.raises(UsageError, match="--reduce"):
        check("df.head(3)", "df")
    with pytest.raises(UsageError, match=r"cell line 2: df\.x\.mean\(\)"):
        check('df["z"] = df.x - df.x.mean()\ndf.head()', "df", reduce=True)


@pytest.mark.parametrize(("body", "kind", "refused"), [
    ("len(items)", "items", True),
    ("items[:3]", "items", True),
    ("items[0]", "items", True),
    ("sorted(items)", "items", True),
    ("items.sort()\nitems", "items", True),
    ("items = [f(x) for x in items]", "items", False),
    ("sum(x for x in items)", "items", True),
    ("s.pop(0)", "items", True),
    ("s.sum()", "series", True),
    ("s = s.str.strip()", "series", False),
])
def test_list_and_series_targets(body, kind, refused):
    target = "s" if body.startswith(("s.", "s =")) else "items"
    assert bool(cross_row_uses(body, target, kind=kind)) is refused, target


def test_every_group_of_cross_row_methods_is_refused():
    for category, names in CROSS_ROW_METHODS.items():
        # shift/diff/pct_change with their default sizes run with overlap rows (below)
        bounded = {"shift", "diff", "pct_change"}
        for name in sorted(names - {"pop", "index", "sort", "reverse", "groupby"} - bounded):
            found = cross_row_uses(f'df["y"] = df.x.{name}()', "df")
            assert [f.category for f in found] == [category], name


# -- windows with literal sizes run with overlap rows (issue 23) -----------------------
PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


@pytest.mark.parametrize(("body", "reach"), [
    ('df["r"] = df["b"].rolling(50).apply(f)', (50, 0)),
    ('df["m"] = df.x.rolling(3).mean()', (3, 0)),
    ('df["m"] = df.x.rolling(window=5, min_periods=1, center=True).mean()', (5, 3)),
    ('df["s"] = df.x.shift()', (1, 0)),
    ('df["s"] = df.x.shift(-2)', (0, 2)),
    ('df["d"] = df.x.diff(3)', (3, 0)),
    ('df["p"] = df.x.pct_change(2, fill_method=None)', (2, 0)),
    ('df["c"] = df.x.shift(1).rolling(4).sum()', (5, 0)),  # a chain: reaches add up
    ('df["a"] = df.x.diff()\ndf["b"] = df.y.shift(2)', (3, 0)),
    ('df[["m", "n"]] = df[["x", "y"]].rolling(7).max()', (7, 0)),
    ("df.x.rolling(10).mean()", (10, 0)),
    ('df["z"] = df.x * 2', (0, 0)),
])
def test_windows_with_literal_sizes_run_with_the_overlap_they_need(body, reach):
    assert cross_row_uses(body, "df") == []
    assert check(body, "df") == reach


def test_pct_change_fills_forward_on_pandas_2_unless_told_not_to():
    found = cross_row_uses('df["p"] = df.x.pct_change()', "df")
    assert bool(found) is not PANDAS_3


def test_overlap_flag_covers_what_the_body_does_not_say():
    assert check('df["m"] = df.x.rolling("2h").mean()', "df", overlap=40) == (40, 0)
    assert check('df["m"] = df.x.rolling(w, center=True).mean()', "df", overlap=9) == (9, 9)
    # shift(k) may shift backwards (k < 0): the flag's rows go after the partition too
    assert check('df["m"] = df.x.rolling(3).mean()\ndf["s"] = df.x.shift(k)', "df",
                 overlap=5) == (8, 5)
    with pytest.raises(UsageError, match="--overlap N"):
        check('df["m"] = df.x.rolling("2h").mean()', "df")
    # what no overlap can make exact stays refused
    with pytest.raises(UsageError, match=r"df\.x\.expanding\(\)\.max\(\)"):
        check('df["e"] = df.x.expanding().max()', "df", overlap=1000)
    with pytest.raises(UsageError, match="would count twice"):
        check("df.x.rolling(3).mean()", "df", reduce=True)
    # --by partitions are groups, not runs of rows: no overlap to give them
    with pytest.raises(UsageError, match="sees one partition") as info:
        check('df["m"] = df.x.rolling(3).mean()', "df", by=["h"])
    assert "--overlap" not in str(info.value)


def test_a_windowed_cell_equals_serial(shell, ns):
    before = ns["before"]
    _cell(shell, f"{FLAGS} --partitions 7 df",
          'df["r"] = df.x.rolling(20).apply(lambda w: w[-1] - w[0], raw=True)\n'
          'df["c"] = df.x.rolling(5, center=True).mean()\ndf["d"] = df.x.diff(-2)')
    expected = before.copy()
    expected["r"] = expected.x.rolling(20).apply(lambda w: w[-1] - w[0], raw=True)
    expected["c"] = expected.x.rolling(5, center=True).mean()
    expected["d"] = expected.x.diff(-2)
    pd.testing.assert_frame_equal(ns["df"], expected)
    value = _cell(shell, f"{FLAGS} --partitions 7 df", "df.x.shift(3)")
    pd.testing.assert_series_equal(value, before.x.shift(3))
    value = _cell(shell, f"{FLAGS} --partitions 7 --overlap 40 df",
                  "df[df.g == 'a'].x.rolling(4).sum()")  # filtered: --overlap covers it
    pd.testing.assert_series_equal(value, before[before.g == "a"].x.rolling(4).sum())


# -- through the magic, in an in-process shell -----------------------------------------
SETUP = """
import numpy as np
import pandas as pd
rng = np.random.default_rng(1)
df = pd.DataFrame({"x": rng.normal(size=90), "g": rng.choice(list("abc"), 90)})
before = df.copy()
"""
FLAGS = "--jobs 2 --partitions 3 --backend threads --no-progress"


@pytest.fixture
def ns(shell):
    shell.run_cell(SETUP, store_history=False).raise_error()
    return shell.user_ns


def _cell(shell, line, body):
    return shell.run_cell_magic("parallel", line, textwrap.dedent(body))


def test_a_refused_cell_changes_nothing_and_starts_no_worker(shell, ns, monkeypatch):
    from jupyter_par.run import pipeline
    started = []
    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: started.append(a))
    with pytest.raises(IPythonUsageError, match=r"cell line 2: df\.x\.mean\(\)"):
        _cell(shell, f"{FLAGS} df", 'df["z"] = df.x - df.x.mean()')
    assert started == []
    pd.testing.assert_frame_equal(ns["df"], ns["before"])


def test_per_partition_gives_each_partitions_own_value(shell, ns):
    _cell(shell, f"{FLAGS} --per-partition df", 'df["z"] = df.x - df.x.mean()')
    parts = np.array_split(np.arange(90), 3)
    expected = ns["before"].copy()
    expected["z"] = pd.concat([expected.x.iloc[p] - expected.x.iloc[p].mean() for p in parts])
    pd.testing.assert_frame_equal(ns["df"], expected)
    assert not np.allclose(ns["df"].z, ns["before"].x - ns["before"].x.mean())


def test_per_partition_stacks_aggregates_and_heads(shell, ns):
    heads = _cell(shell, f"{FLAGS} --per-partition df", "df.head(2)")
    parts = np.array_split(np.arange(90), 3)
    before = ns["before"]
    pd.testing.assert_frame_equal(heads, pd.concat([before.iloc[p].head(2) for p in parts]))
    sums = _cell(shell, f"{FLAGS} --per-partition df", "df.x.sum()")
    assert sums == pytest.approx([before.x.iloc[p].sum() for p in parts])


def test_reduce_with_head_gives_the_serial_head(shell, ns):
    value = _cell(shell, f'{FLAGS} --reduce "lambda parts: pd.concat(parts).head(3)" df',
                  "df.head(3)")
    pd.testing.assert_frame_equal(value, ns["before"].head(3))


def test_by_covering_the_groupby_equals_serial(shell, ns):
    _cell(shell, f"{FLAGS} --by g df", 'df["t"] = df.groupby("g").x.transform("mean")')
    expected = ns["before"].copy()
    expected["t"] = expected.groupby("g").x.transform("mean")
    pd.testing.assert_frame_equal(ns["df"], expected)
