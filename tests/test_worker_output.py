"""Worker output while the run goes (issue 15): prints reach the progress sinks before the
partition ends, on every backend with workers; ``logging`` records made in worker processes
are handled by the kernel's loggers with their level and name; a terminal shows the lines
as they come and does not print them again; the views keep a bounded tail per partition.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import Any

import pandas as pd
import pytest
from where_ran import ran

import jupyter_par as jp
from jupyter_par.progress.records import LiveLog
from jupyter_par.progress.text import TextProgress
from jupyter_par.worker import output as worker_output

LOG = logging.getLogger("jp_test_etl")
PAUSE = 1.5


def chatty(x: int) -> int:
    print("start", x)
    LOG.info("item %s loaded", x)
    LOG.debug("below the caller's level: never made")
    time.sleep(PAUSE)
    print("end", x)
    return x * 2


class Recorder:
    """A sink that notes when each piece of output came, and when the run ended."""

    def __init__(self) -> None:
        self.pieces: list[tuple[int, str, str, float]] = []
        self.closed_at: float | None = None

    def update(self, progress: Any) -> None:
        pass

    def close(self, progress: Any) -> None:
        self.closed_at = time.monotonic()

    def output(self, partition: int, worker: str, text: str) -> None:
        self.pieces.append((partition, worker, text, time.monotonic()))

    def text_of(self, partition: int) -> str:
        return "".join(t for p, _, t, _ in self.pieces if p == partition)


BACKENDS = [
    pytest.param({"backend": "processes", "start_method": "fork"}, id="fork"),
    pytest.param({"backend": "processes", "start_method": "spawn"}, id="spawn"),
    pytest.param({"backend": "processes", "start_method": "forkserver"}, id="forkserver"),
    pytest.param({"backend": "threads"}, id="threads"),
]
PROCESSES = BACKENDS[:3]


@pytest.fixture(scope="module", autouse=True)
def stop_workers_at_the_end():
    yield
    jp.shutdown()


@pytest.mark.parametrize("options", BACKENDS)
def test_prints_reach_the_sink_before_their_partition_ends(options, capsys):
    sink = Recorder()
    result = jp.map(list(range(4)), chatty, jobs=2, partitions=4, progress=sink,
                    inline_fallback=False, **options)
    assert result == [0, 2, 4, 6]
    for partition in range(4):
        assert sink.text_of(partition) == f"start {partition}\nend {partition}\n"
        first = next(t for p, _, text, t in sink.pieces if p == partition and "start" in text)
        last = next(t for p, _, text, t in sink.pieces if p == partition and "end" in text)
        # "start" came while the partition still slept, not with its result.
        assert last - first > PAUSE / 2, sink.pieces
    assert sink.closed_at is not None
    assert all(t <= sink.closed_at for *_, t in sink.pieces)
    # The whole output is still printed at the end, grouped, once (no terminal kept it).
    out = capsys.readouterr().out
    assert [ln for ln in out.splitlines() if ln.startswith("[partition")] == [
        f"[partition {i}, worker {w}]" for i, w in
        [(p, next(w for q, w, *_ in sink.pieces if q == p)) for p in range(4)]]


def records_made(x: int) -> list[str]:
    """The levels of the records this call made (a logger's filters see each record
    made, after its level check), in this thread only."""
    made: list[str] = []
    me = threading.get_ident()

    def note(record: logging.LogRecord) -> bool:
        if record.thread == me:
            made.append(record.levelname)
        return True

    LOG.addFilter(note)
    try:
        LOG.info("item %s loaded", x)
        LOG.debug("below the caller's level: never made")
    finally:
        LOG.removeFilter(note)
    return made


@pytest.mark.parametrize("options", BACKENDS)
def test_the_workers_take_the_callers_log_level(options, caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    made = ran("workers", lambda: jp.map(list(range(4)), records_made, jobs=2, partitions=4,
                                         progress=False, inline_fallback=False, **options))
    # The worker took the caller's level: its DEBUG records were never made.
    assert made == [["INFO"]] * 4
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    made = jp.map(list(range(4)), records_made, jobs=2, partitions=4, progress=False,
                  inline_fallback=False, **options)
    assert made == [["INFO", "DEBUG"]] * 4


@pytest.mark.parametrize("options", PROCESSES)
def test_worker_log_records_go_through_the_callers_loggers(options, caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    jp.map(list(range(4)), chatty, jobs=2, partitions=4, progress=Recorder(),
           inline_fallback=False, **options)
    records = [r for r in caplog.records if r.name == LOG.name]
    assert sorted(r.getMessage() for r in records) == [f"item {i} loaded" for i in range(4)]
    assert all(r.levelno == logging.INFO and r.funcName == "chatty" for r in records)
    assert sorted(r.jp_partition for r in records) == [0, 1, 2, 3]
    # (That the worker's DEBUG records are never made: test_the_workers_take_the_callers_log_level.)


def test_records_come_while_the_run_goes(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    seen: list[float] = []

    class Timed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(time.monotonic())

    handler = Timed()
    LOG.addHandler(handler)
    try:
        sink = Recorder()
        jp.map(list(range(2)), chatty, jobs=2, partitions=2, progress=sink,
               inline_fallback=False, start_method="fork")
    finally:
        LOG.removeHandler(handler)
    assert len(seen) == 2 and sink.closed_at is not None
    assert all(sink.closed_at - t > PAUSE / 2 for t in seen), (seen, sink.closed_at)


def test_a_record_with_an_exception_keeps_its_traceback_text(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)

    def failing_lookup(x: int) -> int:
        try:
            {}[x]
        except KeyError:
            LOG.exception("lookup of %s failed", x)
        return x

    jp.map([7, 8], failing_lookup, jobs=2, partitions=2, progress=Recorder(),
           inline_fallback=False)
    records = sorted((r for r in caplog.records if r.name == LOG.name),
                     key=lambda r: r.getMessage())
    assert [r.getMessage() for r in records] == ["lookup of 7 failed", "lookup of 8 failed"]
    for record, key in zip(records, (7, 8), strict=True):
        assert record.levelno == logging.ERROR
        assert record.exc_text.startswith("Traceback") and f"KeyError: {key}" in record.exc_text
        assert f"KeyError: {key}" in logging.Formatter().format(record)


def test_a_failing_partition_streams_what_it_printed_before_it_failed():
    sink = Recorder()

    def fails_late(x: int) -> int:
        print("working on", x)
        time.sleep(0.6)
        if x == 1:
            raise ValueError(f"bad item {x}")
        return x

    with pytest.raises(ValueError, match="bad item 1"):
        jp.map([0, 1], fails_late, jobs=2, partitions=2, progress=sink, inline_fallback=False)
    assert "working on 1" in sink.text_of(1)


def test_a_terminal_shows_lines_as_they_come_and_not_again(capsys):
    bars = io.StringIO()
    sink = TextProgress(plain=False, file=bars)
    jp.map(list(range(2)), chatty, jobs=2, partitions=2, progress=sink, inline_fallback=False)
    out = capsys.readouterr().out
    lines = out.splitlines()
    for i in range(2):
        assert lines.count(f"[p{i} w{i}] start {i}") + lines.count(f"[p{i} w{1 - i}] start {i}") \
            == 1, out
    assert "[partition" not in out, out  # shown live: not printed again
    assert sink.keeps_output


def test_a_line_left_open_is_shown_when_the_run_ends(capsys):
    sink = TextProgress(plain=False, file=io.StringIO())

    def no_newline(x: int) -> int:
        print("progress: 50%", end="")
        return x

    jp.map([1], no_newline, jobs=2, partitions=1, progress=sink, inline_fallback=False,
           backend="threads")
    out = capsys.readouterr().out
    assert out.count("progress: 50%") == 1, out
    assert "] progress: 50%" in out


def test_plain_text_logs_print_the_output_once_at_the_end(capsys):
    sink = TextProgress(plain=True, file=io.StringIO())
    jp.map(list(range(2)), chatty, jobs=2, partitions=2, progress=sink, inline_fallback=False)
    out = capsys.readouterr().out
    assert not sink.keeps_output
    assert out.count("[partition 0, worker") == 1 and out.count("start 0") == 1, out
    assert "[p0 " not in out


def test_live_log_keeps_a_bounded_tail_of_the_latest_partitions():
    log = LiveLog(partitions=2, lines=3, chars=1000)
    assert not log
    log.add(0, "0", "a\nb\n")
    log.add(1, "1", "x\n")
    log.add(0, "0", "c\nd\ne\n")
    assert log.entries() == [{"partition": 0, "worker": "0", "text": "c\nd\ne\n"},
                             {"partition": 1, "worker": "1", "text": "x\n"}]
    version = log.version
    log.add(2, "1", "y")  # partition 1 printed longest ago: it goes
    assert [e["partition"] for e in log.entries()] == [0, 2]
    assert log.version > version
    log.add(3, "0", "z" * 5000)
    assert len(log.entries()[-1]["text"]) == 1000
    log.clear()
    assert log.entries() == [] and not log


def test_levels_follow_the_kernel_and_keep_the_clusters_own():
    levels = {"": logging.WARNING, "<disable>": 0, "app": logging.DEBUG,
              "distributed.worker": logging.ERROR}
    before = logging.getLogger("distributed.worker").level
    try:
        worker_output.apply_levels(levels, keep=("distributed",))
        assert logging.getLogger("app").level == logging.DEBUG
        assert logging.getLogger("distributed.worker").level == before
    finally:
        logging.getLogger("app").setLevel(logging.NOTSET)
        worker_output._applied = {}
    snapshot = worker_output.kernel_levels()
    assert snapshot[""] == logging.getLogger().level


def test_a_record_travels_as_plain_data():
    record = logging.LogRecord("pkg.mod", logging.WARNING, "/x/y.py", 12, "n=%d %s",
                               (3, "ok"), None, func="work")
    data = worker_output.LogRecordData.of(record)
    again = data.record(jp_partition=5, jp_worker="w1")
    assert again.getMessage() == "n=3 ok" and again.name == "pkg.mod"
    assert (again.levelno, again.lineno, again.funcName) == (logging.WARNING, 12, "work")
    assert again.jp_partition == 5 and again.jp_worker == "w1"
    bad = logging.LogRecord("m", logging.INFO, "f", 1, "%d", ("not a number",), None)
    assert "could not be formatted" in worker_output.LogRecordData.of(bad).message


def test_the_widget_views_show_the_tail_while_running_and_drop_it_at_the_end(monkeypatch):
    pytest.importorskip("ipywidgets")
    import comm

    from jupyter_par.widgets.progress_view import NotebookProgress

    class QuietComm(comm.base_comm.BaseComm):
        def publish_msg(self, *args: Any, **kwargs: Any) -> None:
            pass

    monkeypatch.setattr(comm, "create_comm", QuietComm)
    view = NotebookProgress(frontend="auto")
    states: list[tuple[list[Any], str]] = []

    class Watch:
        def update(self, progress: Any) -> None:
            view.update(progress)
            states.append((list(view.lab.log), view.html.value))

        def close(self, progress: Any) -> None:
            view.close(progress)

        def output(self, partition: int, worker: str, text: str) -> None:
            view.output(partition, worker, text)

    frame = pd.DataFrame({"x": range(4)})

    def slow_print(part: pd.DataFrame) -> int:
        print("part with", list(part["x"]))
        time.sleep(0.8)
        return int(part["x"].sum())

    jp.map_partitions(frame, slow_print, jobs=2, partitions=2, progress=Watch(),
                      inline_fallback=False)
    live = [log for log, _ in states if log]
    assert live, states
    assert {e["partition"] for e in live[-1]} == {0, 1}
    assert any("part with [0, 1]" in e["text"] for e in live[-1])
    assert any("part with [2, 3]" in html and "jp-par-log" in html for _, html in states)
    # At the end the tail is gone: the output is printed under the cell instead.
    assert view.lab.log == [] and "jp-par-log" not in view.html.value
