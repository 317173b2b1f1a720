"""Row counting inside a cell body: pandas calls are counted once, in the body's thread only."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from jupyter_par.cell import row_count as _pandas_hooks
from jupyter_par.worker import task as _worker

HOOKED = (pd.DataFrame.apply, pd.DataFrame.agg, pd.Series.map, pd.Series.apply,
          pd.api.typing.DataFrameGroupBy.apply)


@pytest.fixture
def ctx():
    """A fresh task context for this thread, as a worker has while it runs a partition."""
    context = _worker.TaskContext(last_flush=0.0)
    _worker._local.ctx = context
    yield context
    _worker._local.ctx = None


def test_rows_are_counted_once_per_row_and_pandas_is_restored(ctx):
    frame = pd.DataFrame({"a": range(50), "g": [i % 5 for i in range(50)]})
    with _pandas_hooks.counting_rows(len(frame)):
        assert _pandas_hooks.installed()
        # the row function calls pandas itself: still one count per row
        frame.apply(lambda r: pd.Series([r["a"]]).map(str).iloc[0], axis=1)
        assert ctx.rows == 50
    ctx.rows = 0
    with _pandas_hooks.counting_rows(len(frame)):
        frame.groupby("g").apply(lambda g: g["a"].sum())
        assert ctx.rows == 50
        frame["a"].map(lambda v: v + 1)  # a second pass never counts past the partition
        assert ctx.rows == 50
    ctx.rows = 0
    with _pandas_hooks.counting_rows(len(frame)):
        frame.agg("sum")  # no per-row hook: the whole call counts when it returns
        assert ctx.rows == 50
    assert not _pandas_hooks.installed()
    assert (pd.DataFrame.apply, pd.DataFrame.agg, pd.Series.map, pd.Series.apply,
            pd.api.typing.DataFrameGroupBy.apply) == HOOKED


def test_the_failing_row_is_named_and_other_threads_are_not_counted(ctx):
    frame = pd.DataFrame({"a": [1, 2, 0, 4]}, index=list("wxyz"))
    seen = []
    with _pandas_hooks.counting_rows(4):
        other = threading.Thread(
            target=lambda: seen.append(frame.apply(lambda r: r["a"] + 1, axis=1).size))
        other.start()
        other.join()
        with pytest.raises(ZeroDivisionError):
            frame.apply(lambda r: 10 // int(r["a"]), axis=1)
    assert seen == [4] and ctx.rows == 2  # the other thread's 4 rows are not ours
    assert ctx.has_row_label and ctx.row_label == "y"


def test_a_successful_call_clears_the_row_label(ctx):
    frame = pd.DataFrame({"a": [1, 2]}, index=["p", "q"])
    with _pandas_hooks.counting_rows(2):
        frame.apply(lambda r: r["a"], axis=1)
    assert not ctx.has_row_label  # a later failure outside pandas must not blame row "q"
