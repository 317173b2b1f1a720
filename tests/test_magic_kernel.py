"""``%%parallel`` in a real IPython kernel: serial-equal results, errors, interrupts, the demo.

Each test starts one kernel (about 1.5 s) and batches its checks as cells of one
notebook; the assertions about the notebook's own variables run as cells in that
kernel, the assertions about what the user sees run here on the cell outputs.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from notebook_runner import REPO, kernel_env, outputs_text, run_cells, run_notebook

pytestmark = pytest.mark.kernel

SETUP = """\
%load_ext jupyter_par
import math as m
import numpy as np
import pandas as pd

rng = np.random.default_rng(7)
n = 400
df = pd.DataFrame({"a": rng.integers(0, 90, n), "b": rng.normal(size=n),
                   "shop": rng.choice(["x", "y", "z", "w"], n)},
                  index=pd.Index([f"o{i}" for i in range(n)], name="order"))
RATE = 1.25

def fee(amount):
    return m.ceil(amount * RATE)

def score(row):
    return fee(row["a"]) + abs(row["b"])
"""

AGGREGATE = "df.groupby('shop')['b'].agg(['mean', 'max'])"
SERIAL_BODY = 'df["score"] = df.apply(score, axis=1)\ndf["bucket"] = df["a"].map(lambda v: v // 10)'


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_results_equal_a_serial_run_under_every_start_method():
    cells = [SETUP, f"expected = df.copy()\n{SERIAL_BODY.replace('df', 'expected')}"]
    for method in ("fork", "spawn", "forkserver"):
        cells += [
            "original = df",
            f"%%parallel --jobs 2 --start {method} --no-progress df\n{SERIAL_BODY}",
            "pd.testing.assert_frame_equal(df, expected)\ndf = original",
        ]
    cells += [
        f"%%parallel --jobs 2 --by shop --no-progress df\n{AGGREGATE}",
        f"pd.testing.assert_frame_equal(_, {AGGREGATE})",
        "%%parallel --jobs 2 --partitions 3 --no-progress --reduce list df\n"
        "print('rows here:', len(df))\ndf['a'].sum()",
        "assert sum(_) == df['a'].sum()",
    ]
    nb = run_cells(cells, timeout=120)
    printed = outputs_text(nb.cells[-2])
    heads = [printed.index(f"[partition {i}") for i in range(3)]
    assert heads == sorted(heads)
    assert printed.count("rows here:") == 3


def test_failures_and_bad_input_change_nothing_and_read_well():
    failing = 'x = 1\ndf["fee"] = df.apply(picky, axis=1)'
    cells = [
        SETUP,
        "class Refused(Exception):\n    pass\n\n"
        "def picky(row):\n    if row.name == 'o123':\n"
        "        raise Refused(f'refused {row.name}')\n    return fee(row['a'])",
        f"%%parallel --jobs 2 --start spawn df\n{failing}",
        f"%%parallel --jobs 1 df\n{failing}",
        "%%parallel --jobs 0 df\nx = 1",
        "%%parallel --by nowhere df\nx = 1",
        "%%parallel nothing\nx = 1",
        "%%parallel df\nx = (1,\ny = 2",
        "assert 'fee' not in df.columns and 'x' not in dir()",
    ]
    nb = run_cells(cells, timeout=120, allow_errors=True)
    remote, inline = nb.cells[2], nb.cells[3]
    for executed in (remote, inline):
        error = next(o for o in executed.outputs if o.output_type == "error")
        assert error.ename == "Refused"
        shown = _plain("\n".join(error.traceback))
        count = executed.execution_count
        assert f"Cell In[{count}], line 3" in shown, shown  # body line 2 is cell line 3
        assert "raise Refused" in shown and "'o123'" in shown
        assert "jupyter_par" + os.sep not in shown, shown  # none of our own frames
    # IPython prints a UsageError as one line on stderr (and the cell still counts as failed)
    said = [outputs_text(bad).strip() for bad in nb.cells[4:8]]
    for line, words in zip(said, ("jobs", "nowhere", "nothing", "cell line 2"), strict=True):
        assert line.startswith("UsageError:") and "\n" not in line and words in line, line
    last = nb.cells[-1]
    assert not any(o.output_type == "error" for o in last.outputs), outputs_text(last)


def _run(client, code: str, timeout: float = 60) -> dict:
    """Execute ``code`` and return its execute_reply content."""
    msg_id = client.execute(code)
    while True:
        reply = client.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def test_interrupt_keeps_every_variable_and_leaves_no_worker():
    marker = Path(tempfile.mkdtemp()) / "started"
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=kernel_env(), cwd=str(REPO))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        assert _run(client, SETUP + "import os, time, psutil")["status"] == "ok"
        msg_id = client.execute(
            "%%parallel --jobs 2 --start spawn --no-progress df\n"
            f"open({str(marker)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
            "time.sleep(120)\n"
            "df['late'] = 1"
        )
        deadline = time.monotonic() + 90
        while not (marker.exists() and len(marker.read_text().split()) >= 2):
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.05)
        workers = [int(pid) for pid in marker.read_text().split()]
        manager.interrupt_kernel()
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        check = _run(client, f"assert 'late' not in df.columns\n"
                             f"alive = [p for p in {workers} if psutil.pid_exists(p) and "
                             "psutil.Process(p).status() != psutil.STATUS_ZOMBIE]\n"
                             "assert not alive, alive")
        assert check["status"] == "ok", check
        again = _run(client, "%%parallel --jobs 2 --start spawn --no-progress df\n"
                             "df['late'] = df['a'] + 1\n")
        assert again["status"] == "ok", again
        assert _run(client, "assert (df['late'] == df['a'] + 1).all()\n%parallel_shutdown")[
            "status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        for leftover in marker.parent.iterdir():
            leftover.unlink()
        os.rmdir(marker.parent)


def test_demo_notebook_runs_end_to_end():
    nb = run_notebook(REPO / "demo_notebooks" / "02_magic.ipynb", timeout=120)
    code = [c for c in nb.cells if c.cell_type == "code"]
    meant_to_fail = [c for c in code if "raises-exception" in c.metadata.get("tags", [])]
    errors = [c for c in code if any(o.output_type == "error" for o in c.outputs)]
    assert errors == meant_to_fail and len(meant_to_fail) == 1
    failure = next(o for o in meant_to_fail[0].outputs if o.output_type == "error")
    assert failure.ename == "ValueError"


def test_jupyter_pars_notices_point_at_the_users_cell_and_line():
    """Issue 25, item 4: in a real kernel an oversubscription notice names the cell's
    %%parallel line (the magic) or the user's own line (the API), never jupyter_par's."""
    nb = run_cells([
        "import jupyter_par as jp, pandas as pd\n%load_ext jupyter_par\n"
        "df = pd.DataFrame({'v': range(8)})",
        "%%parallel df -j 400 --backend threads --no-progress\ndf['w'] = df.v + 1",
        "jp.map(df.v, abs, jobs=400, backend='threads', progress=False);",
    ])
    magic, api = (outputs_text(cell) for cell in nb.cells[1:])
    assert "OversubscribeWarning" in magic and "OversubscribeWarning" in api
    assert "jupyter_par" not in magic.replace("jupyter_par:", "")
    assert magic.splitlines()[1].strip() == "%%parallel df -j 400 --backend threads --no-progress"
    assert api.splitlines()[1].strip().startswith("jp.map(df.v, abs, jobs=400")
    assert "site-packages" not in api and "/jupyter_par/" not in api
