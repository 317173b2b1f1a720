"""The lab extension's progress widget and status-bar item in a real JupyterLab.

These tests do not use the engine: a background thread in the kernel plays a scripted run
through ``LabProgressWidget``, the way the engine's progress sink feeds it, for the states a
real run reaches only by chance (a failure at a chosen moment, a run held mid-way). The
64-worker grid and the status-bar menu over several kernels are tested with the real
engine in ``test_lab_engine_grid.py``; the README's screenshots come from real runs.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Defines fake_run(...) in the kernel: a thread that updates the widget's traits the way a
# real run would, ``steps`` times ``dt`` seconds apart, then ends as done / failed / cancelled.
FAKE_RUN = """
import math, threading, time
from jupyter_par.widgets.lab_widget import LabProgressWidget

def fake_run(n_workers, assigned=200, steps=40, dt=0.1, fail=None, hold_at=None):
    total = n_workers * assigned
    w = LabProgressWidget(overall={"label": "fake", "total": total,
                                   "partitions_total": n_workers, "cancel": "message"})
    cancelled = threading.Event()
    w.on_cancel(cancelled.set)
    speed = [1.0 + 0.6 * (i % 4) / 3 for i in range(n_workers)]

    def records(k, failed):
        out = []
        for i in range(n_workers):
            done = min(assigned, math.ceil(assigned * min(1.0, k * speed[i] / steps)))
            if i == failed:
                done = min(done, assigned // 3)
            state = "failed" if i == failed else ("done" if done == assigned else "busy")
            out.append({"id": f"w{i}", "state": state, "done": done, "assigned": assigned,
                        "fraction": done / assigned,
                        "rate": done / max(k * dt, dt), "partition": i,
                        "error": "ValueError: bad value in row 17" if i == failed else None})
        return out

    def play():
        t0 = time.monotonic()
        failed = None
        for k in range(1, steps + 1):
            if fail is not None and k >= steps // 2:
                failed = fail
            workers = records(k, failed)
            done = sum(r["done"] for r in workers)
            elapsed = time.monotonic() - t0
            pct = 100.0 * done / total
            overall = {**w.overall, "done": done, "percent": pct, "elapsed": elapsed,
                       "eta": elapsed * (100 - pct) / pct if pct else None,
                       "partitions_done": sum(r["state"] == "done" for r in workers)}
            with w.hold_sync():
                w.workers = workers
                w.overall = overall
            if hold_at is not None and k == hold_at:
                cancelled.wait(60)
                break
            time.sleep(dt)
        final = "cancelled" if cancelled.is_set() else ("failed" if failed is not None else "done")
        workers = [r if r["state"] != "busy" else {**r, "state": "idle"} for r in w.workers]
        w.workers = workers
        status = final if final == "done" else f"{final} at {int(w.overall['percent'])}%"
        w.overall = {**w.overall, "state": final, "status": status, "eta": None,
                     "elapsed": time.monotonic() - t0}

    threading.Thread(target=play, daemon=True).start()
    return w
"""

WORKERS = ".jp-par-worker"
STATUS = ".jp-par-statusbar"
OVERALL = ".jp-par-overall"

# The share of each worker's track that its bar fills, measured in pixels, with the
# fraction the kernel sent, the state written out and the rows shown.
BAR_FRACTIONS_JS = """() => [...document.querySelectorAll('.jp-par-worker')].map(row => {
    const bar = row.querySelector('.jp-par-worker-bar').getBoundingClientRect().width;
    const track = row.querySelector('.jp-par-worker-track').clientWidth;
    return {id: row.dataset.workerId, state: row.dataset.state, fraction: bar / track,
            sent: Number(row.dataset.fraction),
            stateText: row.querySelector('.jp-par-worker-state').textContent,
            count: row.querySelector('.jp-par-worker-count').textContent};
})"""
# Whether the active notebook is in command mode.
COMMAND_MODE_JS = "() => window.jupyterapp.shell.currentWidget.content.mode === 'command'"


def notebook(run_call: str) -> Sequence[str]:
    # A trailing cell, so that after "run all" the widget's cell is not the active one.
    return [FAKE_RUN, run_call, "'after'"]


def bar_fractions(page: Page) -> list[dict[str, object]]:
    return page.evaluate(BAR_FRACTIONS_JS)


def wait_for_overall(page: Page, state: str, timeout: float = 30_000) -> None:
    page.locator(f"{OVERALL}[data-state={state}]").wait_for(timeout=timeout)


def test_eight_workers_run_to_done(
    run_notebook: Callable[[str, Sequence[str]], Page], screenshot_path: Callable[[str], Path]
) -> None:
    page = run_notebook("eight.ipynb", notebook("fake_run(8, steps=50)"))
    page.locator(f"{OVERALL}[data-state=running]").wait_for(timeout=30_000)
    expect_count(page, WORKERS, 8)
    assert page.locator(".jp-par-progress").get_attribute("data-layout") == "rows"

    # Mid-run: the status-bar item shows the run, bars are partly filled in proportion.
    status = page.locator(STATUS)
    status.wait_for(state="visible", timeout=10_000)
    assert re.fullmatch(r"parallel \d+% · 8 workers", status.inner_text().strip())
    page.wait_for_function(
        "() => Number(document.querySelector('.jp-par-overall').dataset.percent) >= 25"
    )
    screenshot = screenshot_path("scripted-8-workers-midrun.png")
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000
    fractions = bar_fractions(page)
    assert any(0 < f["fraction"] < 0.99 for f in fractions), fractions
    for f in fractions:
        assert abs(float(f["fraction"]) - float(f["sent"])) < 0.03, f
        assert f["stateText"] == f["state"], f  # the state in words, not colour only
        assert str(f["count"]).endswith(" rows"), f

    # Clicking the item lists the runs without leaving command mode; "Show" selects the cell.
    assert page.evaluate(COMMAND_MODE_JS)
    status.click()
    show = page.locator(".jp-par-runs-menu .lm-Menu-item", has_text="Show fake")
    show.wait_for(timeout=5_000)
    assert page.evaluate(COMMAND_MODE_JS), "clicking the status-bar item entered edit mode"
    show.click()
    page.wait_for_function(
        "() => !!document.querySelector('.jp-Cell.jp-mod-active .jp-par-progress')"
    )
    assert page.evaluate(COMMAND_MODE_JS), "showing the run entered edit mode"

    # End: every bar full, every worker done, the item gone.
    wait_for_overall(page, "done")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-par-worker')].every(
            row => row.dataset.state === 'done')"""
    )
    fractions = bar_fractions(page)
    assert len(fractions) == 8
    assert all(f["fraction"] >= 0.99 for f in fractions), fractions
    assert all(f["count"] == "200 rows" and f["stateText"] == "done" for f in fractions)
    status.wait_for(state="hidden", timeout=10_000)
    overall_text = page.locator(".jp-par-overall-text").inner_text()
    assert overall_text.startswith("100%"), overall_text
    assert "1,600 / 1,600 rows" in overall_text
    page.screenshot(path=str(screenshot_path("lab-8-workers-done.png")))


def test_failed_worker_and_cancel(
    run_notebook: Callable[[str, Sequence[str]], Page], screenshot_path: Callable[[str], Path]
) -> None:
    page = run_notebook("failed.ipynb", notebook("fake_run(4, steps=40, fail=2, hold_at=30)"))
    failed = page.locator(f"{WORKERS}[data-worker-id=w2][data-state=failed]")
    failed.wait_for(timeout=30_000)
    title = failed.get_attribute("title") or ""
    assert "ValueError: bad value in row 17" in title
    assert "Partition 2" in title
    # The error is on screen, not only in the tooltip, and the state is written out.
    errors = page.locator(".jp-par-errors")
    assert errors.is_visible()
    assert errors.inner_text().strip() == "worker w2: ValueError: bad value in row 17"
    assert failed.locator(".jp-par-worker-state").inner_text() == "failed"

    # The run holds at step 30 until it is cancelled: the command reaches the kernel.
    page.wait_for_function(
        "() => window.jupyterapp.commands.isEnabled('jupyter-par:cancel')", timeout=15_000
    )
    page.locator(STATUS).wait_for(state="visible", timeout=10_000)
    page.screenshot(path=str(screenshot_path("lab-failed-worker.png")))
    page.evaluate("() => window.jupyterapp.commands.execute('jupyter-par:cancel')")
    wait_for_overall(page, "cancelled", timeout=15_000)
    page.locator(STATUS).wait_for(state="hidden", timeout=10_000)
    state = page.locator(".jp-par-overall-state").inner_text()
    assert re.fullmatch(r"cancelled at \d+%", state), state
    assert page.locator(f"{WORKERS}[data-worker-id=w2]").get_attribute("data-state") == "failed"
    assert page.locator(".jp-par-cancel").is_hidden()


def expect_count(page: Page, selector: str, count: int, timeout: float = 10.0) -> None:
    """Wait until exactly ``count`` elements match ``selector``."""
    deadline = time.monotonic() + timeout
    while (found := page.locator(selector).count()) != count:
        assert time.monotonic() < deadline, f"{found} elements match {selector}, not {count}"
        time.sleep(0.05)
