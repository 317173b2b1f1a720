"""The in-kernel fallback counts what strings and objects cost to move (issue 18, item 7).

Strings travel pickled through a pipe, which costs more than a cheap function over them:
such a run must go to the kernel, not be slower than serial. A function that is slow
per row goes to the workers whatever its data, without the kernel spending long on the
sample.
"""

from __future__ import annotations

import os
import time
import warnings

import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par import cost, plans

STRINGS = pd.Series([f"{i:08d}" + "x" * 120 for i in range(400_000)], name="s")
RUN = {"jobs": 2, "progress": False}


def test_a_cheap_function_over_strings_runs_in_the_kernel():
    with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
        result = jp.map(STRINGS, len, **RUN)
    pd.testing.assert_series_equal(result, STRINGS.map(len))


def test_shared_objects_do_not_turn_the_fallback_off():
    with pytest.warns(jp.InlineFallbackWarning):
        result = jp.map(STRINGS, len, shared={"table": {"a": 1}}, **RUN)
    pd.testing.assert_series_equal(result, STRINGS.map(len))

    def shout(value):  # the sample in the kernel sees the shared objects too
        return value + jp.shared["tail"]["tail"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jp.InlineFallbackWarning)
        result = jp.map(STRINGS, shout, shared={"tail": {"tail": "!"}}, **RUN)
    pd.testing.assert_series_equal(result, STRINGS + "!")


def test_a_function_slow_per_row_goes_to_the_workers_after_a_short_sample():
    def slow(value):
        time.sleep(0.06)
        return os.getpid()

    plan = plans.series_call(STRINGS, slow, "map", {}, 2, None)
    started = time.perf_counter()
    assert cost.too_small_to_move(plan.parts, plan.op, 2) is None
    assert time.perf_counter() - started < 1.0  # one row told; no thousand-row sample
    with warnings.catch_warnings():
        warnings.simplefilter("error", jp.InlineFallbackWarning)
        pids = jp.map(STRINGS.iloc[:40], slow, **RUN)
    assert os.getpid() not in set(pids)
