"""The loop of one process-pool worker: receive a task, run it, send the outcome back.

This module is what a spawned or forkserver worker imports (the pool preloads it), so it
imports only what runs in the worker; the kernel's side of the pool is
:mod:`jupyter_par.backends.processes`. Workers ignore SIGINT (Jupyter's interrupt reaches
the whole process group; the parent decides to stop them) and exit by themselves when the
parent disappears, removing its shared-memory segments.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import signal
import threading
import time
from typing import Any

import multiprocess

from ..machine import limits
from ..wire import shared_memory as transport
from ..wire import shipping
from ..wire.outcome import encode_outcome, loading_failed
from ..worker import allocator as _allocator
from ..worker import output as worker_output
from ..worker import task as _worker
from ..worker.task import TaskDone, TaskFailed

#: A worker with no new task for this long gives its freed memory back to the system.
_IDLE_SECONDS = 0.2
#: Marks a message that carries a running task's output, not its outcome (an outcome
#: is a pickle, which never starts with a zero byte).
OUTPUT_MARK = b"\x00out"


class _SlotWriter:
    """The worker's end of its progress slot."""

    def __init__(self, array: Any, index: int) -> None:
        self.array, self.index = array, index

    def publish(self, rows: int) -> None:
        self.array[self.index] = rows


#: Seconds between two checks that the parent still exists.
_WATCH_SECONDS = 0.2


def _parent_gone(parent_pid: int, first_ppid: int) -> bool:
    if os.getppid() != first_ppid:
        return True  # re-parented: the parent (or the forkserver) died, even if unreaped
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    # A killed kernel stays a zombie until whatever started it reaps it: dead all the same.
    try:
        with open(f"/proc/{parent_pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def _clean_up_after(parent_pid: int) -> None:
    """The parent died (a kernel killed or restarted mid-run): remove its shared-memory
    segments (results waiting for it, partitions not yet mapped); no one else can."""
    with contextlib.suppress(Exception):
        transport.sweep(pid=parent_pid)


def _watch_parent(parent_pid: int, first_ppid: int) -> None:
    """Exit when the parent is gone, cleaning up after it."""
    while not _parent_gone(parent_pid, first_ppid):
        time.sleep(_WATCH_SECONDS)
    _clean_up_after(parent_pid)
    os._exit(1)


def _pipe_closed(parent_pid: int, first_ppid: int) -> None:
    """The parent's end of the pipe closed: if the parent died (its files close just
    before it is gone), clean up after it."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if _parent_gone(parent_pid, first_ppid):
            _clean_up_after(parent_pid)
            return
        time.sleep(0.02)


def _status_bytes(key: str) -> int:
    """A ``kB`` figure of /proc/self/status in bytes (-1 if it cannot be read)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return -1


def _reset_peak() -> int:
    """Start measuring this worker's peak memory afresh; its memory now (-1: cannot)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # VmHWM := VmRSS (Linux >= 4.0)
    except OSError:
        return -1
    return _status_bytes("VmRSS:")


def segment_tag(index: int) -> str:
    """The name part of the segments that carry worker ``index``'s data and results."""
    return f"w{index}."


def _adopt_kernel_multiprocessing(keys: dict[str, bytes]) -> None:
    """Let the worker use the kernel's Manager proxies, of either package.

    Besides the keys: a forked worker holds copies of the connections the kernel's
    stdlib proxies opened, and would talk over the same sockets as the kernel (answers
    get mixed up). The stdlib's own forked children drop them through its after-fork
    hooks, which a ``multiprocess`` worker does not run; they run here.
    """
    import multiprocessing.process
    import multiprocessing.util

    multiprocess.current_process().authkey = keys["multiprocess"]
    multiprocessing.process.current_process().authkey = keys["multiprocessing"]
    multiprocessing.process._children = set()
    multiprocessing.util._finalizer_registry.clear()
    multiprocessing.util._run_after_forkers()


def serve(conn: Any, slots: Any, index: int, parent_pid: int, peaks: Any = None,
           threads: int | None = None, override_threads: bool = False,
           authkeys: dict[str, bytes] | None = None) -> None:
    """The loop of one worker process: receive a task, run it, send the outcome.

    ``peaks[index]`` receives, before each outcome is sent, how much memory the task
    took (its peak growth plus its result), or -1 where that cannot be measured.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if authkeys is not None:
        _adopt_kernel_multiprocessing(authkeys)
    limits.limit_threads(threads, override=override_threads)
    _worker.mark_worker_process()  # jp calls in here (any thread) run inline
    first_ppid = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent_pid, first_ppid), daemon=True).start()
    writer = _SlotWriter(slots, index)
    ops: dict[int, Any] = {}
    _allocator.keep_freed_memory()
    worker_output.forward_logging()
    sending = threading.Lock()  # the output thread and the loop share the pipe

    def send_output(task_id: int, text: str, records: tuple[Any, ...]) -> None:
        with sending:
            conn.send_bytes(OUTPUT_MARK + pickle.dumps((task_id, text, records),
                                                        protocol=shipping.PROTOCOL))

    while True:
        try:
            if not conn.poll(_IDLE_SECONDS):
                _allocator.give_back()  # nothing more to do for now: return freed memory
            message = conn.recv_bytes()
        except (EOFError, OSError):
            _pipe_closed(parent_pid, first_ppid)
            return
        kind, task_id, run_id, op_bytes, data_bytes = pickle.loads(message)
        if kind == "stop":
            return
        before = _reset_peak()
        try:
            if op_bytes is not None:
                ops.clear()
                code, payloads, keep, levels = op_bytes
                shipping.hold(payloads, keep)  # large globals, kept while unchanged
                worker_output.apply_levels(levels)
                ops[run_id] = shipping.loads(code)
            data = shipping.loads(data_bytes)
            if isinstance(data, transport.Packed):
                data = transport.unpack(data)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent as the task's failure
            outcome: TaskDone | TaskFailed = _worker.run_task(task_id, loading_failed(exc), None)
        else:
            outcome = _worker.run_task(task_id, ops[run_id], data, slot=writer,
                                      capture_display=True,
                                      send_output=functools.partial(send_output, task_id))
        # Drop the partition before waiting: shared pages stay mapped while referenced.
        data = None
        result_bytes = transport.movable_bytes(getattr(outcome, "value", None))
        payload = encode_outcome(outcome, segment_tag(index), parent_pid)
        outcome = None
        if peaks is not None:
            peak = _status_bytes("VmHWM:") if before >= 0 else -1
            peaks[index] = -1 if peak < 0 else max(0, peak - before) + result_bytes
        try:
            with sending:
                conn.send_bytes(payload)
        except OSError:  # the parent is gone: the result has no one to go to
            _pipe_closed(parent_pid, first_ppid)
            return
        payload = None
