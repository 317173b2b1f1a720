"""Run each partition in the caller's own thread: for debugging, and for one worker.

Output is not captured and exceptions keep their live traceback, so ``breakpoint()``
inside the function and ``%debug`` after a failure work as in a serial run.
"""

from __future__ import annotations

import time
from typing import Any

from ..worker import task as _worker
from ..worker.task import TaskDone, TaskFailed
from .base import Backend, Event, Finished, Task


class InlineBackend(Backend):
    """One 'worker': the caller itself."""

    name = "inline"
    in_caller = True
    uses_threads = True

    def __init__(self, jobs: int = 1, **options: Any) -> None:
        super().__init__(1, **options)
        self._pending: Task | None = None
        self._cancel: Any = None

    def begin_run(self, run_id: int, op: Any = None, cancel: Any = None) -> None:
        """Rows reported by a task running here check the run's cancel event."""
        self._cancel = cancel

    @property
    def workers(self) -> list[str]:
        return ["kernel"]

    def idle_workers(self) -> int:
        return 0 if self._pending else 1

    def submit(self, task: Task) -> str:
        self._pending = task
        return "kernel"

    def poll(self, timeout: float) -> list[Event]:
        task, self._pending = self._pending, None
        if task is None:
            return []
        ctx = _worker.TaskContext(cancel=self._cancel, last_flush=time.monotonic())
        previous = _worker.enter(ctx)
        started = time.perf_counter()
        caught: list[Any] = []
        try:
            # Warnings are kept for the caller to raise once each, pointing at its call;
            # the caller's filters still apply here (an "error" filter raises at once).
            with _worker.task_scope(), _worker.recording_warnings() as caught:
                value = task.op(task.data)
        except Exception as exc:  # noqa: BLE001 - the live exception goes to the engine
            outcome: TaskDone | TaskFailed = TaskFailed(
                task.task_id, exc, type(exc).__qualname__, str(exc), "",
                ctx.row_label, ctx.has_row_label, warnings=tuple(dict.fromkeys(caught)),
            )
        else:
            outcome = TaskDone(task.task_id, value, warnings=tuple(dict.fromkeys(caught)),
                               seconds=time.perf_counter() - started)
        finally:
            _worker.leave(previous)
        return [Finished("kernel", outcome, task.run_id)]
