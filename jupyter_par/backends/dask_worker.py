"""What runs inside a Dask worker for jupyter_par: the task, its progress and cancel flag.

Kept apart from :mod:`jupyter_par.backends.dask` (the kernel's side) so that a worker
imports only this and the engine's worker helpers. A local cluster's workers preload
this module (:func:`dask_setup`); a remote cluster's workers import it when the first
task arrives, so they need jupyter_par installed.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from typing import Any

import distributed
from distributed import get_worker

from ..wire import shipping
from ..wire.outcome import encode_outcome, loading_failed
from ..worker import output as worker_output
from ..worker import task as _worker

#: Seconds between two progress events from one task (about ten a second).
EVENT_EVERY = 0.1
#: Seconds between two checks of the cancel flag by a running task.
CANCEL_EVERY = 0.2

_ops: dict[str, Any] = {}
_ops_lock = threading.Lock()


def _load_op(key: str, payload: bytes) -> Any:
    """The run's operation, unpickled once per worker process and run."""
    with _ops_lock:
        op = _ops.get(key)
        if op is None:
            _ops.clear()
            op = _ops[key] = shipping.loads(payload)
        return op


def dask_setup(worker: Any) -> None:
    """Preload of a local cluster's workers: leave Ctrl-C to the kernel.

    Jupyter's interrupt signals the kernel's whole process group, which holds a local
    cluster's worker processes too, and they would die of it; the kernel stops their
    tasks through the run's cancel flag instead.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _EventSlot:
    """Publishes rows done as scheduler events; the scheduler adds the worker's address."""

    def __init__(self, worker: Any, topic: str, run_id: int, task_id: int) -> None:
        self.worker, self.topic, self.run_id, self.task_id = worker, topic, run_id, task_id
        self.last = 0.0

    def publish(self, rows: int) -> None:
        now = time.monotonic()
        if rows == 0 or now - self.last >= EVENT_EVERY:  # 0: the task has started
            self.last = now
            self.worker.log_event(self.topic, {"run": self.run_id, "task": self.task_id,
                                               "rows": rows})


class _CancelFlag:
    """The run's ``distributed.Event``, asked at most every CANCEL_EVERY seconds."""

    def __init__(self, name: str) -> None:
        self.name, self.event, self.checked, self.state = name, None, 0.0, False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self.state and now - self.checked >= CANCEL_EVERY:
            self.checked = now
            if self.event is None:
                self.event = distributed.Event(self.name)
            self.state = self.event.is_set()
        return self.state


def run_partition(task_id: int, run_id: int, op_key: str, op_payload: bytes,
                  data_payload: bytes, topic: str, cancel_name: str,
                  levels: dict[str, int] | None = None) -> bytes:
    """The Dask task: run one partition through ``_worker.run_task``; return the outcome.

    What it prints and logs goes to the kernel as events on ``topic`` while it runs
    (``{"run", "task", "out", "logs"}``), as its progress does.
    """
    worker = get_worker()
    worker_output.forward_logging()
    # The cluster's own loggers keep the levels the cluster gave them.
    worker_output.apply_levels(levels, keep=("distributed", "tornado"))

    def send_output(text: str, records: tuple[Any, ...]) -> None:
        worker.log_event(topic, {"run": run_id, "task": task_id, "out": text,
                                 "logs": [dataclasses.asdict(r) for r in records]})

    try:
        op = _load_op(op_key, op_payload)
        data = shipping.loads(data_payload)
    except BaseException as exc:  # noqa: BLE001 - reported to the kernel as the task's failure
        return encode_outcome(_worker.run_task(task_id, loading_failed(exc), None))
    outcome = _worker.run_task(
        task_id, op, data, slot=_EventSlot(worker, topic, run_id, task_id),
        cancel=_CancelFlag(cancel_name), threaded=worker.state.nthreads > 1,
        capture_display=not _in_the_kernel(), send_output=send_output,
    )
    return encode_outcome(outcome)


def _in_the_kernel() -> bool:
    """Whether this Dask worker is a thread of the kernel itself (``LocalCluster(processes=
    False)``): then ``display()`` reaches the notebook as it does from the threads backend,
    and the kernel's display machinery must not be replaced by a worker's recorder."""
    shell = sys.modules.get("IPython.core.interactiveshell")
    return shell is not None and shell.InteractiveShell.initialized()


def still_executing(keys: list[str], dask_worker: Any = None) -> bool:
    """Whether this worker's threads still run one of ``keys`` (run through Client.run)."""
    wanted = set(keys)
    return any(ts.key in wanted for ts in dask_worker.state.executing)
