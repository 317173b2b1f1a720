"""Progress records, the tracker, the text renderer, and what real runs report.

Runs use two warm worker processes shared by the whole module, small frames, and a
recording sink (``progress=callable``), so every number checked is what a widget or a
text bar would have been given.
"""

from __future__ import annotations

import io
import itertools
import time

import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.engine import TICK
from jupyter_par.progress import (
    BUSY,
    DONE,
    FAILED,
    IDLE,
    ProgressTracker,
    RunProgress,
    TextProgress,
    WorkerProgress,
)
from jupyter_par.sinks import sinks_for


class Recorder:
    """A sink that keeps every record with the moment it arrived."""

    def __init__(self) -> None:
        self.updates: list[tuple[float, RunProgress]] = []
        self.final: RunProgress | None = None

    def update(self, progress: RunProgress) -> None:
        self.updates.append((time.monotonic(), progress))

    def close(self, progress: RunProgress) -> None:
        self.final = progress


@pytest.fixture(scope="module")
def warm_pair():
    """Two warm worker processes, started once for the module."""
    backends.acquire("processes", 2, start_method=None)
    yield
    jp.shutdown()


def slow_double(row):
    time.sleep(0.0005)
    return row["a"] * 2


# -- the tracker and the records ---------------------------------------------------------
def test_tracker_counts_rows_per_worker_and_in_total():
    t = ProgressTracker(rows_total=30, partitions_total=3)
    t.add_worker("0")
    t.add_worker("1")
    t.assigned("0", 0, 10)
    t.assigned("1", 1, 10)
    mid = t.snapshot({"0": 4, "1": 25})  # partial counts are capped at the partition size
    by_name = {w.worker: w for w in mid.workers}
    assert (by_name["0"].rows_done, by_name["0"].rows_assigned, by_name["0"].state) == (4, 10, BUSY)
    assert by_name["1"].rows_done == 10
    assert mid.rows_done == 14 and mid.rows_total == 30 and mid.partitions_done == 0
    t.finished("0")
    t.assigned("0", 2, 10)
    t.finished("0")
    t.finished("1")
    end = t.snapshot(state=DONE)
    assert [(w.rows_done, w.rows_assigned, w.state) for w in end.workers] == [
        (20, 20, DONE), (10, 10, DONE)]
    assert end.rows_done == 30 and end.partitions_done == 3 and end.fraction == 1.0
    assert end.eta == 0.0


def test_tracker_keeps_a_failure_visible_and_releases_unfinished_work():
    t = ProgressTracker(rows_total=20, partitions_total=2)
    t.assigned("0", 0, 10)
    t.assigned("1", 1, 10)
    t.failed_on("0", "ValueError: bad row")
    t.released("1")
    snap = t.snapshot(state="failed")
    by_name = {w.worker: w for w in snap.workers}
    assert by_name["0"].state == FAILED and by_name["0"].error == "ValueError: bad row"
    # the failed partition stays assigned, so the bar shows how far the worker got
    assert by_name["0"].rows_assigned == 10 and by_name["0"].rows_done == 0
    assert by_name["1"].state == IDLE and by_name["1"].rows_assigned == 0


def test_eta_is_time_left_at_the_overall_rate():
    record = RunProgress(workers=(), rows_done=25, rows_total=100, partitions_done=1,
                         partitions_total=4, elapsed=10.0)
    assert record.fraction == 0.25
    assert record.eta == pytest.approx(30.0)
    unknown = RunProgress(workers=(), rows_done=5, rows_total=None, partitions_done=0,
                          partitions_total=None, elapsed=1.0)
    assert unknown.fraction is None and unknown.eta is None


def test_text_bars_show_each_worker_at_its_total():
    stream = io.StringIO()
    bars = TextProgress(file=stream)
    workers = (WorkerProgress("0", DONE, 600, 600, 100.0),
               WorkerProgress("1", DONE, 400, 400, 90.0))
    bars.close(RunProgress(workers=workers, rows_done=1000, rows_total=1000, partitions_done=8,
                           partitions_total=8, elapsed=5.0, state=DONE, label="score"))
    text = stream.getvalue()
    assert "score" in text and "1000/1000" in text
    assert "600/600" in text and "400/400" in text


def test_outside_a_kernel_progress_is_text():
    assert [type(s) for s in sinks_for(True, "x")] == [TextProgress]
    assert sinks_for(False, "x") == []


# -- real runs -----------------------------------------------------------------------------
def test_a_run_reports_every_worker_reaching_its_assigned_rows(warm_pair):
    df = pd.DataFrame({"a": range(2000)})
    rec = Recorder()
    result = jp.apply(df, slow_double, axis=1, jobs=2, progress=rec)
    pd.testing.assert_series_equal(result, df.apply(slow_double, axis=1))
    final = rec.final
    assert final is not None and final.state == DONE
    assert len(final.workers) == 2
    assert all(w.rows_done == w.rows_assigned > 0 for w in final.workers)
    assert sum(w.rows_done for w in final.workers) == final.rows_total == len(df)
    assert final.partitions_done == final.partitions_total
    assert all(w.state == DONE and w.rows_per_second > 0 for w in final.workers)
    done_over_time = [p.rows_done for _, p in rec.updates]
    assert done_over_time == sorted(done_over_time)  # never goes backwards


def test_first_update_is_quick_and_updates_are_throttled(warm_pair):
    df = pd.DataFrame({"a": range(2400)})
    rec = Recorder()
    started = time.monotonic()
    jp.apply(df, slow_double, axis=1, jobs=2, progress=rec)
    ended = time.monotonic()
    times = [t for t, _ in rec.updates]
    assert times[0] - started < 0.2
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= TICK * 0.9
    assert len(times) <= (ended - started) / TICK + 2
    assert len(times) >= 3  # a run of about half a second shows several updates


def test_user_code_reports_its_own_steps(warm_pair):
    def count_slowly(part):
        for _ in range(len(part)):
            time.sleep(0.01)
            jp.progress(1)
        return part

    df = pd.DataFrame({"a": range(60)})
    rec = Recorder()
    jp.map_partitions(df, count_slowly, jobs=2, partitions=2, progress=rec)
    partial = [w.rows_done for _, p in rec.updates for w in p.workers
               if w.state == BUSY and 0 < w.rows_done < w.rows_assigned]
    assert partial, "no update showed rows reported by jp.progress inside a partition"


def test_a_failure_leaves_the_failed_worker_visible(warm_pair):
    def fails_late(row):
        if row["a"] == 1500:
            msg = "row 1500 is bad"
            raise ValueError(msg)
        return row["a"]

    df = pd.DataFrame({"a": range(2000)})
    rec = Recorder()
    with pytest.raises(ValueError, match="row 1500 is bad"):
        jp.apply(df, fails_late, axis=1, jobs=2, progress=rec)
    final = rec.final
    assert final is not None and final.state == FAILED
    failed = [w for w in final.workers if w.state == FAILED]
    assert len(failed) == 1 and "row 1500 is bad" in failed[0].error
