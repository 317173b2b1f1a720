"""Windows run through pandas' own bounds, in pieces (planning/window_bounds.py).

A partition's own rows run as consecutive pieces, each handing pandas its bounds with
the other rows' windows empty. These tests cut the pieces down to a few rows (threads
backend, so the patched piece size is the workers' own) so that every window kind
crosses piece edges as well as partition edges, and compare with serial pandas: the
values, and how many times the function ran (once per window pandas calls it for).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_progress import Recorder
from test_windows import _f

import jupyter_par  # noqa: F401 - registers .par
from jupyter_par.planning import window_bounds

EXAMPLES = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
RUN = {"jobs": 2, "progress": False, "inline_fallback": False, "backend": "threads"}


class Counted:
    """The user's function, counting its calls (from every worker thread)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, x) -> float:
        with self._lock:
            self.calls += 1
        return _f(x)


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of ``size`` rows; counts the partitions that took the pieces' path."""
    taken = []
    real = window_bounds.run_in_pieces

    def counting(*args, **kwargs):
        taken.append(1)
        return real(*args, **kwargs)

    def use(size: int) -> list[int]:
        monkeypatch.setattr(window_bounds, "steps", lambda left, per_row: min(left, size))
        monkeypatch.setattr("jupyter_par.planning.windows.run_in_pieces", counting)
        return taken
    return use


def _draw_values(draw, n: int) -> np.ndarray:
    return np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, -3.0, np.nan]),
                                  min_size=n, max_size=n)), dtype=float)


@st.composite
def cases(draw):
    n = draw(st.integers(2, 50))
    stamps = pd.Timestamp("2024-03-01") + pd.to_timedelta(
        np.cumsum(draw(st.lists(st.sampled_from([0, 1, 5, 30]), min_size=n, max_size=n))),
        unit="min")
    by_time = draw(st.booleans())
    window = (draw(st.sampled_from(["1min", "10min", "2h"])) if by_time
              else draw(st.integers(1, 12)))
    kw = {"window": window, "min_periods": draw(st.one_of(st.none(), st.integers(1, 3))),
          "center": draw(st.booleans()),
          "closed": draw(st.sampled_from([None, "right", "both", "left", "neither"]))}
    if not by_time and kw["min_periods"] is not None:
        kw["min_periods"] = min(kw["min_periods"], window)
    data = pd.DataFrame({"b": _draw_values(draw, n), "a": _draw_values(draw, n)},
                        index=stamps if by_time else [f"r{i}" for i in range(n)])
    if draw(st.booleans()):
        data = data["b"]
    return (data, draw(st.booleans()), kw, draw(st.integers(2, 5)), draw(st.integers(1, 4)),
            draw(st.booleans()))


@EXAMPLES
@given(cases())
def test_rolling_in_small_pieces_equals_pandas_and_runs_each_window_once(small_pieces, case):
    data, expanding, kw, parts, size, raw = case
    taken = small_pieces(size)
    serial, parallel = Counted(), Counted()

    def window(obj):
        if expanding:
            return obj.expanding(kw["min_periods"] or 1)
        return obj.rolling(**kw)

    try:
        expected = window(data).apply(serial, raw=raw)
    except ValueError:  # a window pandas refuses (e.g. this closed= on a row window)
        return
    got = window(data).par.apply(parallel, raw=raw, partitions=parts, **RUN)
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    else:
        pd.testing.assert_series_equal(got, expected)
    assert parallel.calls == serial.calls
    assert taken, "no partition took the pieces' path"


def test_a_failing_window_in_a_later_piece_names_its_row(small_pieces):
    small_pieces(3)
    frame = pd.DataFrame({"x": np.arange(60.0), "y": np.arange(60.0) * 2},
                         index=[f"r{i}" for i in range(60)])

    def f(window):
        if window.iloc[-1] == 2 * 47:  # column y, row r47
            msg = "bad window"
            raise ZeroDivisionError(msg)
        return 0.0

    with pytest.raises(ZeroDivisionError, match="bad window") as info:
        frame.rolling(5).par.apply(f, raw=False, partitions=3, **RUN)
    assert "r47" in "".join(getattr(info.value, "__notes__", [])) + str(info.getrepr())


class FailsAt:
    """Raises on the window that ends at ``bad`` (in column ``y`` of the frame)."""

    def __init__(self, bad: float) -> None:
        self.bad = bad

    def __call__(self, window) -> float:
        return self.check(window)

    def check(self, window) -> float:
        if np.asarray(window)[-1] == self.bad:
            msg = "bad window"
            raise ZeroDivisionError(msg)
        return 0.0


def _plain(window):
    if np.asarray(window)[-1] == 2 * 31:
        msg = "bad window"
        raise ZeroDivisionError(msg)
    return 0.0


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("kind", ["function", "object", "method"])
@pytest.mark.parametrize("window", [4, "3min"])
def test_the_failing_windows_row_is_named_for_every_kind_of_callable(small_pieces, raw, kind,
                                                                   window):
    small_pieces(5)
    frame = pd.DataFrame({"x": np.arange(60.0), "y": np.arange(60.0) * 2},
                         index=pd.date_range("2024-01-01", periods=60, freq="min"))
    frame.iloc[[3, 40], 0] = np.nan  # NaN in the windows: they still match themselves
    func = {"function": _plain, "object": FailsAt(62.0), "method": FailsAt(62.0).check}[kind]
    with pytest.raises(ZeroDivisionError, match="bad window") as info:
        frame.rolling(window).par.apply(func, raw=raw, partitions=3, **RUN)
    assert "2024-01-01 00:31:00" in "".join(getattr(info.value, "__notes__", []))


@pytest.mark.parametrize(("make", "fast"), [
    (lambda s: s.rolling(10), True),
    (lambda s: s.rolling("2h"), True),
    (lambda s: s.rolling(10, center=True, closed="both", min_periods=2), True),
    (lambda s: s.expanding(), True),
    (lambda s: s.rolling(10, step=2), False),  # a step: output rows are not one per row
    (lambda s: s.rolling(10, min_periods=0), False),  # empty windows are called too
    (lambda s: s.expanding(0), False),
    (lambda s: s.to_frame().assign(t=s.index).rolling("2h", on="t"), False),
], ids=["rows", "time", "center", "expanding", "step", "min0", "expanding0", "on"])
def test_which_windows_take_pandas_bounds(make, fast):
    series = pd.Series(np.arange(30.0),
                       index=pd.date_range("2024-01-01", periods=30, freq="17min"))
    window = make(series)
    bounds = window_bounds.pandas_bounds(window, len(window.obj))
    assert (bounds is not None) == fast
    if fast:
        start, end, periods = bounds
        assert len(start) == len(end) == 30 and periods >= 1



def _slow_window(x: np.ndarray) -> float:
    time.sleep(0.0005)
    return float(x.sum())


def test_workers_report_window_rows_as_their_pieces_finish():
    """Two partitions of 1,500 windows of 0.5 ms (about 0.75 s each): each worker's rows
    move before its partition is done, as pandas' bounds run piece by piece."""
    series = pd.Series(np.arange(3000.0))
    rec = Recorder()
    got = series.rolling(10).par.apply(_slow_window, raw=True, jobs=2, partitions=2,
                                       progress=rec, inline_fallback=False)
    pd.testing.assert_series_equal(got, series.rolling(10).apply(_slow_window, raw=True))
    assert rec.final is not None and rec.final.rows_done == 3000
    midway = [w.rows_done for _, p in rec.updates for w in p.workers
              if 0 < w.rows_done < w.rows_assigned]
    assert midway, "no worker reported rows before its partition ended"
