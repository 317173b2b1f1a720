"""Progress views and the panel without a browser: their real trait state, a recording comm.

Every widget here gets a comm that keeps what it would have sent to the front end, so
the tests read exactly the state a browser would draw, and count the messages.
"""

from __future__ import annotations

import html
import os
import re
import time
from typing import Any

import comm
import pandas as pd
import psutil
import pytest

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.errors import CancelledError, UsageError
from jupyter_par.progress.chooser import choose_frontend
from jupyter_par.progress.records import RunProgress
from jupyter_par.run.options import resolve
from jupyter_par.widgets.panel import Panel, frames_in, functions_in
from jupyter_par.widgets.progress_view import MIME_TYPE, NotebookProgress


class RecordingComm(comm.DummyComm):
    """A comm that keeps what the widget would send to the front end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, *args: Any, **kwargs: Any) -> None:
        self.sent.append((msg_type, data or {}))


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", RecordingComm)


@pytest.fixture(autouse=True)
def default_frontend():
    yield
    jp.set_defaults(frontend=None)


@pytest.fixture(scope="module", autouse=True)
def stop_workers_at_the_end():
    yield
    jp.shutdown()


class Counting:
    """Wraps a view to count the updates the engine gave it."""

    def __init__(self, view: NotebookProgress) -> None:
        self.view, self.calls = view, 0

    def update(self, progress: Any) -> None:
        self.calls += 1
        self.view.update(progress)

    def close(self, progress: Any) -> None:
        self.calls += 1
        self.view.close(progress)


def updates_sent(widget: Any) -> list[dict[str, Any]]:
    return [data["state"] for kind, data in widget.comm.sent
            if kind == "comm_msg" and data.get("method") == "update"]


def html_rows(value: str) -> list[dict[str, str]]:
    """The per-worker ``data-`` attributes of the ipywidgets table."""
    return [dict(re.findall(r'data-(\w+)="([^"]*)"', row))
            for row in re.findall(r'<tr class="jp-par-worker[^>]*>', value)]


def slow_double(row):
    time.sleep(0.0005)
    return row["a"] * 2


def fails_at_1500(row):
    if row["a"] == 1500:
        msg = "row 1500 is bad"
        raise ValueError(msg)
    return row["a"]


def which_pid(row):
    time.sleep(0.002)
    return os.getpid()


def nap(row):
    time.sleep(0.002)
    return row["a"]


def group_total(group):
    time.sleep(0.002)
    return group["a"].sum()


def very_slow(row):
    time.sleep(0.02)
    return row["a"]


FRAME = pd.DataFrame({"a": range(2000), "g": [i % 7 for i in range(2000)]})


# -- the progress view -------------------------------------------------------------------
def test_lab_view_workers_reach_their_totals_in_one_message_per_tick():
    counting = Counting(NotebookProgress(frontend="lab"))
    result = jp.apply(FRAME, slow_double, axis=1, jobs=2, progress=counting)
    pd.testing.assert_series_equal(result, FRAME.apply(slow_double, axis=1))
    widget = counting.view.lab
    assert counting.view.widget is widget and counting.view.html is None
    assert len(widget.workers) == 2
    assert all(w["done"] == w["assigned"] > 0 and w["state"] == "done" and w["fraction"] == 1.0
               for w in widget.workers)
    assert sum(w["done"] for w in widget.workers) == len(FRAME)
    assert widget.overall["percent"] == 100.0 and widget.overall["state"] == "done"
    assert widget.overall["partitions_done"] == widget.overall["partitions_total"]
    sent = updates_sent(widget)
    assert 2 <= len(sent) <= counting.calls
    assert any("workers" in s and "overall" in s for s in sent)


def test_ipywidgets_view_is_one_html_value_per_tick():
    counting = Counting(NotebookProgress(frontend="ipywidgets"))
    jp.apply(FRAME, slow_double, axis=1, jobs=2, progress=counting)
    widget = counting.view.widget
    rows = html_rows(widget.value)
    assert len(rows) == 2
    assert all(r["done"] == r["assigned"] and r["state"] == "done" for r in rows)
    assert sum(int(r["done"]) for r in rows) == len(FRAME)
    assert 'data-state="done"' in widget.value and "100%" in widget.value
    sent = updates_sent(widget)
    assert 2 <= len(sent) <= counting.calls
    assert all(set(s) == {"value"} for s in sent)


@pytest.mark.parametrize("kind", ["lab", "ipywidgets"])
def test_a_failed_worker_shows_danger_with_its_error(kind):
    view = NotebookProgress(frontend=kind)
    with pytest.raises(ValueError, match="row 1500 is bad"):
        jp.apply(FRAME, fails_at_1500, axis=1, jobs=2, progress=view)
    if kind == "lab":
        failed = [w for w in view.lab.workers if w["state"] == "failed"]
        assert len(failed) == 1 and "row 1500 is bad" in failed[0]["error"]
        assert view.lab.overall["state"] == "failed"
        assert view.lab.overall["status"].startswith("failed at ")
        assert "row 1500 is bad" in view.lab.overall["message"]
    else:
        value = view.html.value
        # the failed worker's row says "failed" in words, and its error is the next row
        danger = re.findall(r'<tr class="[^"]*jp-par-danger[^"]*".*?</tr>\s*<tr class="jp-par-error'
                            r'.*?</tr>', value)
        assert len(danger) == 1 and "row 1500 is bad" in danger[0]
        assert ">failed</td>" in danger[0]
        assert 'class="jp-par-progress" data-state="failed"' in value
        assert ">failed at " in value


def test_jp_progress_inside_user_code_reaches_the_view():
    seen: list[int] = []
    view = NotebookProgress(frontend="lab")

    class Spy:
        def update(self, p):
            view.update(p)
            seen.extend(w["done"] for w in view.lab.workers if w["state"] == "busy")

        def close(self, p):
            view.close(p)

    def steps(part):
        for _ in range(len(part)):
            time.sleep(0.01)
            jp.progress(1)
        return part

    jp.map_partitions(FRAME.iloc[:60], steps, jobs=2, partitions=2, progress=Spy())
    assert any(0 < n < 30 for n in seen)
    assert [w["done"] for w in view.lab.workers] == [30, 30]


# -- the front-end choice ------------------------------------------------------------------
def test_frontend_choice(monkeypatch: pytest.MonkeyPatch):
    for name in ("VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI"):
        monkeypatch.delenv(name, raising=False)
    # Nothing installed on disk decides: the front end picks from the display (see below).
    assert choose_frontend("widgets", resolve().frontend) == "auto"
    monkeypatch.setenv("VSCODE_PID", "1234")
    assert choose_frontend("widgets", resolve().frontend) == "ipywidgets"
    jp.set_defaults(frontend="lab")
    assert choose_frontend("widgets", resolve().frontend) == "lab"
    jp.set_defaults(frontend="text")
    assert choose_frontend("widgets", resolve().frontend) == "text"
    with pytest.raises(UsageError, match="frontend must be one of"):
        jp.set_defaults(frontend="browser")


def test_auto_offers_both_views_richest_first_and_the_front_end_picks():
    view = NotebookProgress("score", frontend="auto")
    bundle = view._repr_mimebundle_()
    assert list(bundle) == ["text/plain", MIME_TYPE, "application/vnd.jupyter.widget-view+json"]
    assert bundle[MIME_TYPE]["model_id"] == view.lab.model_id
    # the standard view is the HTML fallback: any widget front end draws it
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == view.html.model_id
    # the lab widget's model is the standard one: a front end without the extension makes
    # it without error, and never draws it
    assert view.lab.get_state()["_model_module"] == "@jupyter-widgets/base"
    # the panel embeds an Output that holds the same display
    assert view.widget.outputs == (
        {"output_type": "display_data", "data": bundle, "metadata": {}},)
    jp.apply(FRAME, slow_double, axis=1, jobs=2, progress=view)
    assert view.lab.overall["state"] == "done" and 'data-state="done"' in view.html.value


def test_the_view_says_where_the_time_went_once_the_run_is_done():
    view = NotebookProgress("score", frontend="auto")
    sent = view.lab.comm.sent
    jp.apply(FRAME, slow_double, axis=1, jobs=2, backend="processes", progress=view,
             inline_fallback=False)
    line = jp.last_run().explain
    assert re.match(r"compute \d+% · shipping <?\d+% · kernel <?\d+% · idle \d+% → ", line)
    # the lab view: its own trait, sent to the front end after the final state
    assert view.lab.explain == line == view.explained
    updates = [m["state"] for kind, m in sent if kind == "comm_msg" and "state" in m]
    assert updates[-1] == {"explain": line}
    assert "overall" in updates[-2] and updates[-2]["overall"]["state"] == "done"
    # the ipywidgets fallback: a line under the run's table
    assert view.html.value.endswith(f'<div class="jp-par-explain" style="font-size:90%;'
                                    f'color:#616161">{html.escape(line)}</div>')
    # the same view reused (the panel's): the line goes as the next run starts
    view.update(view.last)
    assert view.lab.explain == "" and "jp-par-explain" not in view.html.value


def test_the_cancel_route_follows_who_holds_the_cell():
    import threading

    view = NotebookProgress(frontend="auto")
    # a run in the kernel's main thread holds the cell: only an interrupt reaches it
    assert view.cancel_route() == "interrupt"
    routes: list[str] = []
    thread = threading.Thread(target=lambda: routes.append(view.cancel_route()))
    thread.start()
    thread.join()
    view.on_cancel(lambda: None)  # the panel listens for the message
    thread = threading.Thread(target=lambda: routes.append(view.cancel_route()))
    thread.start()
    thread.join()
    assert routes == ["none", "message"]


def test_the_fallback_shows_64_workers_as_cells_with_counts_states_and_errors():
    from jupyter_par.progress.records import WorkerProgress
    from jupyter_par.widgets.progress_html import render_html

    states = ["busy", "idle", "done", "failed"]
    workers = tuple(
        WorkerProgress(str(i), states[i % 4], 100 * i, 200 * i, 50.0, fraction=0.5,
                       error="ValueError: bad row" if i % 4 == 3 else None)
        for i in range(64))
    value = render_html(RunProgress(workers=workers, rows_done=5000, rows_total=10000,
                                    partitions_done=10, partitions_total=64, elapsed=3.0))
    cells = re.findall(r'<div class="jp-par-worker jp-par-(\w+)".*?</div></div>', value)
    assert len(cells) == 64 and "<tr" not in value
    assert "workers: 16 busy · 16 idle · 16 done · 16 failed" in value
    assert value.count(": ValueError: bad row</div>") == 16  # every error line shown
    assert ">6,300</span>" in value  # worker 63's rows
    assert all(f">{s}</span>" in value for s in states)


def test_the_widget_factory_follows_the_choice():
    from jupyter_par.progress.chooser import sinks_for

    jp.set_defaults(frontend="ipywidgets")  # a run reads it from its resolved options
    (sink,) = sinks_for("widgets", "label", resolve().frontend)
    assert isinstance(sink, NotebookProgress) and sink.frontend == "ipywidgets"
    jp.set_defaults(frontend="text")
    assert type(sinks_for("widgets", "label", resolve().frontend)[0]).__name__ == "TextProgress"
    with pytest.raises(UsageError, match=r"^progress must be True, False, .* got 'bars'$"):
        jp.map([1], abs, progress="bars")


# -- the panel ----------------------------------------------------------------------------------
def make_panel(**names: Any) -> tuple[Panel, dict[str, Any]]:
    namespace = {"df": FRAME, "not_a_frame": [1, 2], "_hidden": FRAME, "pd": pd, **names}
    return Panel(namespace, frontend="lab"), namespace


def test_pickers_list_the_notebook_frames_and_functions():
    namespace = {"df": FRAME, "small": FRAME.head(), "_hidden": FRAME, "nap": nap,
                 "lam": lambda row: row, "pd": pd, "concat": pd.concat, "n": 3}
    assert frames_in(namespace) == ["df", "small"]
    assert functions_in(namespace) == ["lam", "nap"]
    panel = Panel(namespace, frontend="ipywidgets")
    assert panel.frame_picker.options == ("df", "small")
    assert panel.by_picker.disabled
    panel.mode_picker.value = "groups"
    assert not panel.by_picker.disabled and panel.by_picker.options == ("a", "g")
    panel.result_name.value = "not a name"
    assert panel.run() is None and "Python name" in panel.summary.value


def test_moving_the_slider_changes_the_next_runs_workers():
    panel, namespace = make_panel(which_pid=which_pid)
    panel.func_picker.value = "which_pid"
    frame = FRAME.iloc[:300]
    namespace["df"] = frame
    for count in (3, 2):
        panel.jobs_slider.value = count
        panel.run()
        panel.wait(60)
        pids = backends.warm_backends()["processes"].pids()
        assert len(pids) == count and all(psutil.pid_exists(p) for p in pids)
        used = set(namespace["result"])
        assert used <= set(pids) and len(used) >= 2
        assert len(panel.progress.widget.workers) == count
        assert all(w["done"] == w["assigned"] for w in panel.progress.widget.workers)
        assert f"with {count} worker(s) (processes)" in panel.summary.value


def test_groups_result_matches_pandas_and_speedup_is_reported():
    panel, namespace = make_panel(group_total=group_total)
    panel.func_picker.value = "group_total"
    panel.mode_picker.value = "groups"
    panel.by_picker.value = "g"
    namespace["df"] = FRAME.iloc[:200]
    panel.jobs_slider.value = 1
    panel.run()
    panel.wait(60)
    panel.jobs_slider.value = 2
    panel.run()
    result = panel.wait(60)
    pd.testing.assert_series_equal(result, FRAME.iloc[:200].groupby("g").apply(group_total))
    assert namespace["result"] is result
    assert "than the last 1-worker run" in panel.summary_text  # faster or slower: not timed


def test_cancel_stops_the_workers_and_changes_no_variable():
    panel, namespace = make_panel(very_slow=very_slow)
    namespace["result"] = "before"
    panel.func_picker.value = "very_slow"
    panel.jobs_slider.value = 2
    job = panel.run()
    deadline = time.monotonic() + 30
    while not any(w["state"] == "busy" and w["done"] > 0 for w in panel.progress.widget.workers):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    busy = backends.warm_backends()["processes"].pids()
    panel.cancel_button.click()
    assert job.wait(10), "the run did not stop after Cancel"
    assert isinstance(job.error, CancelledError)
    assert namespace["result"] == "before"
    assert panel.progress.widget.overall["state"] == "cancelled"
    assert "cancelled" in panel.summary.value
    gone = [p for p in busy if not psutil.pid_exists(p)
            or psutil.Process(p).status() == psutil.STATUS_ZOMBIE]
    assert gone == busy
    assert not panel.run_button.disabled and panel.cancel_button.disabled


def long_nap(row):
    time.sleep(0.01)
    return row["a"]


def test_tune_recommends_a_count_and_moves_the_slider():
    panel, namespace = make_panel(nap=long_nap)
    panel.func_picker.value = "nap"
    panel.jobs_slider.value = 1
    # Rows of 10 ms asleep: a worker's fixed costs per row, slower on a loaded machine,
    # stay a few percent of the row, so two workers measure close to 2x under any load.
    panel.tune(seconds=2.0, counts=[1, 2])
    result = panel.wait(60)
    assert result is panel.last_tune
    assert result.counts == (1, 2) and result.speedups[0] == 1.0
    assert 50 <= result.rows <= len(FRAME)
    # sleeping rows leave the CPUs free, so two workers are close to twice as fast
    assert result.recommended == 2
    assert panel.jobs_slider.value == 2
    assert len(panel.tune_output.outputs) == 1
    assert "recommended 2 worker(s)" in panel.summary.value
    # the widest run's breakdown: what more workers would give, in the summary too
    assert result.breakdown is not None and result.breakdown["workers"] == 2
    assert 0 <= result.breakdown["serial_share"] <= 1
    assert result.note and result.note in panel.summary_text
    assert "result" not in namespace


def _tune_parts(jobs: int, wall: float, compute: float, kernel: float) -> dict[str, float]:
    from jupyter_par.progress import timings
    from jupyter_par.run import engine

    run = engine.RunOutcome([], jobs=jobs, timings=engine.RunTimings(
        to_first_dispatch=kernel, kernel_between=0.0, kernel_dispatch=0.0, tail=0.0,
        wall=wall, worker_compute=compute, kernel_cpu=0.0))
    return timings.breakdown(run)


def test_tune_recommends_the_fewest_workers_near_the_best_and_projects_beyond():
    from jupyter_par.widgets.tune import TuneResult, projected_speedups, recommend

    # Still scaling at the widest count, 1% kernel: the projection says more would pay.
    parts = _tune_parts(2, wall=1.01, compute=2.0, kernel=0.01)
    rec = recommend([1, 2], [2.0, 1.01], parts)
    assert rec.count == 2
    assert rec.note.startswith("the kernel's share (0.5%) and the idle time at 2 workers "
                               "predict about 3.") and "at 16" in rec.note and "at 64" in rec.note
    assert rec.note.endswith("more workers than the 2 measured would still pay")
    # The projection passes through the measured point and never beats Amdahl from it.
    assert projected_speedups(2.0, parts, [2])[0] == pytest.approx(2.0 / 1.01)
    four, sixteen = projected_speedups(2.0, parts, [4, 16])
    assert 3.0 < four < 4.0 and sixteen < 16 * 2.0 / 2.01
    # 4 workers within 10% of 8's best: 4; the note says more gain little.
    flat = _tune_parts(8, wall=0.5, compute=3.2, kernel=0.1)
    rec = recommend([1, 2, 4, 8], [4.0, 2.1, 1.15, 1.1], flat)
    assert rec.count == 4 and rec.note.endswith("beyond 4, more workers gain little")
    # Half the work in the kernel: at the widest count, but the kernel caps what follows.
    capped = _tune_parts(2, wall=1.5, compute=2.0, kernel=1.0)
    rec = recommend([1, 2], [2.0, 1.5], capped)
    assert rec.count == 2 and rec.note.endswith("beyond 2, more workers gain little")
    assert all(x < 2.0 / 1.5 * 1.5 for x in projected_speedups(2.0, capped, [4, 16, 64]))
    # No gain: one worker, and why; a short or missing breakdown says nothing beyond.
    assert recommend([1, 2, 4], [1.0, 0.98, 1.02]).count == 1
    assert "overheads outweigh" in recommend([1, 2], [1.0, 0.95], parts).note
    assert recommend([1, 2], [0.3, 0.16], _tune_parts(2, 0.1, 0.2, 0.0)) == (
        recommend([1, 2], [0.3, 0.16]))
    assert recommend([1, 2], [0.3, 0.16]).note == ""
    result = TuneResult((1, 2), (2.0, 1.01), 500, breakdown=parts)
    assert result.recommended == 2 and result.note == rec_note(parts)
    assert result.table().endswith(result.note)


def rec_note(parts: dict[str, float]) -> str:
    from jupyter_par.widgets.tune import recommend

    return recommend([1, 2], [2.0, 1.01], parts).note


# -- a real kernel: the state a saved notebook keeps ---------------------------------------
NOTEBOOK_CELLS = [
    "import time\nimport pandas as pd\nimport jupyter_par as jp\n"
    "df = pd.DataFrame({'a': range(400)})\n"
    "def f(row):\n    time.sleep(0.001)\n    return row['a'] * 2",
    "jp.set_defaults(frontend='lab')\nr1 = jp.apply(df, f, axis=1, jobs=2)",
    "jp.set_defaults(frontend='ipywidgets')\nr2 = jp.apply(df, f, axis=1, jobs=2)",
    "panel = jp.Panel()\npanel.func_picker.value = 'f'\npanel.jobs_slider.value = 2\n"
    "panel.run()\npanel.wait(60)\npanel",
    "assert r1.equals(df.apply(f, axis=1)) and r2.equals(r1) and result.equals(r1)\n"
    "jp.shutdown()",
]


@pytest.mark.kernel
def test_saved_notebook_widget_state_shows_every_worker_at_100_percent():
    from notebook_runner import run_cells

    nb = run_cells(NOTEBOOK_CELLS, timeout=120, store_widget_state=True)
    models = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    lab = [m["state"] for m in models.values()
           if m["state"].get("_view_name") == "ProgressView"]
    tables = [m["state"]["value"] for m in models.values() if m["model_name"] == "HTMLModel"
              and "jp-par-progress" in m["state"].get("value", "")]
    sliders = [m["state"] for m in models.values() if m["model_name"] == "IntSliderModel"]
    assert len(lab) == 1 and len(tables) == 2
    (state,) = lab
    assert state["overall"]["percent"] == 100.0 and state["overall"]["state"] == "done"
    assert len(state["workers"]) == 2
    assert all(w["done"] == w["assigned"] > 0 for w in state["workers"])
    for value in tables:
        rows = html_rows(value)
        assert len(rows) == 2 and 'data-state="done"' in value and "100%" in value
        assert all(r["done"] == r["assigned"] != "0" for r in rows)
        assert sum(int(r["done"]) for r in rows) == 400
    assert [s["value"] for s in sliders if s.get("description") == "workers"] == [2]


@pytest.mark.kernel
@pytest.mark.slow
def test_demo_notebook_runs_end_to_end():
    from notebook_runner import REPO, notebook_text, run_notebook

    nb = run_notebook(REPO / "demo_notebooks" / "03_progress_and_panel.ipynb", timeout=120)
    text = notebook_text(nb)
    assert "caught: trip of" in text and "the 60 km tariff" in text
    assert "than the last 1-worker run" in text and "stored as result (20,000 rows)" in text
    assert "recommended:" in text and "workers  seconds  speedup  ideal" in text
    models = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    sliders = [m["state"]["value"] for m in models.values()
               if m["model_name"] == "IntSliderModel"
               and m["state"].get("description") == "workers"]
    recommended = re.search(r"recommended: (\d+) - slider now at (\d+)", text)
    assert recommended and recommended.group(1) == recommended.group(2)
    assert sliders == [int(recommended.group(1))]
