"""Real runs of the engine, watched in a real JupyterLab.

`test_lab_progress.py` drives the widget with a scripted run; here the demo notebook
``demo_notebooks/06_lab_progress.ipynb`` calls ``jp.apply`` with 8 worker processes in the
kernel, so everything between the engine and the pixels is the shipped code: the progress
tracker, the widget sink, the comm, the lab extension's view and its status-bar item.
The second test checks the other side of the front-end choice: where the extension is not
expected to be loaded (a VS Code kernel, or ``frontend="ipywidgets"``), the same runs are
drawn with standard ipywidgets.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from lab_helpers import (
    OVERALL,
    RUN_TIMEOUT_MS,
    cell,
    start_cell,
    stderr_text,
    wait_cell_done,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO = Path(__file__).resolve().parents[2] / "demo_notebooks" / "06_lab_progress.ipynb"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
# Positions of the demo's cells (markdown cells count): setup, the 8-worker jp.apply run, the
# same run through %%parallel and the cell that checks its write-back, the failing run.
SETUP_CELL, RUN_CELL, MAGIC_CELL, CHECK_CELL, FAIL_CELL = 1, 3, 5, 6, 8
ROWS, PARTITIONS, JOBS = 320, 16, 8
FAILED_PARTITION, ERROR_TEXT = 12, "ValueError: order 250 has no price list"

WORKERS = ".jp-par-worker"
STATUS = ".jp-par-statusbar"

# Each lab-view worker row of cell `index`: the share of its track that the bar fills (in
# pixels), its count text and state, all read in one frame so they agree with each other.
LAB_BARS_JS = """index => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
    const overall = cell.querySelector('.jp-par-overall');
    return {
        percent: Number(overall.dataset.percent),
        state: overall.dataset.state,
        workers: [...cell.querySelectorAll('.jp-par-worker')].map(row => ({
            id: row.dataset.workerId,
            state: row.dataset.state,
            stateText: row.querySelector('.jp-par-worker-state').textContent,
            fraction: row.querySelector('.jp-par-worker-bar').getBoundingClientRect().width
                / row.querySelector('.jp-par-worker-track').clientWidth,
            sent: Number(row.dataset.fraction),
            done: Number(row.dataset.done),
            count: row.querySelector('.jp-par-worker-count').textContent,
        })),
    };
}"""

# The bars of cell `index` at every animation frame for 2.5 s (or until the run ends).
SAMPLE_FRAMES_JS = (
    "index => new Promise(resolve => { const frames = []; const start = performance.now();"
    " const tick = now => { const bars = (" + LAB_BARS_JS + ")(index); frames.push(bars);"
    " if (now - start < 2500 && bars.state === 'running') requestAnimationFrame(tick);"
    " else resolve(frames); }; requestAnimationFrame(tick); })"
)

# Resolves with the bars of cell `index` once the run is well under way and still going,
# with at least one worker part-way through its rows.
MIDRUN_JS = (
    "index => { const bars = (" + LAB_BARS_JS + ")(index);"
    " return bars.state === 'running' && bars.percent >= 25 && bars.percent < 90"
    " && bars.workers.some(w => w.fraction > 0.02 && w.fraction < 0.98) ? bars : null; }"
)


def rows_shown(text: str) -> int:
    """``"1,040 rows"`` -> ``1040``."""
    return int(text.replace(",", "").split()[0])


def scroll_to_top(locator: Locator) -> None:
    """Put ``locator``'s element at the top of the notebook's viewport, for screenshots."""
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")




def test_eight_workers_of_a_real_run(
    open_notebook: Callable[[str, Path], Page], screenshot_path: Callable[[str], Path]
) -> None:
    page = open_notebook("engine.ipynb", DEMO)
    start_cell(page, SETUP_CELL)
    wait_cell_done(page, SETUP_CELL)
    assert stderr_text(page, SETUP_CELL) == ""

    # Mid-run: 8 rows, the status-bar item, bars filled as far as their counts say.
    start_cell(page, RUN_CELL)
    run = cell(page, RUN_CELL)
    run.locator(f"{OVERALL}[data-state=running]").wait_for(timeout=RUN_TIMEOUT_MS)
    status = page.locator(STATUS)
    status.wait_for(state="visible", timeout=10_000)
    assert re.fullmatch(rf"parallel \d+% · {JOBS} workers", status.inner_text().strip())
    bars: dict[str, Any] = page.wait_for_function(
        MIDRUN_JS, arg=RUN_CELL, timeout=RUN_TIMEOUT_MS
    ).json_value()
    scroll_to_top(run)
    page.screenshot(path=str(screenshot_path("engine-8-workers-midrun.png")))
    # The README's picture: this real run, mid-way (not a scripted one).
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGES / "lab-8-workers-midrun.png"))
    assert len(bars["workers"]) == JOBS, bars
    assert len({w["id"] for w in bars["workers"]}) == JOBS, bars
    for w in bars["workers"]:
        assert abs(w["fraction"] - w["sent"]) < 0.03, w
        assert w["stateText"] == w["state"] and rows_shown(w["count"]) == w["done"], w
    # Sampled over many frames, no bar ever moves backwards (partitions are handed out
    # all the while: 16 partitions on 8 workers).
    frames = page.evaluate(SAMPLE_FRAMES_JS, RUN_CELL)
    assert len(frames) > 20, frames
    for before, after in itertools.pairwise(frames):
        assert after["percent"] >= before["percent"], (before, after)
        for b, a in zip(before["workers"], after["workers"], strict=True):
            assert a["fraction"] >= b["fraction"] - 0.002, (b, a)
            assert a["done"] >= b["done"], (b, a)

    # End: every worker done with every row it was given, the rows add up, the item is gone.
    run.locator(f"{OVERALL}[data-state=done]").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_cell_done(page, RUN_CELL)
    bars = page.evaluate(LAB_BARS_JS, RUN_CELL)
    assert len(bars["workers"]) == JOBS, bars
    assert all(w["state"] == "done" for w in bars["workers"]), bars
    assert all(w["fraction"] >= 0.99 for w in bars["workers"]), bars
    assert all(rows_shown(w["count"]) == w["done"] > 0 for w in bars["workers"]), bars
    assert sum(w["done"] for w in bars["workers"]) == ROWS, bars
    overall_text = run.locator(".jp-par-overall-text").inner_text()
    assert overall_text.startswith("100%"), overall_text
    assert f"{ROWS} / {ROWS} rows" in overall_text, overall_text
    assert f"{PARTITIONS} / {PARTITIONS} partitions" in overall_text, overall_text
    # Under the bars, where the time went and what that predicts at other counts.
    explain = run.locator(".jp-par-explain")
    explain.wait_for(state="visible", timeout=10_000)
    assert re.fullmatch(
        rf"compute \d+% · shipping <?\d+% · kernel <?\d+% · idle \d+% → [\d.]+x with {JOBS} "
        r"workers; about [\d.]+x at 16, [\d.]+x at 64",
        explain.inner_text().strip(),
    ), explain.inner_text()
    status.wait_for(state="hidden", timeout=10_000)
    # The cell compared the parallel result with the serial one; its summary counts all rows.
    assert stderr_text(page, RUN_CELL) == ""
    assert re.search(rf"count\s+{ROWS}\.0", run.locator(".jp-OutputArea").inner_text())
    scroll_to_top(run)
    page.screenshot(path=str(screenshot_path("engine-8-workers-done.png")))

    # %%parallel draws the same view, and its result was written back.
    start_cell(page, MAGIC_CELL)
    magic = cell(page, MAGIC_CELL)
    magic.locator(f"{OVERALL}[data-state=done]").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_cell_done(page, MAGIC_CELL)
    bars = page.evaluate(LAB_BARS_JS, MAGIC_CELL)
    assert len(bars["workers"]) == JOBS, bars
    assert all(w["state"] == "done" and w["fraction"] >= 0.99 for w in bars["workers"]), bars
    assert sum(w["done"] for w in bars["workers"]) == ROWS, bars
    assert "%%parallel orders" in magic.locator(".jp-par-progress").inner_text()
    status.wait_for(state="hidden", timeout=10_000)
    start_cell(page, CHECK_CELL)
    wait_cell_done(page, CHECK_CELL)
    assert stderr_text(page, MAGIC_CELL) == stderr_text(page, CHECK_CELL) == ""

    # A partition that raises: its worker stays failed, the tooltip names partition and error.
    start_cell(page, FAIL_CELL)
    fail = cell(page, FAIL_CELL)
    fail.locator(f"{OVERALL}[data-state=failed]").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_cell_done(page, FAIL_CELL)
    failed = fail.locator(f"{WORKERS}[data-state=failed]")
    assert failed.count() == 1
    title = failed.get_attribute("title") or ""
    assert f"Error: {ERROR_TEXT}" in title, title
    assert f"Partition {FAILED_PARTITION}" in title, title
    assert failed.locator(".jp-par-worker-state").inner_text() == "failed"
    assert ERROR_TEXT in fail.locator(".jp-par-errors").inner_text()
    assert fail.locator(".jp-par-message").inner_text().startswith(ERROR_TEXT)
    assert fail.locator(WORKERS).count() == JOBS
    assert ERROR_TEXT in stderr_text(page, FAIL_CELL)
    status.wait_for(state="hidden", timeout=10_000)
    scroll_to_top(fail)
    page.screenshot(path=str(screenshot_path("engine-failed-worker.png")))


# Three runs of 40 rows on 2 workers: as a VS Code kernel (its environment variable), with
# the session option, and as a control with neither, where the lab view must come back.
FALLBACK_SETUP = """
import os, time
import pandas as pd
import jupyter_par as jp

frame = pd.DataFrame({"x": range(40)})

def slow_double(row):
    time.sleep(0.02)
    return row["x"] * 2

def run():
    result = jp.apply(frame, slow_double, axis=1, jobs=2, partitions=4)
    assert result.equals(frame["x"] * 2)
"""
FALLBACK_CELLS = [
    FALLBACK_SETUP,
    'os.environ["VSCODE_PID"] = "4242"  # set in every kernel VS Code starts\nrun()',
    'del os.environ["VSCODE_PID"]\njp.set_defaults(frontend="ipywidgets")\nrun()',
    "jp.set_defaults(frontend=None)\nrun()",
]

# Each worker row of the ipywidgets table in cell `index`: its numbers, the share of its
# bar's track that the bar fills, and whether its cells line up, all measured in pixels.
HTML_BARS_JS = """index => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
    return [...cell.querySelectorAll('.widget-html .jp-par-worker')].map(row => {
        const track = row.querySelector('td:nth-child(3) > div');
        const tops = [...row.children].map(td => td.getBoundingClientRect().top);
        return {
            // How far apart the row's cells sit vertically: 0 when they form one line.
            spread: Math.max(...tops) - Math.min(...tops),
            state: row.dataset.state,
            done: Number(row.dataset.done),
            assigned: Number(row.dataset.assigned),
            fraction: track.firstElementChild.getBoundingClientRect().width
                / track.getBoundingClientRect().width,
        };
    });
}"""


def test_standard_ipywidgets_without_the_extension(
    run_notebook: Callable[[str, Sequence[str]], Page], screenshot_path: Callable[[str], Path]
) -> None:
    page = run_notebook("fallback.ipynb", FALLBACK_CELLS)
    # Three runs, each starting its workers: minutes, not seconds, on a loaded CI machine.
    wait_cell_done(page, len(FALLBACK_CELLS) - 1, timeout=3 * RUN_TIMEOUT_MS)
    for index in range(len(FALLBACK_CELLS)):
        assert stderr_text(page, index) == "", index

    for index in (1, 2):
        out = cell(page, index)
        out.locator(".widget-html .jp-par-progress[data-state=done]").wait_for(timeout=10_000)
        assert out.locator(OVERALL).count() == 0, "the lab view drew a fallback run"
        rows = page.evaluate(HTML_BARS_JS, index)
        assert len(rows) == 2, rows
        assert all(r["state"] == "done" and r["done"] == r["assigned"] > 0 for r in rows), rows
        assert sum(r["done"] for r in rows) == 40, rows
        assert all(r["fraction"] >= 0.99 for r in rows), rows
        # Drawn as a table: each worker's cells on one line, whatever styles the page has.
        assert all(r["spread"] < 2 for r in rows), rows

    # Neither set: the display offers both views and the extension draws its own.
    control = cell(page, 3)
    control.locator(f"{OVERALL}[data-state=done]").wait_for(timeout=10_000)
    assert control.locator(".widget-html").count() == 0
    assert control.locator(WORKERS).count() == 2
    scroll_to_top(cell(page, 1))
    page.screenshot(path=str(screenshot_path("engine-ipywidgets-fallback.png")))
