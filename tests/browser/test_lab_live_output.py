"""What workers print and log appears in the notebook while the run goes (issue 15).

A real ``%%parallel`` cell holds the kernel for a few seconds in worker processes. While
it is still running, the page must already show what its partitions printed (in the lab
view, and in the ipywidgets view where the extension is disabled) and the records they
logged, handled by the kernel's own logging handler. When it ends, the live tail goes
away and the whole output is printed under the cell, grouped per partition, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from lab_helpers import OVERALL, cell, start_cell, stderr_text, wait_cell_done

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """
import logging, sys, time
import pandas as pd
%load_ext jupyter_par
# The kernel's own handler: records made in workers must come through it.
logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                    format="LOG %(levelname)s %(name)s: %(message)s")
df = pd.DataFrame({"x": range(40)})
"""
# Each partition prints, logs (INFO passes the kernel's level, DEBUG does not), then works
# for a few seconds: the output must be on the page before the cell ends.
MAGIC = """%%parallel --jobs 2 --partitions 4 df
print("loading rows", list(df["x"])[:2])
logging.getLogger("etl").info("partition loaded")
logging.getLogger("etl").debug("not shown: below the kernel's level")
time.sleep(3)
df["y"] = df["x"] * 2
print("finished rows")
"""
CHECK = 'assert df["y"].equals(df["x"] * 2)\nprint("checked")'
CELLS = [SETUP, MAGIC, CHECK]

# The live tail of each partition, and the cell's state, read in one frame.
LIVE_JS = """([index, selector]) => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
    const running = !!cell.querySelector('.jp-par-progress[data-state=running]');
    const log = [...cell.querySelectorAll(selector)].map(n => n.textContent).join('\\n');
    const printed = [...cell.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]')]
        .map(n => n.textContent).join('\\n');
    return running && log.includes('loading rows') && printed.includes('partition loaded')
        ? {log, printed} : null;
}"""


def _live_then_grouped(page: Page, log_selector: str) -> dict[str, str]:
    start_cell(page, 0)
    wait_cell_done(page, 0, timeout=120_000)  # imports pandas: slow on a busy machine
    assert stderr_text(page, 0) == ""
    start_cell(page, 1)
    # Before the run ends: the partitions' prints in the view, their records in the cell.
    seen = page.wait_for_function(LIVE_JS, arg=[1, log_selector], timeout=60_000).json_value()
    assert "finished rows" not in seen["log"], seen
    assert "LOG INFO etl: partition loaded" in seen["printed"], seen
    assert "not shown" not in seen["printed"], seen
    wait_cell_done(page, 1)
    run = cell(page, 1)
    # After: the tail is gone; the whole output is under the cell, grouped, once each.
    tail = run.locator(log_selector)
    assert tail.count() == 0 or not tail.first.is_visible()
    text = run.locator(".jp-OutputArea").inner_text()
    for partition in range(4):
        assert text.count(f"[partition {partition}, worker") == 1, text
    assert text.count("loading rows") == 4 and text.count("finished rows") == 4, text
    assert text.count("LOG INFO etl: partition loaded") == 4, text
    assert stderr_text(page, 1) == ""
    start_cell(page, 2)
    wait_cell_done(page, 2)
    assert stderr_text(page, 2) == "" and "checked" in cell(page, 2).inner_text()
    return seen


def test_worker_output_is_live_in_the_lab_view(
    open_notebook: Callable[[str, list[str]], Page], screenshot_path: Callable[[str], Path]
) -> None:
    page = open_notebook("live.ipynb", CELLS)
    seen = _live_then_grouped(page, ".jp-par-log-text")
    assert "loading rows" in seen["log"]
    assert cell(page, 1).locator(f"{OVERALL}[data-state=done]").count() == 1


def test_worker_output_is_live_without_the_extension(
    open_without_extension: Callable[[str, list[str]], Page],
) -> None:
    page = open_without_extension("live-fallback.ipynb", CELLS)
    _live_then_grouped(page, ".widget-html .jp-par-log pre")


def test_worker_output_is_live_in_notebook7(
    open_in_notebook7: Callable[[str, list[str]], Page],
) -> None:
    page = open_in_notebook7("live-nb7.ipynb", CELLS)
    _live_then_grouped(page, ".jp-par-log-text")
