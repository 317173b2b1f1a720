"""GroupBy ``.par`` (transform, agg / aggregate, filter, apply with a column selection) and
``DataFrame.par.map`` (issue 23): the result is serial pandas', workers ran the function
(``jp.last_run()``), each group's function ran as often as pandas runs it, bad arguments
fail as pandas fails before any worker starts, and what pandas runs by name stays in
the caller."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pandas._testing as tm
import pytest

import jupyter_par as jp

THREADS = {"jobs": 2, "partitions": 3, "progress": False, "inline_fallback": False,
           "backend": "threads"}


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"k": rng.integers(0, 6, n), "j": rng.integers(0, 2, n),
                         "b": rng.normal(size=n), "c": rng.integers(0, 9, n)},
                        index=pd.Index(rng.permutation(n) * 3, name="idx"))


def _same(got, expected) -> None:
    if isinstance(expected, pd.DataFrame):
        tm.assert_frame_equal(got, expected)
    else:
        tm.assert_series_equal(got, expected)


def _ran_in_workers() -> None:
    run = jp.last_run()
    assert run is not None and run.with_workers, run and run.explain


def demean(x):
    return x - x.mean()


def spread(x):
    return x.max() - x.min()


def first(x):
    return x.iloc[0]


def _keys(df: pd.DataFrame) -> list[tuple[str, object, dict]]:
    nan = df.assign(k=df["k"].astype(float).where(df["k"] != 2))
    cat = df.assign(k=pd.Categorical(df["k"], categories=range(9)))
    return [
        ("column", df, "k", {}),
        ("columns", df, ["k", "j"], {}),
        ("Series key", df, (df["k"] % 3).rename("m"), {}),
        ("index level", df.set_index("k", append=True), None, {"level": "k"}),
        ("Grouper", df, pd.Grouper(key="k"), {}),
        ("categorical observed", cat, "k", {"observed": True}),
        ("categorical unobserved", cat, "k", {"observed": False}),
        ("NaN keys kept", nan, "k", {"dropna": False}),
        ("NaN keys dropped", nan, "k", {}),
        ("sort=False", df, "k", {"sort": False}),
        ("as_index=False", df, "k", {"as_index": False}),
        ("group_keys=False", df, "k", {"group_keys": False}),
    ]


CALLS = [
    ("frame transform", lambda g: g[["b", "c"]], "transform", (demean,), {}),
    ("frame transform, slow path", lambda g: g[["b", "c"]], "transform",
     (lambda x: x / x.sum().sum(),), {}),
    ("series transform", lambda g: g["b"], "transform", (demean,), {}),
    ("series agg", lambda g: g["b"], "agg", (spread,), {}),
    ("frame agg", lambda g: g[["b", "c"]], "agg", (spread,), {}),
    ("list agg", lambda g: g[["b", "c"]], "agg", ([first, "sum"],), {}),
    ("dict agg", lambda g: g, "agg", ({"b": first, "c": [spread, "max"]},), {}),
    ("named agg", lambda g: g, "agg", (), {"low": ("b", first), "top": ("c", "max")}),
    ("frame filter", lambda g: g, "filter", (lambda x: x["b"].mean() > 0,), {}),
    ("series filter", lambda g: g["c"], "filter", (lambda x: x.sum() > 20,), {}),
    ("selected apply", lambda g: g[["b", "c"]], "apply", (lambda x: x.sum(),), {}),
]


@pytest.mark.parametrize("name,obj,by,flags", _keys(_frame()), ids=[c[0] for c in _keys(_frame())])
@pytest.mark.parametrize("call", CALLS, ids=[c[0] for c in CALLS])
def test_par_equals_pandas_for_every_key_form(name, obj, by, flags, call):
    _, select, method, args, kwargs = call
    grouped = select(obj.groupby(by, **flags))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas' own, in both
        try:
            expected = getattr(grouped, method)(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the parallel call must raise the same
            with pytest.raises(type(error)):
                getattr(grouped.par, method)(*args, **kwargs, **THREADS)
            return
        if isinstance(by, pd.Grouper) and isinstance(grouped.obj, pd.Series):
            # the Grouper's key column is not in the Series: pandas runs it, and says so
            with pytest.warns(jp.SerialFallbackWarning, match="pd.Grouper of a column"):
                got = getattr(grouped.par, method)(*args, **kwargs, **THREADS)
            _same(got, expected)
            return
        got = getattr(grouped.par, method)(*args, **kwargs, **THREADS)
    _same(got, expected)
    _ran_in_workers()


@pytest.mark.parametrize("method", ["transform", "agg", "filter"])
def test_processes_run_it_under_each_start_method(start_method, method):
    df = _frame(200)
    func = {"transform": demean, "agg": spread, "filter": lambda x: x.mean() > 0}[method]
    options = {**THREADS, "backend": "processes", "start_method": start_method}
    got = getattr(df.groupby("k")["b"].par, method)(func, **options)
    _same(got, getattr(df.groupby("k")["b"], method)(func))
    _ran_in_workers()


def test_frame_map_equals_pandas_and_infers_over_the_whole_column():
    df = pd.DataFrame({"a": [1.0, np.nan, 2.5, 4.0, np.nan, 6.0], "s": list("abcdef")})

    # None beside floats becomes NaN when pandas infers over the whole column; a
    # partition of only None would stay object on its own.
    def func(v):
        return None if isinstance(v, float) and (np.isnan(v) or v < 3) else v

    for na_action in (None, "ignore"):
        got = df.par.map(func, na_action=na_action, **THREADS)
        _same(got, df.map(func, na_action=na_action))
        _ran_in_workers()
    got = jp.map(df, lambda v, suffix: f"{v}{suffix}", suffix="!", **THREADS)
    _same(got, df.map(lambda v, suffix: f"{v}{suffix}", suffix="!"))


def _counted(func):
    calls: Counter = Counter()
    lock = threading.Lock()

    def counting(x, *args, **kwargs):
        with lock:
            calls[(type(x).__name__, len(x))] += 1
        return func(x, *args, **kwargs)

    return counting, calls


@pytest.mark.parametrize("method,select,func", [
    ("transform", lambda g: g[["b", "c"]], demean),               # fast path
    ("transform", lambda g: g[["b", "c"]], lambda x: x / x.sum().sum()),  # slow path
    ("transform", lambda g: g["b"], demean),
    ("agg", lambda g: g["b"], spread),
    ("agg", lambda g: g[["b", "c"]], spread),
    ("filter", lambda g: g, lambda x: len(x) > 8),
])
def test_the_function_runs_as_often_as_in_pandas(method, select, func):
    """Once per group (per column where pandas goes column by column), and pandas' own
    probe of the first group for a frame's transform: the same calls as serially."""
    df = _frame(300)
    serial, serial_calls = _counted(func)
    expected = getattr(select(df.groupby("k")), method)(serial)
    parallel, parallel_calls = _counted(func)
    got = getattr(select(df.groupby("k")).par, method)(parallel, **THREADS)
    _same(got, expected)
    _ran_in_workers()
    assert parallel_calls == serial_calls


class _ParAll:
    """``grouped.par`` for every call, and its column selections, with the test's options."""

    def __init__(self, grouped):
        self.grouped = grouped

    def __getitem__(self, key):
        return _ParAll(self.grouped[key])

    def __getattr__(self, method):
        return lambda *args, **kwargs: getattr(self.grouped.par, method)(*args, **kwargs,
                                                                       **THREADS)


def test_names_and_constant_functions_run_in_the_caller_as_pandas():
    df = _frame()
    for call in (lambda g: g.agg("sum"), lambda g: g.transform("mean"),
                 lambda g: g.agg(["sum", "max"]), lambda g: g.agg(np.mean)):
        _same(call(_ParAll(df.groupby("k"))), call(df.groupby("k")))
        run = jp.last_run()
        assert not run.with_workers and run.explain == "ran in the kernel as pandas"


def test_bad_arguments_fail_as_pandas_before_any_worker():
    df = _frame()
    seen = []

    def func(x):
        seen.append(1)
        return x.sum()

    cases = [
        lambda g: g.agg({"nope": func}),
        lambda g: g.agg(total=("nope", func)),
        lambda g: g["b"].agg({"renamed": func}),
        lambda g: g.agg([func, func]),
    ]
    for case in cases:
        with pytest.raises(Exception) as expected:
            case(df.groupby("k"))
        seen.clear()
        before = jp.last_run()
        with pytest.raises(type(expected.value)) as got:
            case(_ParAll(df.groupby("k")))
        assert str(got.value).startswith(str(expected.value)[:40])
        assert not seen and jp.last_run() is before
    with pytest.raises(ValueError, match="na_action must be"):
        df.par.map(func, na_action="bogus", **THREADS)


def test_an_error_in_the_function_is_the_users_own_type():
    df = _frame()

    def boom(x):
        if x.name == 3:
            msg = "group three"
            raise KeyError(msg)
        return x.sum()

    with pytest.raises(KeyError, match="group three"):
        df.groupby("k")["b"].par.transform(boom, **THREADS)


def test_numba_engine_runs_in_the_caller_and_says_so():
    df = _frame()
    # numba may not be installed: then pandas' own ImportError, after the warning
    with pytest.warns(jp.SerialFallbackWarning, match="engine='numba'"), \
            contextlib.suppress(ImportError):
        df.groupby("k")["b"].par.agg(lambda values, index: values.sum(), engine="numba",
                                         **THREADS)


def test_par_on_a_groupby_call_jupyter_par_does_not_run_is_one_clear_error():
    with pytest.raises(jp.UsageError, match=r"not 'cumsum'.*\.cumsum\(\.\.\.\)"):
        _frame().groupby("k").par.cumsum()
    assert isinstance(pd.api.typing.SeriesGroupBy.par, type)  # the accessor type, as pandas'


def test_function_forms():
    df = _frame()
    _same(jp.groupby_transform(df, "k", demean, **THREADS)[["b"]],
          df.groupby("k").transform(demean)[["b"]])
    _same(jp.groupby_agg(df, "k", spread, sort=False, **THREADS),
          df.groupby("k", sort=False).agg(spread))
    _same(jp.groupby_agg(df, "k", top=("b", spread), **THREADS),
          df.groupby("k").agg(top=("b", spread)))
    _same(jp.groupby_filter(df, ["k", "j"], lambda x: len(x) > 4, **THREADS),
          df.groupby(["k", "j"]).filter(lambda x: len(x) > 4))
    _ran_in_workers()


def test_series_results_travel_packed_and_read_back_as_they_were():
    from jupyter_par.planning.group_replay import Entry, Packed, pack

    values = [pd.Series([1.5, 2.0], index=[7, 3], name="v"), pd.Series([], name="v"),
              pd.Series([4.0], index=[9], name="v")]
    values[1] = values[1].astype(float).set_axis(pd.Index([], dtype="int64"))
    packed = pack([Entry(False, 2, v) for v in values])
    assert isinstance(packed, Packed) and len(packed) == 3
    for i, value in enumerate(values):
        tm.assert_series_equal(packed[i].value, value)
    mixed = [Entry(False, 1, pd.Series([1])), Entry(False, 1, pd.Series([1.0]))]
    assert pack(mixed) == mixed  # dtypes differ: sent one by one
    named = pack([Entry(False, 1, pd.Series([1], index=[0], name="a")),
                  Entry(False, 1, pd.Series([2], index=[1]))])
    assert isinstance(named, Packed) and [named[i].value.name for i in range(2)] == ["a", None]
    other_index = [Entry(False, 1, pd.Series([1], index=["x"])), Entry(False, 1, pd.Series([2]))]
    assert pack(other_index) == other_index
