"""Progress records, the tracker, the text renderer, and what real runs report.

Runs use two warm worker processes shared by the whole module, small frames, and a
recording sink (``progress=callable``), so every number checked is what a widget or a
text bar would have been given.
"""

from __future__ import annotations

import io
import itertools
import random
import re
import time

import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.progress.chooser import sinks_for
from jupyter_par.progress.records import (
    BUSY,
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    STOPPED,
    ProgressTracker,
    RunProgress,
    WorkerProgress,
    interrupted_line,
)
from jupyter_par.progress.text import TextProgress
from jupyter_par.run.engine import TICK


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
    # the other worker's partition was taken back when the run stopped: it says so
    assert by_name["1"].state == STOPPED and by_name["1"].rows_assigned == 0


def simulate(seed: int, workers: int = 4, partitions: int = 24) -> list[RunProgress]:
    """Drive a tracker through a random run; return a record at every step.

    Partitions of random sizes go to random idle workers, workers report random partial
    counts (sometimes none), some partitions are given back and retried, and the records
    are taken between any two events, as the engine's ticks fall.
    """
    rng = random.Random(seed)
    sizes = [rng.randint(1, 200) for _ in range(partitions)]
    tracker = ProgressTracker(rows_total=sum(sizes), partitions_total=partitions)
    names = [str(i) for i in range(workers)]
    for name in names:
        tracker.add_worker(name)
    queue = list(range(partitions))
    running: dict[str, tuple[int, int]] = {}  # worker -> (partition, rows done)
    frames = [tracker.snapshot()]
    while queue or running:
        idle = [n for n in names if n not in running]
        if queue and idle and rng.random() < 0.6:
            worker, part = rng.choice(idle), queue.pop(0)
            tracker.assigned(worker, part, sizes[part])
            running[worker] = (part, 0)
        elif running:
            worker = rng.choice(sorted(running))
            part, done = running[worker]
            roll = rng.random()
            if roll < 0.05:  # given back: retried later, maybe elsewhere
                tracker.released(worker)
                del running[worker]
                queue.append(part)
            elif done >= sizes[part] or roll < 0.25:
                tracker.finished(worker)
                del running[worker]
            else:
                running[worker] = (part, min(sizes[part], done + rng.randint(1, 60)))
        report = {w: d for w, (_, d) in running.items() if rng.random() < 0.8}
        frames.append(tracker.snapshot(report))
    frames.append(tracker.snapshot(state=DONE))
    return frames


@pytest.mark.parametrize("seed", range(40))
def test_no_bar_moves_backwards_over_a_run(seed):
    frames = simulate(seed)
    for before, after in itertools.pairwise(frames):
        assert after.rows_done >= before.rows_done
        assert after.fraction >= before.fraction
        for b, a in zip(before.workers, after.workers, strict=True):
            assert a.rows_done >= b.rows_done, (b, a)
            assert a.fraction >= b.fraction, (b, a)
            assert 0.0 <= a.fraction <= 1.0
    end = frames[-1]
    assert end.rows_done == end.rows_total and end.fraction == 1.0
    assert all(w.fraction == 1.0 for w in end.workers if w.rows_done)


def test_the_simulated_runs_would_have_moved_backwards_before():
    """done/assigned, the old per-worker bar, drops in these runs: the test above bites."""
    drops = 0
    for seed in range(40):
        frames = simulate(seed)
        for before, after in itertools.pairwise(frames):
            for b, a in zip(before.workers, after.workers, strict=True):
                old_b = b.rows_done / b.rows_assigned if b.rows_assigned else 0.0
                old_a = a.rows_done / a.rows_assigned if a.rows_assigned else 0.0
                drops += old_a < old_b - 0.2
    assert drops > 40


def test_an_interrupted_run_keeps_its_last_counts():
    t = ProgressTracker(rows_total=400, partitions_total=4, label="score")
    for name in ("0", "1"):
        t.add_worker(name)
    t.assigned("0", 0, 100)
    t.assigned("1", 1, 100)
    t.snapshot({"0": 100, "1": 60})
    t.finished("0")
    t.assigned("0", 2, 100)
    last = t.snapshot({"0": 70, "1": 90})
    # the interrupt: the engine takes the partitions back and draws without the backend
    t.released("0")
    t.released("1")
    end = t.snapshot(state=CANCELLED, message="KeyboardInterrupt: ")
    assert end.rows_done == last.rows_done == 260
    assert [w.rows_done for w in end.workers] == [w.rows_done for w in last.workers] == [170, 90]
    assert [w.fraction for w in end.workers] == [w.fraction for w in last.workers]
    assert all(0 < w.fraction < 1 for w in end.workers)
    assert [w.state for w in end.workers] == [STOPPED, STOPPED]
    assert end.status == "cancelled at 65%"
    assert interrupted_line(end) == (
        "KeyboardInterrupt: score: run cancelled at 65% (260 of 400 rows); nothing was stored")


def test_a_lazily_read_input_shows_no_total_until_it_ends():
    t = ProgressTracker(rows_total=None, partitions_total=None)
    t.grow_total(50)
    t.assigned("0", 0, 50)
    mid = t.snapshot({"0": 20})
    assert mid.rows_total is None and mid.fraction is None and mid.workers[0].fraction is None
    assert mid.rows_done == 20
    t.finished("0")
    end = t.snapshot(state=DONE)
    assert end.rows_total == 50 and end.fraction == 1.0 and end.workers[0].fraction == 1.0


def test_eta_is_time_left_at_the_overall_rate():
    record = RunProgress(workers=(), rows_done=25, rows_total=100, partitions_done=1,
                         partitions_total=4, elapsed=10.0)
    assert record.fraction == 0.25
    assert record.eta == pytest.approx(30.0)
    unknown = RunProgress(workers=(), rows_done=5, rows_total=None, partitions_done=0,
                          partitions_total=None, elapsed=1.0)
    assert unknown.fraction is None and unknown.eta is None


def finished_run(state: str = DONE) -> RunProgress:
    workers = (WorkerProgress("0", DONE, 600, 600, 100.0, fraction=1.0),
               WorkerProgress("1", FAILED if state == FAILED else DONE, 400, 400, 90.0,
                              fraction=0.8 if state == FAILED else 1.0,
                              error="ValueError: bad row" if state == FAILED else None))
    return RunProgress(workers=workers, rows_done=1000 if state == DONE else 900,
                       rows_total=1000, partitions_done=8, partitions_total=8, elapsed=5.0,
                       state=state, label="score")


def test_bars_end_with_the_overall_line_once_and_every_worker():
    stream = io.StringIO()
    bars = TextProgress(file=stream, plain=False)
    bars.update(finished_run(RUNNING))
    bars.close(finished_run(CANCELLED))
    bars.close(finished_run(CANCELLED))  # a second close draws nothing
    final = stream.getvalue().rsplit("\r", 1)[-1].strip().splitlines()
    assert len(final) == 3, final
    assert final[0].startswith("score:  90%|") and "cancelled at 90%" in final[0]
    assert "900/1,000 rows" in final[0]
    assert "worker 0 |" in final[1] and "100% done · 600 rows" in final[1]
    assert "worker 1 |" in final[2] and "done · 400 rows" in final[2]


def test_plain_lines_say_start_and_end_and_the_errors():
    stream = io.StringIO()
    lines = TextProgress(file=stream)  # a StringIO is no terminal: plain lines
    lines.update(finished_run(RUNNING))
    lines.close(finished_run(FAILED))
    assert stream.getvalue().splitlines() == [
        "score: started · 1,000 rows in 8 partitions on 2 workers",
        "score: failed at 90% · 900/1,000 rows · 8/8 partitions · 5.0 s",
        "  worker 1 failed: ValueError: bad row",
    ]


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


def test_worker_bars_of_a_real_run_never_move_backwards(warm_pair):
    df = pd.DataFrame({"a": range(2400)})
    rec = Recorder()
    jp.apply(df, slow_double, axis=1, jobs=2, partitions=16, progress=rec)
    frames = [p for _, p in rec.updates] + [rec.final]
    old_drops = 0
    for before, after in itertools.pairwise(frames):
        assert after.rows_done >= before.rows_done
        for b, a in zip(before.workers, after.workers, strict=True):
            assert a.rows_done >= b.rows_done and a.fraction >= b.fraction, (b, a)
            old = [w.rows_done / w.rows_assigned if w.rows_assigned else 0.0 for w in (b, a)]
            old_drops += old[1] < old[0]
    assert old_drops > 0, "no partition was handed out mid-run: the check above is idle"
    assert all(w.fraction == 1.0 for w in rec.final.workers)


def test_first_update_is_quick_and_updates_are_throttled(warm_pair):
    df = pd.DataFrame({"a": range(2400)})
    rec = Recorder()
    started = time.monotonic()
    jp.apply(df, slow_double, axis=1, jobs=2, progress=rec)
    ended = time.monotonic()
    times = [t for t, _ in rec.updates]
    # The first update shows the run under way (not only its end), within the promised
    # tenth of a second plus the margin a machine at load 10 needs.
    assert rec.updates[0][1].rows_done < len(df)
    assert times[0] - started < 2.0
    # Throttled: never more updates than ticks (whatever the load), most gaps a tick long
    # (the recorder's own clock jitters under load; the engine's throttle does not).
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    assert len(times) <= (ended - started) / TICK + 2
    assert len(times) >= 3, times  # a run of at least half a second shows several updates
    assert gaps[len(gaps) // 2] >= TICK * 0.9, gaps


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


# -- text in a real script: a pipe, a terminal, an interrupt --------------------------------
SCRIPT = """
import sys, time
import pandas as pd
import jupyter_par as jp
from jupyter_par.progress import text as text_progress
text_progress.PLAIN_INTERVAL = 0.5

def slow(row):
    time.sleep({delay})
    return row["a"] * 2

df = pd.DataFrame({{"a": range(1600)}})
try:
    result = jp.apply(df, slow, axis=1, jobs=2, partitions=16)
    assert result.equals(df["a"] * 2)
finally:
    jp.shutdown()
"""
LABEL = "apply(slow, axis=1)"


def run_in_terminal(argv: list[str], *, interrupt_after: str | None = None,
                    timeout: float = 60) -> str:
    """Run ``argv`` on a pseudo-terminal of 40x110; type Ctrl-C once ``interrupt_after``
    has been written 20 times (bars redrawn for a while). Returns all that was written."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the pseudo-terminal is its stdin, stdout and stderr
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 110, 0, 0))
    out, interrupted = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if interrupt_after and not interrupted and out.count(interrupt_after.encode()) >= 20:
                os.write(fd, b"\x03")  # Ctrl-C: SIGINT to the foreground process group
                interrupted = True
    finally:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert time.monotonic() < deadline, f"still running after {timeout} s:\n{out[-2000:]!r}"
    return out.decode(errors="replace")


#: The line after a finished run: where its time went
#: (:func:`jupyter_par.progress.timings.explain`).
EXPLAIN = (r"  compute \d+% · shipping <?\d+% · kernel <?\d+% · idle \d+% → [\d.]+x with 2 "
           r"workers; about [\d.]+x at 4, [\d.]+x at 16, [\d.]+x at 64")


def final_block(text: str) -> list[str]:
    """The lines printed after the bars were erased for the last time."""
    text = text.replace("\r\n", "\n")  # the terminal's line ends; a bare CR is a redraw
    return [line for line in text.rsplit("\r", 1)[-1].splitlines() if line.strip()]


def test_a_script_writing_to_a_pipe_prints_a_few_plain_lines(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(delay=0.002))
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=True)
    took = time.monotonic() - started
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    assert done.stdout == ""
    assert lines[0] == f"{LABEL}: started · 1,600 rows in 16 partitions on 2 workers"
    assert lines[-2].startswith(f"{LABEL}: done · 1,600/1,600 rows · 16/16 partitions")
    assert re.fullmatch(EXPLAIN, lines[-1]), lines[-1]  # where the time went, last
    summaries = lines[1:-2]
    # At least 1.6 s of work, a line every 0.5 s: a few lines, never more than the
    # script's own time allows (it takes longer on a loaded machine).
    assert 1 <= len(summaries) <= took / 0.5 + 1, (took, lines)
    assert all(s.startswith(f"{LABEL}: ") and "% · " in s and "ETA" in s for s in summaries)
    shown = [int(s.split(": ")[1].split("%")[0]) for s in summaries]
    assert shown == sorted(shown)


def test_a_script_on_a_terminal_draws_bars_then_the_end_once(tmp_path):
    import sys

    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(delay=0.002))
    text = run_in_terminal([sys.executable, str(script)])
    redraws = text.replace("\r\n", "\n").count(f"\r{LABEL}: ")
    assert redraws >= 5, text[-2000:]  # live bars, redrawn in place
    end = final_block(text)
    assert len(end) == 4, end
    assert end[0].startswith(f"{LABEL}: 100%|") and "done · 1,600/1,600 rows" in end[0]
    assert all("100% done · 800 rows" in line for line in end[1:3]), end
    assert re.fullmatch(EXPLAIN, end[3]), end


def test_an_interrupt_in_terminal_ipython_shows_one_line_and_the_last_counts(tmp_path):
    import sys

    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(delay=0.02))  # 1,600 rows at 50 a second per worker
    # -c runs the code as a cell (a script named on the command line would crash IPython
    # on KeyboardInterrupt, whatever the code does)
    ipython = [sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor",
               "--HistoryManager.enabled=False", "-c", script.read_text()]
    text = run_in_terminal(ipython, interrupt_after="rows/s", timeout=60)
    assert "Traceback" not in text and "selectors" not in text, text[-3000:]
    (line,) = [s for s in text.splitlines() if s.startswith("KeyboardInterrupt")]
    assert line.startswith(f"KeyboardInterrupt: {LABEL}: run cancelled at ")
    assert line.endswith("rows); nothing was stored")
    end = final_block(text.split("KeyboardInterrupt")[0])
    overall = [s for s in end if s.startswith(f"{LABEL}:")]
    assert len(overall) == 1, end
    percent = overall[0].split("cancelled at ")[1].split("%")[0]
    assert 0 < int(percent) < 100 and f"cancelled at {percent}%" in line
    workers = [s for s in end if s.strip().startswith("worker")]
    assert len(workers) == 2
    assert not any("100%" in w for w in workers), workers
    assert any("stopped" in w for w in workers), workers


CHATTY_SCRIPT = SCRIPT.replace(
    'time.sleep({delay})', 'time.sleep({delay})\n    if row["a"] % 400 == 0:\n'
    '        print("reached row", row["a"])')


def test_a_terminal_shows_what_workers_print_as_they_print_it(tmp_path):
    import sys

    script = tmp_path / "run.py"
    script.write_text(CHATTY_SCRIPT.format(delay=0.002))
    text = run_in_terminal([sys.executable, str(script)]).replace("\r\n", "\n")
    # Above the bars, while they are still redrawn: a line per print, partition and worker.
    printed = re.findall(r"\[p\d+ w[01]\] reached row (\d+)\n", text)
    assert sorted(map(int, printed)) == [0, 400, 800, 1200], text[-3000:]
    first = text.index("reached row")
    assert f"\r{LABEL}: " in text[first:], "no bar was drawn after the first line"
    # Not printed again, grouped, at the end.
    assert "[partition" not in text and text.count("reached row 800") == 1
