"""What forkserver changes against spawn (the default on Linux from Python 3.14).

Under forkserver the pool's workers are forked from one server process, started at the
first forkserver run with ``pandas`` and ``jupyter_par.backends.process_worker``
imported (so a new worker starts without importing them again). The server keeps what it
had when it started: an environment variable set in the caller afterwards is not seen by
a worker started later, where a spawned worker sees it. The working directory and
``sys.path`` travel with each start, under both.
"""

from __future__ import annotations

import os
import sys

import multiprocess.forkserver as mp_forkserver
import pandas as pd
import psutil
import pytest

import jupyter_par as jp


def _whereabouts(_: int) -> tuple[int, str | None, str, bool]:
    import os
    import sys

    return (os.getppid(), os.environ.get("JP_SET_LATE"), os.getcwd(),
            "jupyter_par.backends.process_worker" in sys.modules)


def _run(method: str) -> tuple[int, str | None, str, bool]:
    out = jp.map(pd.Series(range(4)), _whereabouts, jobs=2, start_method=method,
                 progress=False)
    record = jp.last_run()
    assert record.backend == "processes" and record.with_workers, record
    assert len(set(out)) == 1, list(out)
    return out.iloc[0]


@pytest.fixture
def late_environment(tmp_path, monkeypatch):
    """A pool started once; then a variable set and the directory changed, new workers."""
    def run(method: str) -> tuple[tuple, tuple]:
        jp.shutdown()
        monkeypatch.delenv("JP_SET_LATE", raising=False)
        before = _run(method)
        monkeypatch.setenv("JP_SET_LATE", "yes")
        monkeypatch.chdir(tmp_path)
        jp.shutdown()  # the next run starts new workers (the forkserver stays)
        return before, _run(method)
    yield run
    jp.shutdown()


def test_forkserver_server_preloads_pandas_and_the_worker_loop():
    jp.shutdown()
    parent = _run("forkserver")[0]
    server = getattr(mp_forkserver._forkserver, "_forkserver_pid", None)
    assert server is not None and parent == server  # forked from the server, not from us
    assert parent != os.getpid()
    command = " ".join(psutil.Process(server).cmdline())
    assert "jupyter_par.backends.process_worker" in command and "'pandas'" in command
    libraries = [m.path for m in psutil.Process(server).memory_maps()]
    assert any(os.sep + os.path.join("pandas", "_libs") in path for path in libraries)
    jp.shutdown()
    assert _run("spawn")[0] == os.getpid()  # spawned workers are our own children
    jp.shutdown()


def test_forkserver_workers_keep_the_servers_environment(late_environment):
    before, after = late_environment("forkserver")
    assert before[1] is None
    assert after[1] is None  # set after the server started: not seen
    assert after[2] == os.getcwd()  # the directory travels with each start
    assert after[3]


def test_spawned_workers_see_the_environment_at_their_start(late_environment):
    before, after = late_environment("spawn")
    assert before[1] is None
    assert after[1] == "yes"
    assert after[2] == os.getcwd()


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the Linux default before 3.14")
def test_fork_workers_see_the_environment_at_their_start(late_environment):
    _, after = late_environment("fork")
    assert after[1] == "yes" and after[2] == os.getcwd()
