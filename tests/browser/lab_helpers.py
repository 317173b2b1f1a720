"""Driving notebook cells in a real page: start a cell without waiting, wait for its end,
read its stderr. Shared by the browser tests (conftest.py starts servers and browsers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

RUN_TIMEOUT_MS = 60_000
OVERALL = ".jp-par-overall"
# Tracebacks and anything written to stderr.
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

# Runs one cell without waiting for it: the test watches the run while it is going.
RUN_CELL_JS = """index => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = index;
    void window.jupyterapp.commands.execute('notebook:run-cell');
}"""

# Whether cell `index` has run to the end (its prompt holds a number, not "*" or nothing).
CELL_DONE_JS = """index => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
    const prompt = cell && cell.querySelector('.jp-InputPrompt');
    return !!prompt && /\\[\\d+\\]/.test(prompt.textContent);
}"""


def cell(page: Page, index: int) -> Locator:
    """The notebook's cell ``index`` (markdown cells count)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def start_cell(page: Page, index: int) -> None:
    """Run cell ``index`` and return at once."""
    page.evaluate(RUN_CELL_JS, index)


def wait_cell_done(page: Page, index: int, timeout: float = RUN_TIMEOUT_MS) -> None:
    """Wait until cell ``index`` has run to its end."""
    page.wait_for_function(CELL_DONE_JS, arg=index, timeout=timeout)


def stderr_text(page: Page, index: int) -> str:
    """What cell ``index`` wrote to stderr (tracebacks included)."""
    return "\n".join(cell(page, index).locator(STDERR).all_inner_texts())
