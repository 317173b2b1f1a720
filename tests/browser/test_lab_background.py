"""A ``%%parallel --background`` run in a real JupyterLab (issue 24).

The cell returns at once; its view keeps updating while another cell runs and prints;
the status bar's runs list shows the background run, and its Cancel stops it (by the
comm message: the kernel is free, so it reads it at once). Nothing is written to TARGET,
and what the finished partitions printed shows under the run's own cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from lab_helpers import OVERALL, cell, start_cell, wait_cell_done

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """
import time
import pandas as pd
import jupyter_par as jp
%load_ext jupyter_par
df = pd.DataFrame({"x": range(2000)})

def slow(row):
    time.sleep(0.02)  # 2,000 rows on 2 workers: about 20 s
    return row["x"] * 2
"""
BACKGROUND = ('%%parallel --background --jobs 2 df\nprint("partition of", len(df), "rows")\n'
              'df["y"] = df.apply(slow, axis=1)')
# Prints a line, waits until the view has moved on, prints again: the view updates
# while this cell holds the kernel's main thread.
OTHER = """h = jp.runs()[-1]
first = h.progress.rows_done if h.progress else 0
print("other cell started", flush=True)
deadline = time.monotonic() + 30
while (h.progress.rows_done if h.progress else 0) < first + 40 and time.monotonic() < deadline:
    time.sleep(0.05)
print("other cell saw", "more" if h.progress.rows_done >= first + 40 else "no more", flush=True)
"""
CHECK = "print(h.cancelled(), type(h.exception(timeout=30)).__name__, 'y' in df)"
CELLS = [SETUP, BACKGROUND, OTHER, CHECK]

PERCENT_JS = """index => Number(document.querySelectorAll('.jp-Notebook .jp-Cell')[index]
    .querySelector('.jp-par-overall').dataset.percent)"""
# The view's percent, read while cell `other` is still running (its prompt is "[*]").
MOVED_WHILE_OTHER_RUNS_JS = """([view, other, before]) => {
    const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');
    const percent = Number(cells[view].querySelector('.jp-par-overall').dataset.percent);
    const prompt = cells[other].querySelector('.jp-InputPrompt').textContent;
    const printed = cells[other].textContent.includes('other cell started');
    return printed && prompt.includes('*') && percent > before ? percent : null;
}"""


def test_a_background_run_updates_while_another_cell_prints_and_cancels_from_the_runs_list(
    open_notebook: Callable[[str, Sequence[str]], Page],
) -> None:
    page = open_notebook("background.ipynb", CELLS)
    start_cell(page, 0)
    wait_cell_done(page, 0, timeout=120_000)
    start_cell(page, 1)
    wait_cell_done(page, 1)  # returns with the handle: the kernel is free
    view = cell(page, 1)
    view.locator(f"{OVERALL}[data-state=running]").wait_for(timeout=30_000)
    assert "BackgroundRun" in view.inner_text()

    before = page.evaluate(PERCENT_JS, 1)
    start_cell(page, 2)
    # The background run's view moves on while cell 2 runs and prints.
    page.wait_for_function(MOVED_WHILE_OTHER_RUNS_JS, arg=[1, 2, before], timeout=30_000)
    wait_cell_done(page, 2)
    assert "other cell saw more" in cell(page, 2).inner_text()
    assert page.evaluate(PERCENT_JS, 1) < 100

    # The status bar's runs list shows the background run; its Cancel stops it.
    page.locator(".jp-par-statusbar").click()
    item = page.locator(".jp-par-runs-menu .lm-Menu-item", has_text="Cancel %%parallel df")
    item.click()
    view.locator(f"{OVERALL}[data-state=cancelled]").wait_for(timeout=10_000)
    # What the finished partitions printed shows under the run's own cell, which
    # ended long ago (an Output widget the run made at its start).
    view.get_by_text("partition of", exact=False).first.wait_for(timeout=10_000)
    assert "other cell" not in view.inner_text()
    start_cell(page, 3)
    wait_cell_done(page, 3)
    out = cell(page, 3).locator(".jp-OutputArea-output").last.inner_text().strip()
    assert out == "True CancelledError False", out
