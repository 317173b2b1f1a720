"""``worker_init`` / ``jp.worker_state()`` / ``max_tasks_per_worker`` on real workers.

Every init call writes its pid (and thread) to a file, so the tests count init calls
per worker from the outside; tasks return the pid they ran in and the state they saw.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.errors import RemoteTraceback, UsageError

METHODS = ["fork", "spawn"]


class SetupError(ValueError):
    """The user's own exception type, raised by a worker_init."""


def record_init(log: str, value: str = "A") -> dict:
    with open(log, "a") as out:
        out.write(f"{os.getpid()} {threading.get_ident()}\n")
    return {"pid": os.getpid(), "value": value, "thread": threading.get_ident()}


def init_calls(log: Path) -> Counter:
    return Counter(line.split()[0] for line in log.read_text().splitlines()) if log.exists() \
        else Counter()


def seen(x: int) -> tuple[int, int, str]:
    state = jp.worker_state()
    return os.getpid(), state["pid"], state["value"]


def connect(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("create table if not exists t (k integer primary key, v text)")
    return con


def lookup(k: int) -> tuple[int, int, str]:
    con = jp.worker_state()
    return os.getpid(), id(con), con.execute("select v from t where k = ?", (k,)).fetchone()[0]


def failing_setup() -> None:
    msg = "no database here"
    raise SetupError(msg)


def pid_of_partition(part: pd.DataFrame) -> pd.Series:
    return pd.Series(os.getpid(), index=part.index)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "inits.log"


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "lookup.sqlite")
    con = connect(path)
    con.executemany("insert into t values (?, ?)", [(k, f"v{k}") for k in range(200)])
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("method", METHODS)
def test_init_runs_once_per_worker_and_its_value_is_worker_state(method, log, fresh_workers):
    out = jp.map(list(range(60)), seen, jobs=2, partitions=12, start_method=method,
                 worker_init=record_init, worker_init_args=(str(log), "A"), progress=False)
    assert jp.last_run().backend == "processes"
    ran_in = {task_pid for task_pid, _, _ in out}
    assert all(task_pid == state_pid and value == "A" for task_pid, state_pid, value in out)
    calls = init_calls(log)
    assert set(calls) == {str(p) for p in ran_in} and set(calls.values()) == {1}, calls
    # The warm workers keep their state for the next run with the same init: no new call.
    out = jp.map(list(range(60)), seen, jobs=2, partitions=12, start_method=method,
                 worker_init=record_init, worker_init_args=(str(log), "A"), progress=False)
    assert set(init_calls(log).values()) == {1}
    assert {p for p, _, _ in out} <= set(backends.warm_backends()["processes"].pids())


def test_another_init_runs_again_in_warm_workers_never_a_stale_state(log, fresh_workers):
    run = {"jobs": 2, "partitions": 8, "start_method": "fork", "progress": False}
    first = jp.map(list(range(40)), seen, worker_init=record_init,
                   worker_init_args=(str(log), "A"), **run)
    pids = set(backends.warm_backends()["processes"].pids())
    second = jp.map(list(range(40)), seen, worker_init=record_init,
                    worker_init_args=(str(log), "B"), **run)
    assert set(backends.warm_backends()["processes"].pids()) == pids  # the same workers
    assert {v for *_, v in first} == {"A"} and {v for *_, v in second} == {"B"}
    assert set(init_calls(log).values()) == {2}  # each worker ran A, then B
    with pytest.raises(UsageError, match="worker_state"):
        jp.map(list(range(4)), seen, **run)  # no init: no state, said plainly


@pytest.mark.parametrize("method", METHODS)
def test_a_sqlite_connection_made_in_init_serves_every_task(method, database, fresh_workers):
    out = jp.map(list(range(200)), lookup, jobs=2, partitions=10, start_method=method,
                 worker_init=connect, worker_init_args=(database,), progress=False)
    assert [v for *_, v in out] == [f"v{k}" for k in range(200)]
    per_pid = {}
    for pid, con_id, _ in out:
        per_pid.setdefault(pid, set()).add(con_id)
    assert all(len(ids) == 1 for ids in per_pid.values()), per_pid  # one connection each


def test_threads_make_one_state_per_thread_so_sqlite_works(database, log):
    def lookup_logged(k):
        return lookup(k)

    out = jp.map(list(range(200)), lookup_logged, backend="threads", jobs=3, partitions=9,
                 worker_init=lambda path: (record_init(str(log)), connect(path))[1],
                 worker_init_args=(database,), progress=False)
    assert [v for *_, v in out] == [f"v{k}" for k in range(200)]
    threads = [line.split()[1] for line in log.read_text().splitlines()]
    assert len(threads) == len(set(threads)) <= 3  # once per worker thread


def test_inline_runs_init_once_in_the_caller(log):
    out = jp.map(list(range(10)), seen, backend="inline", worker_init=record_init,
                 worker_init_args=(str(log), "here"), progress=False)
    assert {(p, s, v) for p, s, v in out} == {(os.getpid(), os.getpid(), "here")}
    assert init_calls(log) == Counter({str(os.getpid()): 1})


@pytest.mark.parametrize("method", METHODS)
def test_a_failing_init_is_one_error_naming_it_and_the_worker(method, fresh_workers):
    with pytest.raises(SetupError, match="no database here") as info:
        jp.map(list(range(20)), seen, jobs=2, start_method=method, worker_init=failing_setup,
               progress=False, retries=2, on_error="skip")  # neither retried nor skipped
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "worker_init failing_setup() failed in a worker (pid " in notes, notes
    assert "partition" not in notes, notes
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "failing_setup" in info.value.__cause__.traceback_text
    assert "partition" not in str(info.value.__cause__)


def die_once(flag: str, x: int) -> int:
    time.sleep(0.02)  # both workers stay busy: the retry needs a new one
    if x == 13 and not os.path.exists(flag):
        Path(flag).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 2


def test_a_replacement_worker_runs_init_again(tmp_path, log, fresh_workers):
    flag = str(tmp_path / "killed")
    out = jp.map(list(range(40)), lambda x: (os.getpid(), jp.worker_state()["pid"],
                                             die_once(flag, x)),
                 jobs=2, partitions=8, start_method="fork", retries=1,
                 worker_init=record_init, worker_init_args=(str(log),), progress=False)
    assert [v for *_, v in out] == [2 * x for x in range(40)]
    assert all(p == s for p, s, _ in out)
    calls = init_calls(log)
    assert len(calls) == 3 and set(calls.values()) == {1}, calls  # 2 workers + the new one


@pytest.mark.parametrize("method", METHODS)
def test_max_tasks_per_worker_replaces_workers_results_unchanged(method, log, fresh_workers):
    df = pd.DataFrame({"a": range(120)})
    pids = jp.map_partitions(df, pid_of_partition, jobs=2, partitions=12, start_method=method,
                             max_tasks_per_worker=3, worker_init=record_init,
                             worker_init_args=(str(log),), progress=False)
    partitions_per_pid = pids.value_counts() // 10  # 12 partitions of 10 rows
    assert partitions_per_pid.max() <= 3 and partitions_per_pid.sum() == 12, partitions_per_pid
    assert len(partitions_per_pid) >= 4
    assert set(init_calls(log)) == {str(p) for p in pids.unique()}  # each new one ran init
    assert set(init_calls(log).values()) == {1}
    doubled = jp.apply(df, lambda r: r.a * 2, axis=1, jobs=2, partitions=12,
                       start_method=method, max_tasks_per_worker=2, progress=False,
                       inline_fallback=False)
    pd.testing.assert_series_equal(doubled, df.apply(lambda r: r.a * 2, axis=1))


def test_bad_values_are_one_line_errors():
    with pytest.raises(UsageError, match="worker_init must be a function"):
        jp.map([1, 2], seen, worker_init=5)
    with pytest.raises(UsageError, match="max_tasks_per_worker must be a whole number"):
        jp.map([1, 2], seen, max_tasks_per_worker=0)
    with pytest.raises(UsageError, match="worker_state"):
        jp.worker_state()


def test_a_connection_that_cannot_travel_suggests_worker_init():
    con = sqlite3.connect(":memory:")

    def query(v):
        return con.execute("select ?", (v,)).fetchone()[0]

    with pytest.raises(jp.ShippingError, match="worker_init") as info:
        jp.map(list(range(8)), query, jobs=2, progress=False, inline_fallback=False)
    assert "'con'" in str(info.value) and "threads" not in str(info.value)
    con.close()


def test_the_accessor_takes_worker_init(log):
    df = pd.DataFrame({"a": range(30)})
    out = df.par.apply(lambda r: r.a + jp.worker_state()["pid"] * 0 + 1, axis=1, jobs=2,
                       worker_init=record_init, worker_init_args=(str(log),), progress=False)
    pd.testing.assert_series_equal(out, df.apply(lambda r: r.a + 1, axis=1))
    assert jp.last_run().backend == "processes" and set(init_calls(log).values()) == {1}


def test_max_tasks_per_worker_is_refused_where_workers_cannot_be_replaced():
    with pytest.raises(UsageError, match="max_tasks_per_worker replaces worker processes"):
        jp.map(list(range(8)), square_it, backend="threads", jobs=2, max_tasks_per_worker=2)
    # one job runs in the caller: nothing to replace, nothing refused
    assert jp.map(list(range(4)), square_it, jobs=1, max_tasks_per_worker=2) == [0, 1, 4, 9]


def square_it(x: int) -> int:
    return x * x


def imap_inside(n: int) -> list[int]:
    return list(jp.imap(square_it, range(n), jobs=2, progress=False))


def test_imap_inside_a_task_runs_in_that_worker():
    assert jp.map([3, 4], imap_inside, jobs=2, progress=False, inline_fallback=False) == [
        [0, 1, 4], [0, 1, 4, 9]]
