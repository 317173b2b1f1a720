"""Threads in the kernel's own process, for I/O-bound work (downloads, queries).

Nothing is shipped: threads see the notebook's objects directly. A running thread
cannot be killed, so cancelling is cooperative: the next progress report in a
cancelled run raises, and a partition that never reports runs to its end, its result
discarded.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from ..worker import task as _worker
from .base import Backend, Event, Finished, Output, Task


class _ListSlot:
    def __init__(self, cells: list[int], index: int) -> None:
        self.cells, self.index = cells, index

    def publish(self, rows: int) -> None:
        self.cells[self.index] = rows


class ThreadBackend(Backend):
    """A warm set of worker threads, each with its own inbox."""

    name = "threads"
    uses_threads = True
    one_worker_inline = True

    def __init__(self, jobs: int, **options: Any) -> None:
        super().__init__(jobs, **options)
        self._inboxes: list[queue.SimpleQueue[Task | None]] = []
        self._events: queue.SimpleQueue[Finished | Output] = queue.SimpleQueue()
        self._busy: list[int | None] = [None] * jobs
        self._cells = [0] * jobs
        self._cancel = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads; they wait on their inboxes."""
        for i in range(self.jobs):
            inbox: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._loop, args=(i, inbox), name=f"jupyter_par-thread-{i}", daemon=True
            )
            self._inboxes.append(inbox)
            self._threads.append(thread)
            thread.start()

    def _loop(self, index: int, inbox: queue.SimpleQueue[Task | None]) -> None:
        slot = _ListSlot(self._cells, index)
        while (task := inbox.get()) is not None:
            def send(text: str, records: tuple[Any, ...], task: Task = task) -> None:
                self._events.put(Output(str(index), task.task_id, text, records, task.run_id))

            outcome = _worker.run_task(
                task.task_id, task.op, task.data, slot=slot, cancel=self._cancel, threaded=True,
                send_output=send,
            )
            self._busy[index] = None
            self._events.put(Finished(str(index), outcome, task.run_id))

    @property
    def workers(self) -> list[str]:
        return [str(i) for i in range(self.jobs)]

    def idle_workers(self) -> int:
        return self._busy.count(None)

    def begin_run(self, run_id: int, op: Any = None, cancel: Any = None) -> None:
        self._cancel.clear()

    def submit(self, task: Task) -> str:
        index = self._busy.index(None)
        self._busy[index] = task.task_id
        self._cells[index] = 0
        self._inboxes[index].put(task)
        return str(index)

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        try:
            events.append(self._events.get(timeout=timeout))
            while True:
                events.append(self._events.get_nowait())
        except queue.Empty:
            pass
        return events

    def rows_done(self) -> dict[str, int]:
        return {str(i): self._cells[i] for i, t in enumerate(self._busy) if t is not None}

    def stop_running(self) -> None:
        self._cancel.set()

    def shutdown(self) -> None:
        self._cancel.set()
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            thread.join(0.5)
