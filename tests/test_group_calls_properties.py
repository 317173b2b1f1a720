"""Property tests for GroupBy ``.par`` (issue 23): on random small frames with few groups,
every key form and functions returning odd things (scalars, Series, frames of another
shape, None, strings), the parallel call returns exactly serial pandas' result, or
raises the same exception type where pandas raises. Partitions are few rows each, so
groups sit in different partitions; threads keep each example fast."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pandas._testing as tm
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jupyter_par as jp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

_HUNT = int(os.environ.get("JP_HYPOTHESIS_EXAMPLES", "0"))
EXAMPLES = settings(max_examples=_HUNT or 80, deadline=None, derandomize=not _HUNT,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KEY_FORMS = ("column", "columns", "series", "level", "categorical", "unobserved",
             "nan kept", "nan dropped", "nan kept unsorted", "unsorted", "as_index=False")

SERIES_FUNCS = {
    "transform": [lambda x: x - x.mean(), lambda x: x.sum(), lambda x: list(range(len(x))),
                  lambda x: x.iloc[::-1], lambda x: x.astype(str), lambda x: x.iloc[:1]],
    "agg": [lambda x: x.sum(), lambda x: len(x), lambda x: str(x.iloc[0]), lambda x: None,
            lambda x: x.iloc[0] if len(x) % 2 else float(x.iloc[0]), lambda x: x.to_numpy()],
    "filter": [lambda x: len(x) > 2, lambda x: x.sum() > 0, lambda x: None,
               lambda x: x.iloc[:1]],
    "apply": [lambda x: x.sum(), lambda x: None, lambda x: x.iloc[:1], lambda x: x * 2],
}
FRAME_FUNCS = {
    "transform": [lambda g: g - g.mean(), lambda g: g.sum(), lambda g: 1.5,
                  lambda g: g.iloc[:1], lambda g: g / g.sum().sum(), lambda g: g.rank()],
    "agg": [lambda x: x.sum(), lambda x: x.max() - x.min(), lambda x: str(len(x))],
    "filter": [lambda g: len(g) > 2, lambda g: g["v"].sum() > 0, lambda g: g["v"]],
    "apply": [lambda g: g.sum(), lambda g: None, lambda g: g.iloc[:1], lambda g: len(g)],
}


@st.composite
def cases(draw):
    n = draw(st.integers(1, 24))
    keys = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    values = draw(st.lists(st.integers(-5, 9), min_size=n, max_size=n))
    df = pd.DataFrame({"k": keys, "j": [i % 2 for i in range(n)],
                       "v": np.array(values, dtype=float) / 2, "w": values},
                      index=pd.Index(draw(st.permutations(range(n))), name="i"))
    form = draw(st.sampled_from(KEY_FORMS))
    series = draw(st.booleans())
    method = draw(st.sampled_from(("transform", "agg", "filter", "apply")))
    funcs = SERIES_FUNCS if series else FRAME_FUNCS
    func = draw(st.sampled_from(funcs[method]))
    return df, form, series, method, func, draw(st.integers(1, 6))


def _grouped(df: pd.DataFrame, form: str, series: bool):
    flags: dict = {}
    by: object = "k"
    if form == "columns":
        by = ["k", "j"]
    elif form == "series":
        by = (df["k"] % 2).rename("m")
    elif form == "level":
        df, by, flags = df.set_index("k", append=True), None, {"level": "k"}
    elif form in ("categorical", "unobserved"):
        df = df.assign(k=pd.Categorical(df["k"], categories=range(6)))
        flags = {"observed": form == "categorical"}
    elif form.startswith("nan"):
        df = df.assign(k=df["k"].astype(float).where(df["k"] != 1))
        flags = {"dropna": form == "nan dropped", "sort": form != "nan kept unsorted"}
    elif form == "unsorted":
        flags = {"sort": False}
    elif form == "as_index=False":
        flags = {"as_index": False}
    grouped = df.groupby(by, **flags)
    return grouped["v"] if series else grouped[["v", "w"]]


@EXAMPLES
@given(cases())
def test_par_equals_serial_pandas(case):
    df, form, series, method, func, partitions = case
    grouped = _grouped(df, form, series)
    options = {"jobs": 2, "partitions": partitions, "backend": "threads", "progress": False,
               "inline_fallback": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' own deprecations, the same in both
        try:
            expected = getattr(grouped, method)(func)
        except Exception as error:  # noqa: BLE001 - then the parallel call raises the same
            with pytest.raises(type(error)):
                getattr(grouped.par, method)(func, **options)
            return
        got = getattr(grouped.par, method)(func, **options)
    if isinstance(expected, pd.DataFrame):
        tm.assert_frame_equal(got, expected)
    elif isinstance(expected, pd.Series):
        tm.assert_series_equal(got, expected)
    else:
        assert got == expected
    run = jp.last_run()
    assert run is not None
