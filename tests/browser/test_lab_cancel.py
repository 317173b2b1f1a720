"""Stopping real, busy ``%%parallel`` cells from the page, and the view without the extension.

A ``%%parallel`` run holds its cell: the kernel is busy in it and reads no comm message
until it ends. Cancel (the view's button, the palette command, the status-bar menu) must
still stop it within about a second, leave ``df`` as it was, and leave the view at the counts
it had reached. The last test disables the extension, as ``jupyter labextension disable``
does, and checks that the same run is drawn by standard ipywidgets, with no error box.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest
from lab_helpers import OVERALL, STDERR, cell
from lab_helpers import start_cell as run_cell
from lab_helpers import wait_cell_done as wait_done

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """
import time
import pandas as pd
%load_ext jupyter_par
df = pd.DataFrame({"x": range(1200)})

def slow(row):
    time.sleep(0.025)  # 1,200 rows on 2 workers: about 15 s
    return row["x"] * 2
"""
MAGIC = '%%parallel --jobs 2 df\ndf["y"] = df.apply(slow, axis=1)'
CHECK = "print(sorted(df.columns), len(df))"
CELLS = [SETUP, MAGIC, CHECK, MAGIC, MAGIC]
SETUP_CELL, FIRST_RUN, CHECK_CELL = 0, 1, 2

STATUS = ".jp-par-statusbar"

# The view's numbers in cell `index`: overall percent and rows, each worker's rows.
COUNTS_JS = """index => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
    const overall = cell.querySelector('.jp-par-overall');
    return {
        percent: Number(overall.dataset.percent),
        state: overall.dataset.state,
        text: cell.querySelector('.jp-par-overall-text').textContent,
        status: cell.querySelector('.jp-par-overall-state').textContent,
        workers: [...cell.querySelectorAll('.jp-par-worker')].map(
            row => ({done: Number(row.dataset.done), state: row.dataset.state})),
    };
}"""


def start_and_cancel(page: Page, index: int, cancel: Callable[[], None]) -> dict:
    """Run the ``%%parallel`` cell ``index``, cancel it about 3 s in; check it stopped."""
    run_cell(page, index)
    view = cell(page, index)
    view.locator(f"{OVERALL}[data-state=running]").wait_for(timeout=30_000)
    # The state Cancel needs: every worker has counted rows (not a guess of how long
    # that takes, which a loaded machine stretches).
    page.wait_for_function(
        "index => { const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];"
        " const rows = [...cell.querySelectorAll('.jp-par-worker')];"
        " return Number(cell.querySelector('.jp-par-overall').dataset.percent) > 0"
        " && rows.length > 0 && rows.every(r => Number(r.dataset.done) > 0); }",
        arg=index, timeout=60_000)
    before = page.evaluate(COUNTS_JS, index)
    assert before["state"] == "running" and 0 < before["percent"] < 60, before
    clicked = time.monotonic()
    cancel()
    wait_done(page, index, timeout=15_000)
    took = time.monotonic() - clicked
    # README: Cancel stops the cell the kernel is busy in; at once, with the margin load
    # 10 on 2 CPUs needs (the run had most of its work left).
    assert took < 10, f"the cell ended {took:.2f} s after Cancel"
    view.locator(f"{OVERALL}[data-state=cancelled]").wait_for(timeout=5_000)
    after = page.evaluate(COUNTS_JS, index)
    # The counts it had reached, not reset: at least those seen before the click.
    assert after["percent"] >= before["percent"], (before, after)
    assert re.fullmatch(r"cancelled at \d+%", after["status"]), after
    assert int(after["status"].split()[-1].rstrip("%")) == int(after["percent"])
    for b, a in zip(before["workers"], after["workers"], strict=True):
        assert a["done"] >= b["done"] > 0, (before, after)
    assert {w["state"] for w in after["workers"]} <= {"stopped", "idle"}, after
    assert any(w["state"] == "stopped" for w in after["workers"]), after
    # One short line, not a traceback through jupyter_par and multiprocess.
    error = view.locator(".jp-OutputArea-output.jp-RenderedText").last.inner_text().strip()
    assert error.startswith("KeyboardInterrupt: %%parallel") and "\n" not in error, error
    assert re.search(r"run cancelled at \d+% \([\d,]+ of 1,200 rows\); nothing was stored$",
                     error), error
    return after


def check_df_unchanged(page: Page) -> None:
    run_cell(page, CHECK_CELL)
    wait_done(page, CHECK_CELL)
    out = cell(page, CHECK_CELL).locator(".jp-OutputArea-output").last.inner_text().strip()
    assert out == "['x'] 1200", out


def cancel_by_button_then_palette(page: Page, screenshot: Path) -> None:
    """Cancel the first run with the view's own button (screenshot of the cancelled view),
    the second with the command palette's "Cancel Parallel Run"; nothing stored either time."""
    def click_button() -> None:
        cell(page, FIRST_RUN).locator(".jp-par-cancel").click()

    start_and_cancel(page, FIRST_RUN, click_button)
    cell(page, FIRST_RUN).scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot))
    check_df_unchanged(page)

    def palette() -> None:
        page.evaluate("() => window.jupyterapp.commands.execute('jupyter-par:cancel')")

    start_and_cancel(page, 3, palette)
    check_df_unchanged(page)


def test_cancel_stops_a_busy_parallel_cell_three_ways(
    open_notebook: Callable[[str, Sequence[str]], Page], screenshot_path: Callable[[str], Path]
) -> None:
    page = open_notebook("cancel.ipynb", CELLS)
    run_cell(page, SETUP_CELL)
    wait_done(page, SETUP_CELL)
    cancel_by_button_then_palette(page, screenshot_path("lab-cancelled-parallel-cell.png"))

    # 3. The status-bar item's menu, which lists the run.
    def status_menu() -> None:
        page.locator(STATUS).click()
        item = page.locator(".jp-par-runs-menu .lm-Menu-item", has_text="Cancel %%parallel")
        item.click()

    start_and_cancel(page, 4, status_menu)
    check_df_unchanged(page)
    assert page.locator(STDERR).count() == 0 or all(
        "Traceback" not in t for t in page.locator(STDERR).all_inner_texts())


FALLBACK = [
    "import time\nimport pandas as pd\nimport jupyter_par as jp\n"
    "frame = pd.DataFrame({'x': range(60)})\n"
    "def slow_double(row):\n    time.sleep(0.02)\n    return row['x'] * 2",
    "result = jp.apply(frame, slow_double, axis=1, jobs=2, partitions=6)\n"
    "assert result.equals(frame['x'] * 2)",
]


def test_without_the_extension_the_ipywidgets_view_renders(
    open_without_extension: Callable[[str, Sequence[str]], Page],
    screenshot_path: Callable[[str], Path],
) -> None:
    page = open_without_extension("disabled.ipynb", FALLBACK)
    # The extension is really off: no status-bar item, no palette command.
    assert not page.evaluate("() => window.jupyterapp.commands.hasCommand('jupyter-par:cancel')")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    try:
        wait_done(page, 1, timeout=180_000)  # imports and starts workers: slow on a busy CI
    finally:
        page.screenshot(path=str(screenshot_path("lab-extension-disabled.png")))
    out = cell(page, 1)
    out.locator(".widget-html .jp-par-progress[data-state=done]").wait_for(timeout=10_000)
    rows = out.locator(".widget-html .jp-par-worker")
    assert rows.count() == 2
    assert sum(int(r.get_attribute("data-done") or 0) for r in rows.all()) == 60
    assert out.locator(OVERALL).count() == 0
    text = out.inner_text()
    assert "Error displaying widget" not in text and "javascript error" not in text.lower()
    assert "No version of module" not in text
    assert page.locator(STDERR).count() == 0
    page.screenshot(path=str(screenshot_path("lab-extension-disabled.png")))


PANEL = [
    "import time\nimport pandas as pd\nimport jupyter_par as jp\n"
    "df = pd.DataFrame({'x': range(2000)})\n"
    "def slow(row):\n    time.sleep(0.02)\n    return row['x']\n"
    "panel = jp.Panel()\npanel.func_picker.value = 'slow'\npanel.jobs_slider.value = 2\npanel",
    "panel.run()",
    "print(panel.job.error.__class__.__name__, 'result' in globals())",
]


def test_a_panel_run_draws_the_lab_view_and_its_cancel_sends_the_message(
    open_notebook: Callable[[str, Sequence[str]], Page],
) -> None:
    """The panel embeds the display in an Output widget: the extension's renderer still
    draws it, and Cancel reaches the run in its background thread by the comm message."""
    page = open_notebook("panel.ipynb", PANEL)
    run_cell(page, 0)
    wait_done(page, 0)
    run_cell(page, 1)
    wait_done(page, 1)  # the run goes on in a thread: the kernel is free
    view = cell(page, 0)
    view.locator(f"{OVERALL}[data-state=running]").wait_for(timeout=30_000)
    assert view.locator(".widget-html .jp-par-progress").count() == 0  # the fallback is unused
    time.sleep(1.5)
    view.locator(".jp-par-cancel").click()
    view.locator(f"{OVERALL}[data-state=cancelled]").wait_for(timeout=5_000)
    run_cell(page, 2)
    wait_done(page, 2)
    out = cell(page, 2).locator(".jp-OutputArea-output").last.inner_text().strip()
    assert out == "CancelledError False", out


def test_cancel_stops_a_busy_parallel_cell_in_notebook7(
    open_in_notebook7: Callable[[str, Sequence[str]], Page],
    screenshot_path: Callable[[str], Path],
) -> None:
    page = open_in_notebook7("cancel-nb7.ipynb", CELLS)
    run_cell(page, SETUP_CELL)
    wait_done(page, SETUP_CELL, timeout=120_000)  # imports pandas: slow on a busy machine
    cancel_by_button_then_palette(page, screenshot_path("notebook7-cancelled-parallel-cell.png"))
