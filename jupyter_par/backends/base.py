"""The one small interface every backend implements.

The engine hands a backend one partition at a time (:meth:`Backend.submit`) and asks
what happened (:meth:`Backend.poll`). A backend reports results and failures as
:class:`Finished` events, deaths as :class:`Died`, and what a running task printed so
far as :class:`Output`. Everything else (ordering, retries,
timeouts, progress, errors) is the engine's job, so a backend stays short.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from ..worker.task import TaskDone, TaskFailed


@dataclass(frozen=True)
class Task:
    """One partition to run: ``op(data)``, within the run ``run_id``."""

    task_id: int
    run_id: int
    op: Any
    data: Any


@dataclass(frozen=True)
class Finished:
    """A task ended, well or badly, on ``worker``."""

    worker: str
    outcome: TaskDone | TaskFailed
    #: The run the task belonged to: a straggler from an earlier run is dropped.
    run_id: int | None = None


@dataclass(frozen=True)
class Died:
    """``worker`` stopped existing while it held ``task_id``."""

    worker: str
    task_id: int
    reason: str
    pid: int | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class Output:
    """What the task ``task_id`` on ``worker`` printed (``text``) and logged (``records``,
    :class:`jupyter_par.worker.output.LogRecordData`) since its last ``Output``."""

    worker: str
    task_id: int
    text: str
    records: tuple[Any, ...] = ()
    run_id: int | None = None


Event = Finished | Died | Output


class Backend(ABC):
    """A set of workers that run tasks. Subclasses set the capability flags.

    Callers decide by these flags, never by a backend's name, so a backend written
    outside the package works wherever the built-in ones do.
    """

    name: str = "base"
    #: Workers are separate processes (code and data must be shipped).
    uses_processes: bool = False
    #: Workers are threads of the caller's process (they see its objects directly).
    uses_threads: bool = False
    #: A running task can be stopped from outside (timeouts, cancel).
    can_stop_running: bool = False
    #: The worker runs in the caller's own thread (debuggers work).
    in_caller: bool = False
    #: Workers can read this machine's shared memory (``shared=`` objects, segments).
    shares_host_memory: bool = True
    #: The pipeline may run a call in the kernel instead when moving data costs more
    #: than the work (only for local workers: a cluster asked for is a cluster used).
    local_fallback: bool = False
    #: A worker that died is replaced by the backend itself (a cluster's nanny decides).
    replaces_dead_workers: bool = False
    #: With one worker, run in the caller instead (nothing to gain, the debugger to lose).
    one_worker_inline: bool = False
    #: Workers are processes it can replace at will (``max_tasks_per_worker``).
    replaces_workers: bool = False
    #: The backend a call made inside one of this backend's tasks runs on.
    nested_backend: str = "inline"
    #: The run options (fields of :class:`jupyter_par.run.options.Options`) this backend reads.
    option_names: tuple[str, ...] = ()

    @classmethod
    def options_from(cls, options: Any) -> dict[str, Any]:
        """This backend's own options, read from a run's resolved options."""
        extra = getattr(options, "backend_kwargs", None) or {}
        return {name: extra[name] if name in extra else getattr(options, name, None)
                for name in cls.option_names}

    def __init__(self, jobs: int, **options: Any) -> None:
        self.jobs = jobs
        self.options = options

    def key(self) -> tuple[Any, ...]:
        """What makes two requests able to share this warm backend."""
        return (self.name, self.jobs, *sorted(self.options.items()))

    def start(self) -> None:  # noqa: B027 - optional hook
        """Start the workers (called once, before the first task)."""

    @property
    @abstractmethod
    def workers(self) -> list[str]:
        """Names of the workers, for the progress view."""

    @abstractmethod
    def idle_workers(self) -> int:
        """How many tasks can be submitted right now."""

    @abstractmethod
    def submit(self, task: Task) -> str:
        """Start ``task`` on an idle worker; return that worker's name."""

    @abstractmethod
    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for tasks to end; return what happened."""

    def rows_done(self) -> dict[str, int]:
        """Rows done so far in each worker's current task."""
        return {}

    def stop_running(self) -> None:  # noqa: B027 - optional hook
        """Stop every running task now (failure elsewhere, cancel, interrupt)."""

    def stop_worker(self, worker: str) -> None:
        """Stop the task running on ``worker`` (its partition timed out)."""
        self.stop_running()

    def begin_run(self, run_id: int, op: Any = None,  # noqa: B027 - optional hook
                  cancel: Any = None) -> None:
        """A run of ``op`` starts: ship it once, reset per-run state. ``cancel`` is the
        run's cancel event, for backends whose tasks run where the engine cannot stop them."""

    def end_run(self, run_id: int) -> None:  # noqa: B027 - optional hook
        """A run ended: drop what was cached for it."""

    def healthy(self) -> bool:
        """Whether this warm backend can serve another run as it is."""
        return True

    def reshape(self, other: Backend) -> bool:
        """Take ``other``'s shape in place (a new worker count) if possible; say if it did."""
        return False

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Stop every worker and release every resource."""

    def describe(self) -> dict[str, Any]:
        """Facts for the user: pids, start method, addresses."""
        return {"backend": self.name, "jobs": self.jobs}
