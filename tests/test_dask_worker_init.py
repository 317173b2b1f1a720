"""``worker_init`` and ``jp.imap`` on a real Dask cluster (the cluster of test_dask.py:
a scheduler and 2 x 2 single-threaded worker processes on 127.0.0.1, started here)."""
# ruff: noqa: F811 - the cluster fixtures are test_dask's, taken as the tests' arguments

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from test_dask import _eventually, _running_keys, cluster, dask_run  # noqa: E402, F401
from test_imap import stuck_from_4, uneven  # noqa: E402
from test_worker_init import (  # noqa: E402
    SetupError,
    connect,
    failing_setup,
    init_calls,
    lookup,
    record_init,
    seen,
)

import jupyter_par as jp  # noqa: E402

pytestmark = pytest.mark.dask


def _worker_pids(cluster) -> set[int]:
    """Pids of the workers that answer now (a killed one may still be listed a while)."""
    return set(cluster.client.run(os.getpid, on_error="ignore").values())


def test_init_runs_once_per_dask_worker_and_after_a_worker_is_replaced(tmp_path, dask_run,
                                                                        cluster):
    log = tmp_path / "inits.log"
    run = {**dask_run, "partitions": 16, "progress": False, "worker_init": record_init,
           "worker_init_args": (str(log), "D")}
    out = jp.map(list(range(80)), seen, **run)
    assert jp.last_run().backend == "dask"
    assert {v for *_, v in out} == {"D"} and all(p == s for p, s, _ in out)
    calls = init_calls(log)
    assert set(calls.values()) == {1}, calls
    assert {int(p) for p in calls} == {p for p, _, _ in out} <= _worker_pids(cluster)
    # Kill one worker: its nanny starts a new process, which runs the init before its
    # first task; the others keep theirs (same init, no second call).
    victim = next(iter(_worker_pids(cluster)))
    os.kill(victim, signal.SIGKILL)
    assert _eventually(lambda: victim not in _worker_pids(cluster)
                       and len(cluster.client.nthreads()) == 4, within=60)
    out = jp.map(list(range(80)), seen, **{**run, "partitions": 32})
    calls = init_calls(log)
    assert set(calls.values()) == {1}, calls
    assert {p for p, _, _ in out} - {int(p) for p in calls} == set()
    assert len(calls) >= 4 and str(victim) in calls  # the killed one's and its replacement


def test_a_sqlite_connection_made_in_init_serves_every_dask_task(tmp_path, dask_run):
    path = str(tmp_path / "lookup.sqlite")
    con = connect(path)
    con.executemany("insert into t values (?, ?)", [(k, f"v{k}") for k in range(120)])
    con.commit()
    con.close()
    out = jp.map(list(range(120)), lookup, **dask_run, partitions=12, progress=False,
                 worker_init=connect, worker_init_args=(path,))
    assert [v for *_, v in out] == [f"v{k}" for k in range(120)]
    per_pid: dict[int, set[int]] = {}
    for pid, con_id, _ in out:
        per_pid.setdefault(pid, set()).add(con_id)
    assert all(len(ids) == 1 for ids in per_pid.values()), per_pid


def test_a_failing_init_on_dask_is_one_error_naming_it(dask_run):
    with pytest.raises(SetupError, match="no database here") as info:
        jp.map(list(range(20)), seen, **dask_run, progress=False, worker_init=failing_setup)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "worker_init failing_setup() failed in a worker (pid " in notes, notes
    assert "partition" not in notes


def test_imap_on_dask_in_order_as_a_set_and_stopped_by_break(dask_run, cluster):
    items = list(range(200))
    run = {**dask_run, "progress": False}
    assert list(jp.imap(uneven, items, **run)) == [3 * x for x in items]
    assert jp.last_run().backend == "dask"
    assert sorted(jp.imap(uneven, iter(items), ordered=False, **run)) == [3 * x for x in items]
    taken = []
    for value in jp.imap(stuck_from_4, itertools.count(), chunksize=1, **run):
        taken.append(value)
        if len(taken) == 4:
            broke_at = time.monotonic()
            break
    assert taken == [0, 1, 2, 3]
    # The next items take 30 s: the break returns after the Dask backend's GRACE (2 s)
    # and a worker restart, not after the items.
    assert time.monotonic() - broke_at < 10.0
    assert _eventually(lambda: _running_keys(cluster.client) == [])


def test_magic_init_on_dask_in_a_kernel(tmp_path, dask_run, cluster):
    from notebook_runner import outputs_text, run_cells

    path = Path(tmp_path / "k.sqlite")
    con = connect(str(path))
    con.executemany("insert into t values (?, ?)", [(k, f"v{k}") for k in range(50)])
    con.commit()
    con.close()
    cells = [
        "%load_ext jupyter_par\nimport sqlite3, pandas as pd, jupyter_par as jp\n"
        f"PATH = {str(path)!r}\n"
        "def open_db():\n    return sqlite3.connect(PATH)\n"
        "df = pd.DataFrame({'k': range(50)})",
        f"%%parallel --backend dask --scheduler {cluster.address} --jobs 4 --init open_db "
        "--no-progress df\n"
        "df['v'] = df['k'].map(lambda k: jp.worker_state().execute("
        "'select v from t where k=?', (k,)).fetchone()[0])",
        "print('equal:', df['v'].tolist() == [f'v{k}' for k in range(50)])\njp.shutdown()",
    ]
    nb = run_cells(cells, timeout=180)
    assert "equal: True" in outputs_text(nb.cells[2])
