"""``worker_init`` / ``%%parallel --init`` / ``max_tasks_per_worker`` / ``jp.imap`` in a real
kernel, with the setup functions defined in the notebook, under fork and spawn.

The notebook's init writes its pid to a log, so each cell counts init calls per worker;
assertions about the notebook's variables run as cells in the kernel, those about what
the user sees run here on the outputs.
"""

from __future__ import annotations

import re
import sqlite3

import pytest
from notebook_runner import outputs_text, run_cells

pytestmark = pytest.mark.kernel

METHODS = ("fork", "spawn")


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _setup(path: str, log: str) -> str:
    return f"""\
%load_ext jupyter_par
import os, sqlite3
from collections import Counter
import pandas as pd
import jupyter_par as jp

PATH, LOG = {path!r}, {log!r}

def open_db():
    with open(LOG, "a") as out:
        out.write(f"{{os.getpid()}}\\n")
    return sqlite3.connect(PATH)

def lookup(k):
    return os.getpid(), jp.worker_state().execute("select v from t where k = ?", (k,)).fetchone()[0]

def inits():
    with open(LOG) as f:
        return Counter(f.read().split())

def broken_setup():
    raise ConnectionError("the database is down")

EXPECTED = [f"v{{k}}" for k in range(100)]
frame = pd.DataFrame({{"k": range(100)}})
"""


def _per_method(method: str) -> list[str]:
    api = f"jobs=2, start_method={method!r}, progress=False"
    return [
        "open(LOG, 'w').close()\njp.shutdown()",
        # once per worker, a sqlite connection serving every task
        f"out = jp.map(list(range(100)), lookup, {api}, partitions=10, worker_init=open_db)\n"
        "assert [v for _, v in out] == EXPECTED\n"
        "c = inits()\n"
        "assert set(c.values()) == {1} and set(c) == {str(p) for p, _ in out}, c\n"
        "print('api ok')",
        # the magic: --init NAME and --max-tasks-per-worker, pids counted
        "open(LOG, 'w').close()\ndf = frame.copy()",
        f"%%parallel --jobs 2 --start {method} --no-progress --init open_db "
        "--max-tasks-per-worker 2 --partitions 10 df\n"
        "df['v'] = df['k'].map(lambda k: jp.worker_state().execute("
        "'select v from t where k = ?', (k,)).fetchone()[0])\n"
        "df['pid'] = os.getpid()",
        "assert df['v'].tolist() == EXPECTED\n"
        "per_pid = df.groupby('pid').size() // 10  # partitions of 10 rows\n"
        "assert per_pid.max() <= 2 and per_pid.sum() == 10 and len(per_pid) >= 5, per_pid\n"
        "c = inits()\n"
        "assert set(c.values()) == {1} and set(c) == {str(p) for p in per_pid.index}, c\n"
        "print('magic ok')",
        # a failing init: one error, the user's type, naming the init and the worker
        f"jp.map(list(range(10)), lookup, {api}, worker_init=broken_setup)",
        f"%%parallel --jobs 2 --start {method} --no-progress --init broken_setup df\n"
        "df['w'] = 1",
        "%%parallel --jobs 2 --no-progress --init no_such_function df\ndf['w'] = 1",
        # results as they finish, with the progress drawn under the cell
        f"got = list(jp.imap(lambda x: x * 2, range(3000), jobs=2, start_method={method!r}))\n"
        "assert got == [x * 2 for x in range(3000)]\n"
        f"got = set(jp.imap(lambda x: x * 2, iter(range(3000)), ordered=False, {api}))\n"
        "assert got == {x * 2 for x in range(3000)}\n"
        "print('imap ok')",
        # an endless generator, a break: back at once, no worker left busy
        "import itertools, time\n"
        "def slow(x):\n    time.sleep(0.3)\n    return x\n"
        "taken = []\n"
        f"for v in jp.imap(slow, itertools.count(), {api}):\n"
        "    taken.append(v)\n"
        "    if len(taken) == 3:\n"
        "        broke = time.monotonic()\n"
        "        break\n"
        "waited = time.monotonic() - broke\n"
        "pool = jp.backends.warm_backends()['processes']\n"
        "busy = [p for p in pool._procs if p is not None and p.task_id is not None]\n"
        "assert taken == [0, 1, 2] and waited < 1.0 and not busy, (taken, waited, busy)\n"
        "print('break ok')",
    ]


def test_worker_init_magic_and_imap_in_a_kernel(tmp_path):
    path, log = str(tmp_path / "lookup.sqlite"), str(tmp_path / "inits.log")
    con = sqlite3.connect(path)
    con.execute("create table t (k integer primary key, v text)")
    con.executemany("insert into t values (?, ?)", [(k, f"v{k}") for k in range(100)])
    con.commit()
    con.close()
    cells = [_setup(path, log)]
    for method in METHODS:
        cells += _per_method(method)
    cells.append("jp.shutdown()")
    nb = run_cells(cells, timeout=240, allow_errors=True)
    step = len(_per_method("fork"))
    for m, method in enumerate(METHODS):
        cell = nb.cells[1 + m * step: 1 + (m + 1) * step]
        assert "api ok" in outputs_text(cell[1]), (method, outputs_text(cell[1]))
        assert "magic ok" in outputs_text(cell[4]), (method, outputs_text(cell[4]))
        for failed in (cell[5], cell[6]):
            errors = [o for o in failed.outputs if o.output_type == "error"]
            assert len(errors) == 1, (method, outputs_text(failed))
            shown = _plain("\n".join(errors[0].traceback))
            assert errors[0].ename == "ConnectionError", shown
            assert "the database is down" in shown
            assert "worker_init broken_setup() failed in a worker (pid " in shown, shown
            # no partition is blamed (the engine's own source lines may say the word)
            assert "raised in partition" not in shown and "in partition" not in shown, shown
        bad = _plain(outputs_text(cell[7]))
        assert "--init 'no_such_function' is not defined in the notebook" in bad, bad
        assert "imap ok" in outputs_text(cell[8]), (method, outputs_text(cell[8]))
        assert "break ok" in outputs_text(cell[9]), (method, outputs_text(cell[9]))
        views = [o for o in cell[8].outputs if o.output_type == "display_data"]
        assert views, (method, cell[8].outputs)  # the progress of the first imap
        text = views[0].data.get("text/plain", "")
        assert "imap(<lambda>)" in text and "done" in text, text
