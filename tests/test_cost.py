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
from where_ran import ran

import jupyter_par as jp
from jupyter_par.errors import InlineFallbackWarning
from jupyter_par.planning import builders as plans
from jupyter_par.run import fallback as cost

# Python strings (object dtype): with pyarrow, pandas 3's default str is Arrow-backed and
# moves as a few buffers, which a cheap function can be worth the workers for.
STRINGS = pd.Series([f"{i:08d}" + "x" * 1000 for i in range(100_000)], name="s", dtype=object)
RUN = {"jobs": 2, "progress": False}


def test_a_cheap_function_over_strings_runs_in_the_kernel():
    with pytest.warns(jp.InlineFallbackWarning, match="ran in the kernel"):
        result = ran("kernel", lambda: jp.map(STRINGS, len, **RUN))
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
    pd.testing.assert_series_equal(result, STRINGS.map(lambda value: value + "!"))


def test_a_function_slow_per_row_goes_to_the_workers_after_a_short_sample():
    sampled = []

    def slow(value):
        if os.getpid() == kernel:
            sampled.append(value)  # the sample runs in the kernel: count its rows
        time.sleep(0.06)
        return os.getpid()

    kernel = os.getpid()
    plan = plans.series_call(STRINGS, slow, "map", {}, 2, None)
    size = cost.measure(plan.parts)
    assert size is not None and cost.worth_a_sample(size, 0.0)
    sample = cost.Sample(size, plan.op, 2)
    pieces = [piece.size for piece in sample.pieces() if sample.clock(piece.data) is not None]
    assert sample.verdict is None  # to the workers
    assert pieces == [1, 1]  # one row told (after one to warm up); no thousand-row sample
    assert 1 <= len(sampled) <= 3, len(sampled)
    with warnings.catch_warnings():
        warnings.simplefilter("error", jp.InlineFallbackWarning)
        pids = ran("workers", lambda: jp.map(STRINGS.iloc[:40], slow, **RUN))
    assert kernel not in set(pids)


def test_a_cheap_call_with_a_large_shared_text_table_runs_in_the_kernel():
    """Preparing shared objects for the workers is moving cost too (issue 18, item 7):
    a few thousand cheap lookups into a million-row table with text would spend far
    longer writing the table for the workers than the lookups take in the kernel."""
    import numpy as np

    table = pd.DataFrame({"name": [f"customer-{i:07d}" for i in range(1_000_000)],
                          "value": np.arange(1_000_000, dtype=float)})
    small = pd.DataFrame({"k": np.arange(0, 1_000_000, 500)})

    def look(row):
        return len(jp.shared["table"]["name"].iat[row["k"]])

    assert cost.sharing_seconds({"table": table}) > cost.SHARING_SMALL_SECONDS
    with pytest.warns(InlineFallbackWarning, match=r"shared objects: .* of it"):
        result = jp.apply(small, look, axis=1, jobs=2, shared={"table": table},
                          progress=False)
    assert result.tolist() == [16] * len(small)


def test_sharing_costs_nothing_without_shared_objects_and_little_for_small_ones():
    assert cost.sharing_seconds(None) == 0.0
    assert cost.sharing_seconds({"rates": pd.Series([0.5, 1.0])}) < cost.SHARING_SMALL_SECONDS
