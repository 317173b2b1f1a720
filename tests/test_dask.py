"""The Dask backend against a real cluster: a ``dask scheduler`` and two ``dask worker``
commands (two single-threaded worker processes each) started on 127.0.0.1 by this module.

The cluster runs in its own sessions, not as children of pytest: a worker killed on
purpose is replaced by its nanny, and that replacement must not count as a process left
behind by the test. The module's teardown stops every process of those sessions and
checks that none is left. The workers find this module's functions (shipped by
reference, as functions of an importable module are) through their PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest

distributed = pytest.importorskip("distributed")

import jupyter_par as jp  # noqa: E402
from jupyter_par import backends  # noqa: E402
from jupyter_par.errors import BackendUnavailableError, RemoteTraceback  # noqa: E402
from jupyter_par.planning import operations  # noqa: E402
from jupyter_par.planning.partition import combine, split_rows  # noqa: E402
from jupyter_par.planning.plan import Plan  # noqa: E402
from jupyter_par.run import pipeline  # noqa: E402
from jupyter_par.run.options import resolve  # noqa: E402

pytestmark = pytest.mark.dask

TESTS = Path(__file__).resolve().parent
DASK = str(Path(sys.executable).parent / "dask")
_LAUNCH = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], start_new_session=True, stdin=subprocess.DEVNULL,"
    " stdout=log, stderr=log)\n"
    "print(p.pid)\n"
)


class ScoreError(ValueError):
    """The user's own exception type, raised in a worker."""


def slow_score(row: pd.Series) -> float:
    time.sleep(0.002)
    return row["a"] * 2 + row["b"]


def very_slow(row: pd.Series) -> float:
    time.sleep(0.02)
    return row["a"]


def fails_on_77(row: pd.Series) -> float:
    if row["a"] == 77:
        msg = f"cannot score a={row['a']}"
        raise ScoreError(msg)
    return row["a"]


def chatty(part: pd.DataFrame) -> int:
    print(f"summing {len(part)} rows from {part.index[0]}")
    return int(part["a"].sum())


def sleeps(part: pd.DataFrame) -> pd.DataFrame:
    time.sleep(120)  # never reports progress, so only a restart can stop it
    return part


def reports_then_sleeps(part: pd.DataFrame) -> pd.DataFrame:
    time.sleep(0.2)  # past the throttle of progress events (at most ten a second)
    jp.progress(1)  # shows it started, then never checks the cancel flag again
    time.sleep(120)
    return part


@dataclass
class Cluster:
    address: str
    client: Any
    sessions: list[int]


def _launch(cmd: list[str], log: Path) -> int:
    """Start ``cmd`` in a new session that is not our child; return its pid (= its pgid)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    out = subprocess.run([sys.executable, "-c", _LAUNCH, str(log), *cmd], env=env,
                         cwd=TESTS.parent, capture_output=True, text=True, check=True)
    return int(out.stdout)


def _session_procs(sessions: list[int]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) in sessions:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def _stop_sessions(sessions: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in _session_procs(sessions):
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        psutil.wait_procs(_session_procs(sessions), timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real scheduler and 2 x 2 single-threaded workers on loopback, for this module."""
    folder = tmp_path_factory.mktemp("dask")
    file = folder / "scheduler.json"
    log = folder / "cluster.log"
    # Idle and death timeouts end the cluster by itself if pytest is killed before teardown.
    sessions = [_launch([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                         "--no-dashboard", "--scheduler-file", str(file),
                         "--idle-timeout", "300"], log)]
    client = None
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(2):
            sessions.append(_launch([DASK, "worker", "--scheduler-file", str(file),
                                     "--nworkers", "2", "--nthreads", "1", "--host",
                                     "127.0.0.1", "--no-dashboard", "--death-timeout",
                                     "60"], log))
        address = json.loads(file.read_text())["address"]
        client = distributed.Client(address, set_as_default=False, timeout=30)
        client.wait_for_workers(4, timeout=60)
        yield Cluster(address, client, sessions)
    finally:
        backends.shutdown("dask")
        if client is not None:
            client.close()
        _stop_sessions(sessions)
    left = _session_procs(sessions)
    assert not left, f"cluster processes left: {[p.pid for p in left]}"


@pytest.fixture
def dask_run(cluster):
    """Options for a run on the module's cluster, once all four workers are up."""
    cluster.client.wait_for_workers(4, timeout=30)
    return {"backend": "dask", "scheduler": cluster.address, "jobs": 4,
            "inline_fallback": False}  # small work too: these tests are about the cluster


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"a": np.arange(400), "b": rng.random(400),
                         "k": rng.integers(0, 9, 400)},
                        index=pd.Index([f"r{i}" for i in range(400)], name="id"))


def _eventually(check: Any, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- results equal serial pandas ------------------------------------------------------------
def test_api_calls_give_what_pandas_gives(df, dask_run):
    run = {**dask_run, "progress": False}
    pd.testing.assert_series_equal(jp.apply(df, slow_score, axis=1, **run),
                                   df.apply(slow_score, axis=1))
    pd.testing.assert_series_equal(jp.map(df["a"], lambda x: x % 7, **run),
                                   df["a"].map(lambda x: x % 7))
    pd.testing.assert_frame_equal(
        jp.groupby_apply(df, "k", lambda g: g[["a", "b"]].sum(), **run),
        df.groupby("k").apply(lambda g: g[["a", "b"]].sum()),
    )
    total = jp.map_partitions(df, lambda p: p["a"].sum(), **run)
    assert sum(total) == df["a"].sum()
    assert jp.map(list(range(50)), lambda x: x * x, **run) == [x * x for x in range(50)]


def test_each_row_and_group_runs_once_on_dask(df, dask_run, tmp_path, monkeypatch):
    """Issue 25: a counter the workers share (a file each call appends to) reads every
    row and group once; the fallback's sample is asked for (it applies to the local
    pool only, so none runs here, and the workers run everything)."""
    from jupyter_par.run import fallback as cost

    monkeypatch.setattr(cost, "SAMPLE_ABOVE_BYTES", 0)
    run = {**dask_run, "progress": False, "inline_fallback": True}
    log = str(tmp_path / "calls")

    def count(tag, value):
        with open(log, "a") as f:
            f.write(f"{tag} {value}\n")
        return value

    got = jp.map(df["a"], lambda x: count("map", x), **run)
    pd.testing.assert_series_equal(got, df["a"])
    jp.apply(df.reset_index(drop=True), lambda r: count("apply", r.name), axis=1, **run)
    jp.groupby_apply(df, "k", lambda g: count("group", g.name), **run)
    lines = Path(log).read_text().splitlines()
    assert sorted(x.split()[1] for x in lines if x.startswith("map ")) == \
        sorted(str(v) for v in df["a"])
    assert sorted(int(x.split()[1]) for x in lines if x.startswith("apply ")) == \
        list(range(len(df)))
    groups = [x.split()[1] for x in lines if x.startswith("group ")]
    assert sorted(groups) == sorted(str(k) for k in df["k"].unique())


def rated(row: pd.Series) -> float:
    return jp.shared["rates"][row["k"]] * row["a"]


def test_shared_objects_reach_dask_workers(df, dask_run):
    rates = pd.Series(np.linspace(0.5, 2.0, 9))
    result = jp.apply(df, rated, axis=1, **dask_run, shared={"rates": rates}, progress=False)
    expected = pd.Series(rates[df["k"]].to_numpy() * df["a"].to_numpy(), index=df.index)
    pd.testing.assert_series_equal(result, expected)


def test_progress_is_live_and_keyed_by_worker_address(df, dask_run, cluster):
    seen = []
    small = df.head(200)  # 50 rows of 20 ms per partition: several updates each
    result = jp.apply(small, very_slow, axis=1, **dask_run, partitions=4, progress=seen.append)
    pd.testing.assert_series_equal(result, small.apply(very_slow, axis=1))
    addresses = set(cluster.client.nthreads())
    final = seen[-1]
    assert final.state == "done" and final.rows_done == len(small)
    worked = {w.worker for w in final.workers if w.rows_done > 0}
    assert len(worked) >= 2 and worked <= addresses
    # Rows arrive while a partition runs, not only when it ends.
    assert any(w.state == "busy" and 0 < w.rows_done < w.rows_assigned
               for p in seen[:-1] for w in p.workers)


def test_jobs_caps_partitions_in_flight_on_an_external_cluster(df, dask_run):
    seen = []
    jp.apply(df, slow_score, axis=1, **dask_run, progress=False)
    backend = backends.warm_backends()["dask"]
    jp.apply(df, slow_score, axis=1, **{**dask_run, "jobs": 2}, progress=seen.append)
    assert backends.warm_backends()["dask"] is backend  # same connection, new cap
    assert len(seen[0].workers) == 2
    assert max(sum(w.state == "busy" for w in p.workers) for p in seen) <= 2


def test_prints_are_captured_per_partition(df, dask_run, cluster, capsys):
    result = jp.map_partitions(df, chatty, **dask_run, partitions=4, progress=False)
    assert sum(result) == df["a"].sum()
    out = capsys.readouterr().out
    addresses = set(cluster.client.nthreads())
    headings = [line for line in out.splitlines() if line.startswith("[partition")]
    assert len(headings) == 4
    assert all(h.split("worker ")[1].rstrip("]") in addresses for h in headings)
    for i, start in enumerate(["r0", "r100", "r200", "r300"]):
        assert f"[partition {i}, worker " in out
        assert f"summing 100 rows from {start}" in out


def talks_then_works(part: pd.DataFrame) -> int:
    print(f"loading {part.index[0]}")
    logging.getLogger("jp_dask_etl").info("loaded %s", part.index[0])
    time.sleep(1.5)
    return int(part["a"].sum())


def test_prints_and_log_records_arrive_while_the_run_goes(df, dask_run, cluster, caplog):
    caplog.set_level(logging.INFO, logger="jp_dask_etl")
    pieces: list[tuple[int, str, str, float]] = []

    class Sink:
        closed_at = None

        def update(self, progress):
            pass

        def close(self, progress):
            Sink.closed_at = time.monotonic()

        def output(self, partition, worker, text):
            pieces.append((partition, worker, text, time.monotonic()))

    total = jp.map_partitions(df, talks_then_works, **dask_run, partitions=4, progress=Sink())
    assert sum(total) == df["a"].sum()
    addresses = set(cluster.client.nthreads())
    for i, start in enumerate(["r0", "r100", "r200", "r300"]):
        got = [(w, t, at) for p, w, t, at in pieces if p == i]
        assert "".join(t for _, t, _ in got) == f"loading {start}\n", pieces
        assert got[0][0].split("#")[0] in addresses
        assert Sink.closed_at - got[0][2] > 0.5, (pieces, Sink.closed_at)  # before the end
    records = sorted(r.getMessage() for r in caplog.records if r.name == "jp_dask_etl")
    assert records == [f"loaded {s}" for s in ["r0", "r100", "r200", "r300"]]


def test_user_exception_type_with_remote_traceback_and_partition(df, dask_run):
    with pytest.raises(ScoreError, match="cannot score a=77") as info:
        jp.apply(df, fails_on_77, axis=1, **dask_run, partitions=4, progress=False)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "fails_on_77" in cause.traceback_text
    assert "raise ScoreError(msg)" in cause.traceback_text
    assert "partition 0 of 4" in str(cause) and "row label 'r77'" in str(cause)


# -- failures, cancel, timeouts ---------------------------------------------------------------
def _kill_first_busy(pids: dict[str, int], killed: list[str]) -> Any:
    def on_progress(progress: Any) -> None:
        if killed:
            return
        for w in progress.workers:
            if w.state == "busy" and w.rows_done > 0:
                os.kill(pids[w.worker], signal.SIGKILL)
                killed.append(w.worker)
                return

    return on_progress


def test_killed_worker_is_retried_elsewhere(df, dask_run, cluster):
    killed: list[str] = []
    pids = cluster.client.run(os.getpid)
    small = df.head(200)
    result = jp.apply(small, very_slow, axis=1, **dask_run, partitions=4, retries=1,
                      progress=_kill_first_busy(pids, killed))
    pd.testing.assert_series_equal(result, small.apply(very_slow, axis=1))
    assert killed and killed[0] not in cluster.client.nthreads()


def test_killed_worker_without_retries_fails_clearly(df, dask_run, cluster):
    killed: list[str] = []
    pids = cluster.client.run(os.getpid)
    with pytest.raises(jp.WorkerDiedError, match="left the Dask cluster") as info:
        jp.apply(df, very_slow, axis=1, **dask_run, partitions=4,
                 progress=_kill_first_busy(pids, killed))
    assert killed and killed[0] in str(info.value)
    assert "replaced" not in str(info.value)  # the cluster's nanny decides that, not us


def _running_keys(client: Any) -> list[str]:
    """Keys of jupyter_par tasks whose threads still run on any worker."""
    def executing(dask_worker: Any = None) -> list[str]:
        return [str(ts.key) for ts in dask_worker.state.executing
                if str(ts.key).startswith("jupyter_par-")]

    return [key for keys in client.run(executing).values() for key in keys]


def _cancel_when(started: int, cancel: threading.Event) -> Any:
    def on_progress(progress: Any) -> None:
        if sum(w.rows_done > 0 for w in progress.workers) >= started:
            cancel.set()

    return on_progress


def test_cancel_stops_running_tasks_without_restarting_workers(df, dask_run, cluster):
    before = set(cluster.client.nthreads())
    cancel = threading.Event()
    # Once all four run (none still loading), each stops at its next check of the flag.
    options = resolve(**dask_run, progress=_cancel_when(4, cancel))  # pipeline.execute: cancel=
    parts = split_rows(pd.concat([df] * 5), 4)  # about 10 s of work per partition
    with pytest.raises(jp.CancelledError):
        pipeline.execute(Plan(parts, operations.RowApply(very_slow), combine, "cancel"),
                         options, cancel=cancel)
    assert _running_keys(cluster.client) == []
    assert set(cluster.client.nthreads()) == before  # stopped by the flag, not by restarts


def test_cancel_restarts_workers_whose_task_ignores_the_flag(df, dask_run, cluster):
    cancel = threading.Event()
    options = resolve(**dask_run, progress=_cancel_when(1, cancel))
    with pytest.raises(jp.CancelledError):
        pipeline.execute(Plan(split_rows(df, 2),
                                       operations.PartitionCall(reports_then_sleeps), combine,
                                       "cancel"), options, cancel=cancel)
    assert _eventually(lambda: _running_keys(cluster.client) == [])


def test_timeout_restarts_a_worker_stuck_in_a_task(df, dask_run, cluster):
    seen = []
    with pytest.raises(jp.PartitionTimeoutError, match="timeout=1"):
        jp.map_partitions(df, sleeps, **dask_run, partitions=1, timeout=1,
                          progress=seen.append)
    stuck = next(w.worker for p in seen for w in p.workers if w.state == "busy")
    assert _eventually(lambda: _running_keys(cluster.client) == [])
    assert _eventually(lambda: stuck not in cluster.client.nthreads())


# -- notebook code and the magic in a real kernel -------------------------------------------
@pytest.mark.kernel
def test_notebook_function_and_magic_on_the_cluster(dask_run, cluster):
    # Imported here: workers import this module to find its functions, and need no kernel.
    from notebook_runner import outputs_text, run_cells

    setup = (
        "import numpy as np, pandas as pd, jupyter_par as jp\n"
        "RATE = 3\n"
        "def helper(x):\n    return x * RATE\n"
        "def score(row):\n    return helper(row['a']) + np.sqrt(row['b'])\n"
        "df = pd.DataFrame({'a': np.arange(300), 'b': np.linspace(0, 1, 300)})\n"
        "expected = df.assign(s=df.apply(score, axis=1))\n"
    )
    api_cell = (
        f"out = jp.apply(df, score, axis=1, backend='dask', scheduler={cluster.address!r},"
        " jobs=4, progress=False)\n"
        "print('api equal:', out.equals(expected['s']))"
    )
    magic = (
        f"%%parallel --backend dask --scheduler {cluster.address} --jobs 4 --no-progress df\n"
        "df['s'] = df.apply(score, axis=1)"
    )
    nb = run_cells([setup, api_cell, "%load_ext jupyter_par", magic,
                    "print('magic equal:', df.equals(expected))\njp.shutdown()"])
    assert "api equal: True" in outputs_text(nb.cells[1])
    assert "magic equal: True" in outputs_text(nb.cells[4])


# -- a local cluster and the missing extra ----------------------------------------------------
@pytest.fixture(scope="module")
def resource_tracker():
    """multiprocessing's resource tracker, started before the test that needs it.

    Spawned processes (a local cluster's workers) start this helper once per Python
    process and it lives as long as that process does, like the forkserver; started
    here, it is part of the test's baseline rather than a process the test left behind.
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def _listening(pids: list[int]) -> list[str]:
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found += [c.laddr.ip for c in psutil.Process(pid).net_connections("inet")
                      if c.status == psutil.CONN_LISTEN]
    return found


def test_local_cluster_listens_on_loopback_only(df, resource_tracker):
    threads_vars = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                    "OPENBLAS_NUM_THREADS")}
    try:
        result = jp.apply(df, slow_score, axis=1, backend="dask", jobs=2, progress=False)
        pd.testing.assert_series_equal(result, df.apply(slow_score, axis=1))
        # The nannies limit their workers' threads, not the kernel's own numpy.
        assert {k: os.environ.get(k) for k in threads_vars} == threads_vars
        limited = jp.map([0, 1], lambda _: os.environ.get("OMP_NUM_THREADS"), backend="dask",
                         jobs=2, progress=False, inline_fallback=False)
        assert limited == ["1", "1"]
        info = backends.warm_backends()["dask"].describe()
        assert info["scheduler"].startswith("tcp://127.0.0.1:")
        assert len(info["workers"]) == 2 and len(info["pids"]) == 2
        assert all(w.startswith("tcp://127.0.0.1:") for w in info["workers"])
        addresses = _listening([os.getpid(), *info["pids"]])
        assert addresses and set(addresses) <= {"127.0.0.1", "::1"}
        # A kernel interrupt reaches the workers too (same process group): they live on.
        for pid in info["pids"]:
            os.kill(pid, signal.SIGINT)
        result = jp.apply(df, slow_score, axis=1, backend="dask", jobs=2, progress=False)
        pd.testing.assert_series_equal(result, df.apply(slow_score, axis=1))
        assert backends.warm_backends()["dask"].describe()["pids"] == info["pids"]
        # The worker slider: another jobs value scales the same cluster.
        backend = backends.warm_backends()["dask"]
        result = jp.apply(df, slow_score, axis=1, backend="dask", jobs=1, progress=False)
        pd.testing.assert_series_equal(result, df.apply(slow_score, axis=1))
        assert backends.warm_backends()["dask"] is backend
        assert len(backend.describe()["pids"]) == 1
    finally:
        backends.shutdown("dask")


def test_a_users_client_is_used_as_is_and_left_open(df, dask_run, cluster):
    client = distributed.Client(cluster.address, set_as_default=False)
    run = {**dask_run, "scheduler": client, "progress": False}
    try:
        result = jp.apply(df, slow_score, axis=1, **run)
        pd.testing.assert_series_equal(result, df.apply(slow_score, axis=1))
        backends.shutdown("dask")
        assert client.status == "running"
    finally:
        client.close()
    with pytest.raises(jp.UsageError, match="Client given as scheduler is closed"):
        jp.apply(df, slow_score, axis=1, **run)


def test_bad_scheduler_values_are_one_line_errors(df, monkeypatch):
    from jupyter_par.backends import dask as dask_backend

    with pytest.raises(jp.UsageError, match="scheduler must be an address"):
        jp.apply(df, slow_score, axis=1, backend="dask", scheduler=8786, progress=False)
    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT", 1.0)
    with pytest.raises(dask_backend.SchedulerUnreachableError, match=r"tcp://127\.0\.0\.1:9"):
        jp.apply(df, slow_score, axis=1, backend="dask", scheduler="tcp://127.0.0.1:9",
                 progress=False)


def test_slots_spread_over_workers_and_name_each_thread():
    from jupyter_par.backends.dask import _slot_names

    members = {"tcp://b:2": 1, "tcp://a:1": 3}
    assert _slot_names(members, 3) == [
        ("tcp://a:1#1", "tcp://a:1"), ("tcp://b:2", "tcp://b:2"), ("tcp://a:1#2", "tcp://a:1"),
    ]
    assert len(_slot_names(members, 10)) == 4
    assert _slot_names({}, 4) == []


def test_missing_distributed_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "jupyter_par.backends.dask", raising=False)
    with pytest.raises(BackendUnavailableError) as info:
        backends.backend_class("dask")
    message = str(info.value)
    assert "pip install 'jupyter_par[dask]'" in message and "\n" not in message


@pytest.mark.kernel
@pytest.mark.slow
def test_demo_notebook_runs_the_same_cell_on_processes_and_dask():
    from notebook_runner import REPO, notebook_text, run_notebook

    nb = run_notebook(REPO / "demo_notebooks" / "04_dask.ipynb", timeout=180)
    text = notebook_text(nb)
    assert "processes == serial: True" in text and "dask      == serial: True" in text
    assert "caught BadTrip" in text and "local cluster == serial: True" in text


def test_members_fetched_before_a_forced_refresh_are_dropped(dask_run):
    """A background membership answer that left before a forced refresh (a run's start)
    may name workers of a scheduler that has since restarted: it must not win."""
    jp.map([1, 2], abs, **dask_run, progress=False)
    backend = backends.warm_backends()["dask"]
    backend._refresh(force=True)
    current = dict(backend._members)
    backend._fetched = (backend._generation - 1, {"tcp://10.9.9.9:1": 1}, None)
    backend._refresh()
    assert backend._members == current
    backend._fetched = (backend._generation, {**current}, None)
    backend._refresh()
    assert backend._members == current


def _touching(folder: Path, fail_at: str | None):
    """A row function leaving one file per row it ran (counted by the test)."""
    def double(row):
        (folder / str(row.name)).touch()
        if row.name == fail_at:
            raise ValueError(f"bad row {row.name}")
        return row["a"] * 2
    return double


def test_resume_on_the_cluster_computes_only_what_did_not_finish(dask_run, df, tmp_path,
                                                                 capsys):
    import re

    from jupyter_par.run import resume

    resume.STORE.runs.clear()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    options = {**dask_run, "partitions": 8, "progress": False}
    with pytest.raises(ValueError, match="bad row r399") as info:
        jp.apply(df, _touching(first, "r399"), axis=1, **options)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    kept = int(re.search(r"(\d) of 8 partitions finished and are kept", notes).group(1))
    assert kept >= 4
    result = jp.apply(df, _touching(second, None), axis=1, resume=True, **options)
    pd.testing.assert_series_equal(result, df.apply(lambda row: row["a"] * 2, axis=1))
    assert f"reused {kept} of 8 partitions" in capsys.readouterr().out
    assert len({int(name[1:]) // 50 for name in os.listdir(second)}) == 8 - kept
    assert jp.last_run().backend == "dask"

