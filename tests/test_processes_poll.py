"""The process pool's waiting: one poller kept for the pool's life (issue 16).

Each worker's pipe and sentinel are registered when it starts and unregistered when it
is reaped; a worker that dies while idle must neither be reported as a failure of any
partition nor wake every later poll (a busy loop), and its slot must get a fresh worker.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from jupyter_par.backends import Died, Finished, Task
from jupyter_par.backends.processes import ProcessBackend

pytestmark = pytest.mark.timeout(60)


def slow_double(x: int) -> int:
    time.sleep(x / 10)
    return 2 * x


def _drain(pool: ProcessBackend, pending: int) -> list:
    events: list = []
    deadline = time.monotonic() + 30
    while len(events) < pending and time.monotonic() < deadline:
        events += pool.poll(0.2)
    return events


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_worker_dead_while_idle_is_replaced_without_waking_polls(method: str) -> None:
    pool = ProcessBackend(2, start_method=method)
    pool.start()
    try:
        pool.begin_run(1, slow_double)
        names = {pool.submit(Task(i, 1, slow_double, 0)) for i in range(2)}
        assert names == {"0", "1"}
        first = _drain(pool, 2)
        assert sorted(e.outcome.value for e in first) == [0, 0]
        assert all(isinstance(e, Finished) for e in first)

        victim = pool._procs[1].process.pid
        os.kill(victim, signal.SIGKILL)  # idle: no partition of it is lost
        pool._procs[1].process.join(10)

        pool.submit(Task(2, 1, slow_double, 10))  # one second of work on worker 0
        started = time.monotonic()
        # Worker 1's sentinel is readable from now on: the poll must still wait.
        assert pool.poll(0.5) == []
        assert time.monotonic() - started >= 0.45
        events = _drain(pool, 1)
        assert [(type(e), e.outcome.value) for e in events] == [(Finished, 20)]

        # Both slots again: the dead one's slot gets a new worker that answers.
        pool.submit(Task(3, 1, slow_double, 1))
        pool.submit(Task(4, 1, slow_double, 2))
        events = _drain(pool, 2)
        assert not any(isinstance(e, Died) for e in events)
        assert sorted(e.outcome.value for e in events) == [2, 4]
        assert victim not in pool.pids() and len(pool.pids()) == 2
        pool.end_run(1)
    finally:
        pool.shutdown()


def test_a_worker_killed_while_busy_is_still_reported() -> None:
    pool = ProcessBackend(2, start_method="fork")
    pool.start()
    try:
        pool.begin_run(1, slow_double)
        pool.submit(Task(0, 1, slow_double, 100))  # ten seconds
        victim = pool._procs[0].process.pid
        os.kill(victim, signal.SIGKILL)
        events = _drain(pool, 1)
        assert len(events) == 1 and isinstance(events[0], Died)
        assert events[0].task_id == 0 and "SIGKILL" in events[0].reason
        pool.end_run(1)
    finally:
        pool.shutdown()
