"""Runs that survive, in real kernels: resume after a failure, an interrupt, a Cancel and a
kernel restart; background cells and background API calls.

Each row a function runs leaves a file named after the row in a folder the test reads,
so "computes only what did not finish" is counted, not assumed. Interrupts are sent
as JupyterLab's stop button sends them (jupyter_client: SIGINT to the kernel's group).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest
from kernel_driver import Kernel

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(300)]

ROWS, PARTS = 200, 10

SETUP = """
%load_ext jupyter_par
import os, time
import numpy as np, pandas as pd
import jupyter_par as jp
df = pd.DataFrame({{"a": np.arange({rows}), "b": np.linspace(0, 1, {rows})}},
                  index=pd.Index([f"r{{i}}" for i in range({rows})], name="row"))
expected = df.assign(s=df["a"] * 2 + df["b"])
COUNT = {count!r}
FAIL_AT = "r{last}"
PAUSE = 0.0

def score(row):
    time.sleep(PAUSE)
    open(os.path.join(COUNT, str(row.name)), "w").close()
    if row.name == FAIL_AT:
        raise ValueError(f"bad row {{row.name}}")
    return row["a"] * 2 + row["b"]
"""

BODY = 'df["s"] = df.apply(score, axis=1)'
KEPT = re.compile(r"(\d+) of 10 partitions finished and are kept")
REUSED = re.compile(r"reused (\d+) of 10 partitions from the (?:run|cache)")



def _partitions(folder: Path) -> set[int]:
    return {int(name[1:]) // (ROWS // PARTS) for name in os.listdir(folder)}


def _fresh(folder: Path) -> Path:
    for name in os.listdir(folder):
        os.unlink(folder / name)
    return folder


def _interrupted(kernel: Kernel, code: str, count: Path) -> str:
    """Run ``code``, interrupt the kernel once 100 rows have begun (on 2 workers of 20-row
    partitions: at least 3 partitions finished), and return the interrupt's traceback text."""
    msg_id = kernel.client.execute(code, stop_on_error=False)
    deadline = time.monotonic() + 60
    while len(os.listdir(count)) < 100:
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.01)
    kernel.manager.interrupt_kernel()
    reply = kernel.client.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.client.get_shell_msg(timeout=60)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    return "\n".join(reply["content"]["traceback"])


def _magic(method: str, *flags: str) -> str:
    return (f"%%parallel --jobs 2 --partitions {PARTS} --start {method} --no-progress "
            f"{' '.join(flags)} df\n{BODY}")


def _resumed(kernel: Kernel, method: str, count: Path, kept: int) -> None:
    """Fix the function, resume, and check that only the unfinished partitions ran."""
    _fresh(count)
    kernel.ok("FAIL_AT = None\nPAUSE = 0.0")
    printed = kernel.ok(_magic(method, "--resume"))
    assert f"reused {kept} of 10 partitions from the run at" in printed, printed
    assert len(_partitions(count)) == PARTS - kept
    kernel.ok("pd.testing.assert_frame_equal(df, expected)\ndf = df.drop(columns='s')")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_magic_resumes_after_a_failure_an_interrupt_and_a_cancel(method):
    count = Path(tempfile.mkdtemp(prefix="jp-count-"))
    kernel = Kernel()
    try:
        kernel.ok(SETUP.format(rows=ROWS, count=str(count), last=ROWS - 1))
        # 1. A failure in the last partition.
        reply, printed = kernel.run(_magic(method))
        assert reply["status"] == "error" and "bad row r199" in printed, printed
        assert "--resume" in printed, printed
        kept = int(KEPT.search(printed).group(1))
        assert kept in (8, 9)
        kernel.ok("assert 's' not in df")  # write-back stays atomic
        _resumed(kernel, method, count, kept)

        # 2. A kernel interrupt in the middle of a slow run.
        _fresh(count)
        kernel.ok("PAUSE = 0.02\nFAIL_AT = 'r199'")
        shown = _interrupted(kernel, _magic(method), count)
        assert "--resume" in shown, shown
        kept = int(KEPT.search(shown).group(1))
        assert 3 <= kept < PARTS
        _resumed(kernel, method, count, kept)

        # 3. Cancel (a background run's handle; the view's Cancel calls the same).
        _fresh(count)
        kernel.ok(f"PAUSE = 0.02\nFAIL_AT = None\nget_ipython().run_cell_magic('parallel', "
                  f"'--background --jobs 2 --partitions {PARTS} --start {method} --no-progress "
                  f"df', {BODY!r})\nh = jp.runs()[-1]")
        kernel.ok("while not (h.progress and h.progress.partitions_done >= 3):\n"
                  "    assert not h.done(), h.exception()\n    time.sleep(0.01)\n"
                  "assert h.cancel()\n"
                  "assert isinstance(h.exception(timeout=30), jp.CancelledError)\n"
                  "assert 's' not in df")
        printed = kernel.ok("print('KEPT', h.progress.partitions_done)")
        kept = int(printed.split()[-1])
        _resumed(kernel, method, count, kept)
    finally:
        kernel.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_api_resume_and_cache_after_a_kernel_restart(tmp_path, method):
    count, cache = tmp_path / "count", tmp_path / "cache"
    count.mkdir()
    setup = SETUP.format(rows=ROWS, count=str(count), last=ROWS - 1)
    call = (f"res = jp.apply(df, score, axis=1, jobs=2, partitions={PARTS}, progress=False, "
            f"inline_fallback=False, start_method={method!r}, cache={str(cache)!r}{{extra}})")
    kernel = Kernel()
    try:
        kernel.ok(setup)
        reply, printed = kernel.run(call.format(extra=""))
        assert reply["status"] == "error" and "resume=True" in printed, printed
        kept = int(KEPT.search(printed).group(1))
    finally:
        kernel.close()
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    kernel = Kernel()  # a new kernel: only the disk remembers
    try:
        kernel.ok(setup)
        _fresh(count)
        printed = kernel.ok("FAIL_AT = None\n" + call.format(extra=", resume=True"))
        assert int(REUSED.search(printed).group(1)) == kept, printed
        assert len(_partitions(count)) == PARTS - kept
        kernel.ok("pd.testing.assert_series_equal(res, expected['s'].rename(None))")
    finally:
        kernel.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_background_cells_and_calls(method):
    count = Path(tempfile.mkdtemp(prefix="jp-count-"))
    kernel = Kernel()
    try:
        kernel.ok(SETUP.format(rows=ROWS, count=str(count), last=ROWS - 1)
                  + f"\nFAIL_AT = None\njp.apply(df.head(8), score, axis=1, jobs=2, "
                    f"start_method={method!r}, progress=False)")  # workers warm
        kernel.ok("PAUSE = 0.01")
        started = time.monotonic()
        printed = kernel.ok(_magic(method, "--background"))
        assert time.monotonic() - started < 0.5, "the --background cell did not return at once"
        assert "BackgroundRun" in printed
        # A following cell runs while the run goes.
        printed = kernel.ok("h = jp.runs()[-1]\nprint('running:', not h.done())")
        assert "running: True" in printed
        kernel.ok("jp.wait(timeout=120)\nassert h.exception() is None and h.note is None\n"
                  "pd.testing.assert_frame_equal(df, expected)\n"
                  "pd.testing.assert_frame_equal(h.result(), expected)\n"
                  "df = df.drop(columns='s')")

        # A TARGET rebound while the run goes is left alone; the result stays on the handle.
        kernel.ok(_magic(method, "--background"))
        kernel.ok("h = jp.runs()[-1]\nassert not h.done()\nmine = df = df.copy()")
        kernel.ok("jp.wait(timeout=120)\nassert df is mine and 's' not in df\n"
                  "assert 'rebound' in h.note, h.note\n"
                  "pd.testing.assert_frame_equal(h.result(), expected)")

        # An interrupt of another cell does not stop a background run.
        kernel.ok("h = jp.apply(df, score, axis=1, jobs=2, partitions=10, progress=False, "
                  f"start_method={method!r}, background=True)")
        msg_id = kernel.client.execute("print('sleeping', flush=True)\ntime.sleep(60)",
                                       stop_on_error=False)
        while True:  # the other cell has begun
            msg = kernel.client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and \
                    "sleeping" in msg["content"].get("text", ""):
                break
        kernel.manager.interrupt_kernel()
        reply = kernel.client.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kernel.client.get_shell_msg(timeout=60)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        kernel.ok("pd.testing.assert_series_equal(h.result(timeout=120), "
                  "expected['s'].rename(None))\nassert not h.cancelled()")
    finally:
        kernel.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_api_resumes_after_an_interrupt(tmp_path, method):
    count = tmp_path / "count"
    count.mkdir()
    call = (f"res = jp.apply(df, score, axis=1, jobs=2, partitions={PARTS}, progress=False, "
            f"inline_fallback=False, start_method={method!r}{{extra}})")
    kernel = Kernel()
    try:
        kernel.ok(SETUP.format(rows=ROWS, count=str(count), last=ROWS - 1)
                  + "\nPAUSE = 0.02\nFAIL_AT = None")
        shown = _interrupted(kernel, call.format(extra=""), count)
        kept = int(KEPT.search(shown).group(1))
        assert 3 <= kept < PARTS and "resume=True" in shown, shown
        _fresh(count)
        printed = kernel.ok("PAUSE = 0.0\n" + call.format(extra=", resume=True"))
        assert f"reused {kept} of 10 partitions from the run at" in printed, printed
        assert len(_partitions(count)) == PARTS - kept
        kernel.ok("assert 'res' in globals()\n"
                  "pd.testing.assert_series_equal(res, expected['s'].rename(None))")
    finally:
        kernel.close()
