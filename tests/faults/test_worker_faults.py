"""Faults inside workers, through the Python API, under fork and spawn.

Each fault must end the call within a bounded time, with an error that names the
partition, leave the input unchanged, leave no worker busy, no child process and no
shared-memory segment behind, and the next call on the same warm pool must work.
The faulty functions live at module level so spawned workers can import them.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
from pool_checks import busy_workers

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.planning import operations
from jupyter_par.planning.partition import combine, split_rows
from jupyter_par.planning.plan import Plan
from jupyter_par.run import pipeline
from jupyter_par.run.options import resolve

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_shm_leak")]

ROWS, PARTS, BAD = 200, 50, 77  # row 77 lies in partition 19 (rows 76-79)
METHODS = ["fork", "spawn", "forkserver"]



def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"a": np.arange(ROWS), "s": [f"s{i}" for i in range(ROWS)]},
        index=pd.Index([f"r{i}" for i in range(ROWS)], name="id"),
    )


def ok(row):
    return row["a"] * 2


def raises(row):
    if row["a"] == BAD:
        msg = f"bad value {row['a']}"
        raise ValueError(msg)
    return row["a"]


def exits(row):
    if row["a"] == BAD:
        os._exit(1)
    return row["a"]


def segfaults(row):
    if row["a"] == BAD:
        faulthandler.disable()  # pytest's handler, inherited by fork, would dump stacks
        ctypes.string_at(0)
    return row["a"]


def out_of_memory(row):
    if row["a"] == BAD:
        bytearray(1 << 60)  # a real allocation failure, not a raised stand-in
    return row["a"]


def loops(row):
    while row["a"] == BAD:
        pass
    return row["a"]


def unsendable_result(row):
    if row["a"] == BAD:
        return (i for i in range(3))  # generators cannot be pickled, not even by dill
    return row["a"]


def socket_user():
    """A function holding an open socket; a closure travels by value, the socket with it."""
    connection = socket.socket()

    def uses_socket(row):
        return row["a"] + connection.fileno()

    uses_socket.connection = connection  # closed by the test
    return uses_socket


def slow(row):
    time.sleep(0.02)
    return row["a"]


def mutates(row):
    bad = row.name == f"r{BAD}"
    row["a"] = -1  # must not reach the caller's frame
    if bad:
        msg = "bad value after mutation"
        raise ValueError(msg)
    return row["a"]


# fault name -> (function, extra options, expected type, texts the message must contain)
FAULTS = {
    "exception": (raises, {}, ValueError, ["bad value 77", "partition 19 of 50", "'r77'"]),
    "os_exit": (exits, {}, jp.WorkerDiedError, ["partition 19 of 50", "exited with code 1"]),
    "segfault": (segfaults, {}, jp.WorkerDiedError, ["partition 19 of 50", "SIGSEGV"]),
    "memory_error": (out_of_memory, {}, MemoryError, ["partition 19 of 50", "'r77'"]),
    "infinite_loop": (loops, {"timeout": 1}, jp.PartitionTimeoutError,
                      ["partition 19 of 50", "timeout=1"]),
    "unsendable_result": (unsendable_result, {}, jp.ShippingError,
                          ["partition 19 of 50", "generator"]),
    "unshippable_function": (socket_user, {}, jp.ShippingError, ["'connection'", "socket"]),
    "input_mutation": (mutates, {}, ValueError, ["bad value", "partition 19 of 50"]),
}


def full_text(exc: BaseException) -> str:
    """The message and the notes, as a notebook shows them under the error line."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def options(method: str, **extra) -> dict:
    return {"jobs": 2, "start_method": method, "progress": False, **extra}


def check_next_run_works(method: str) -> None:
    df = frame()
    pd.testing.assert_series_equal(jp.apply(df, ok, axis=1, **options(method)),
                                   df.apply(ok, axis=1))
    assert not busy_workers()


@pytest.mark.parametrize(("method", "fault"), [(m, f) for m in METHODS for f in FAULTS])
def test_fault_in_worker(method, fault, report_time):
    func, extra, expected, texts = FAULTS[fault]
    if func is socket_user:
        func = socket_user()
    df = frame()
    before = df.copy(deep=True)
    check_next_run_works(method)  # workers warm, so the time below is the fault's own
    started = time.monotonic()
    with pytest.raises(expected) as info:
        jp.apply(df, func, axis=1, partitions=PARTS, **options(method, **extra))
    report_time(time.monotonic() - started)
    if hasattr(func, "connection"):
        func.connection.close()
    message = full_text(info.value)
    for text in texts:
        assert text in message, f"{text!r} missing from: {message}"
    pd.testing.assert_frame_equal(df, before)
    assert not busy_workers()
    check_next_run_works(method)


@pytest.mark.parametrize("method", METHODS)
def test_worker_killed_from_outside(method, report_time):
    df = frame()
    before = df.copy(deep=True)
    check_next_run_works(method)
    pool = backends.warm_backends()["processes"]
    victim = pool.pids()[0]
    killed_at: list[float] = []

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 10
        while not pool.rows_done() and time.monotonic() < deadline:
            time.sleep(0.01)
        killed_at.append(time.monotonic())
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    try:
        with pytest.raises(jp.WorkerDiedError) as info:
            jp.apply(df, slow, axis=1, partitions=PARTS, **options(method))
    finally:
        killer.join()
    report_time(time.monotonic() - killed_at[0])
    message = str(info.value)
    assert "SIGKILL" in message and f"pid {victim}" in message and "partition " in message
    pd.testing.assert_frame_equal(df, before)
    assert victim not in pool.pids()
    check_next_run_works(method)


@pytest.mark.parametrize("method", METHODS)
def test_cancel_event_stops_workers(method, report_time):
    df = frame()
    before = df.copy(deep=True)
    check_next_run_works(method)
    pool = backends.warm_backends()["processes"]
    busy_pids = pool.pids()
    cancel = threading.Event()
    cancelled_at: list[float] = []

    both_busy: list[bool] = []

    def cancel_when_busy() -> None:
        # Cancel once every worker holds a partition and one has done a row: partitions of
        # 50 rows of 20 ms keep both busy for about a second, so a worker cannot finish its
        # own (and rightly stay warm, idle) between this moment and the engine stopping it,
        # even on a loaded machine (with short partitions it could, and did under load).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = pool.rows_done()
            if len(done) == len(busy_pids) and any(done.values()):
                both_busy.append(True)
                break
            time.sleep(0.005)
        cancelled_at.append(time.monotonic())
        cancel.set()

    canceller = threading.Thread(target=cancel_when_busy)
    canceller.start()
    opts = resolve(**options(method))
    try:
        with pytest.raises(jp.CancelledError):
            pipeline.execute(Plan(split_rows(df, len(busy_pids) * 2), operations.RowApply(slow),
                                  combine, "cancel"), opts, sinks=[], cancel=cancel)
    finally:
        canceller.join()
    report_time(time.monotonic() - cancelled_at[0])
    assert both_busy, "the workers were never all busy at once within 30 s"
    assert not set(busy_pids) & set(pool.pids()), "workers that held a task are still alive"
    pd.testing.assert_frame_equal(df, before)
    check_next_run_works(method)


@pytest.mark.parametrize("method", METHODS)
def test_skip_reports_every_failed_partition(method):
    df = frame()
    with pytest.warns(jp.errors.PartialResultWarning, match="partition 19 of 50"):
        result = jp.apply(df, raises, axis=1, partitions=PARTS, on_error="skip",
                          **options(method))
    expected = df.apply(ok, axis=1).drop([f"r{i}" for i in range(76, 80)]) // 2
    pd.testing.assert_series_equal(result, expected)
    check_next_run_works(method)


def big_frame() -> pd.DataFrame:
    """About 19 MB of floats: partitions big enough to travel through shared memory."""
    rng = np.random.default_rng(1)
    return pd.DataFrame(rng.normal(size=(1_200_000, 2)), columns=["x", "y"])


def doubled_slowly(part):
    if part.index[0] == 600_000:  # the third of four partitions
        msg = "bad partition"
        raise ValueError(msg)
    time.sleep(0.3)
    return part * 2


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fault", ["exception", "sigkill"])
def test_large_partitions_leave_no_segment(method, fault, report_time):
    df = big_frame()
    before = df.copy(deep=True)
    check_next_run_works(method)
    pool = backends.warm_backends()["processes"]
    killer = None
    if fault == "sigkill":
        victim = pool.pids()[1]

        def kill_when_busy() -> None:
            deadline = time.monotonic() + 10
            while not pool.rows_done() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
    started = time.monotonic()
    try:
        with pytest.raises(jp.WorkerDiedError if killer else ValueError):
            jp.map_partitions(df, doubled_slowly, partitions=4, **options(method))
    finally:
        if killer:
            killer.join()
    report_time(time.monotonic() - started)
    pd.testing.assert_frame_equal(df, before)
    assert not busy_workers()
    check_next_run_works(method)
