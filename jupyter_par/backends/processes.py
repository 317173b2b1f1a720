"""Worker processes of the dill-based ``multiprocess`` package, kept warm between runs.

Each worker owns one duplex pipe and one slot of a shared integer array. The parent
waits on the pipes *and* the process sentinels at once, so a worker that dies
(killed, segfault, out of memory) is seen at once instead of waited on forever, as
``multiprocessing.Pool`` would. Workers ignore SIGINT: Jupyter's interrupt reaches the
whole process group, and it is the parent that decides to stop them. A worker whose
parent disappears exits by itself.

Guardrails for real machines: a worker starts only when a partition needs it (never
more workers than partitions); each keeps native thread pools (BLAS, OpenMP) to its
share of the CPUs; partitions are sent only while their estimated footprint fits in
the memory left (:mod:`jupyter_par.machine.budget`); and a worker killed by the out-of-memory
killer is reported as such, with the size of its partition.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import select
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import multiprocess
from multiprocess.connection import wait

from ..machine import limits
from ..machine.budget import MemoryBudget, mb
from ..wire import shared_memory as transport
from ..wire import shipping
from ..wire.outcome import decode_outcome
from ..worker import output as worker_output
from ..worker.task import TaskFailed
from .base import Backend, Died, Event, Finished, Output, Task
from .process_worker import OUTPUT_MARK, segment_tag, serve

_PRELOAD = ["pandas", "jupyter_par.backends.process_worker"]


def default_start_method() -> str:
    """The platform's default start method (fork on Linux before Python 3.14)."""
    return multiprocess.get_start_method(allow_none=False)


def _kernel_authkeys() -> dict[str, bytes]:
    """The kernel's authentication keys of both multiprocessing packages.

    A Manager's proxy (``Manager().dict()``, ``Namespace()``) authenticates with the
    key of the process that uses it; a spawned worker draws its own stdlib key, so
    proxies of the kernel's stdlib managers would be rejected. Importing the stdlib
    package here fixes the kernel's key, for managers made later too.
    """
    import multiprocessing.process

    return {"multiprocess": bytes(multiprocess.current_process().authkey),
            "multiprocessing": bytes(multiprocessing.process.current_process().authkey)}


@contextlib.contextmanager
def _main_not_rerun(start_method: str) -> Iterator[None]:
    """Keep spawn/forkserver from re-running the caller's script in each worker.

    multiprocess re-imports ``__main__`` from its file in a spawned worker so that
    functions pickled by reference can be found; jupyter_par ships code by value, so
    the re-run is not needed, and it is what makes scripts without an
    ``if __name__ == "__main__"`` guard start workers recursively.
    """
    main = sys.modules.get("__main__")
    if start_method == "fork" or main is None or not hasattr(main, "__file__"):
        yield
        return
    saved_file, saved_spec = main.__file__, getattr(main, "__spec__", None)
    del main.__file__
    main.__spec__ = None
    try:
        yield
    finally:
        main.__file__, main.__spec__ = saved_file, saved_spec


def _death_reason(exitcode: int | None, memory: str = "", oom_killed: bool = False) -> str:
    if exitcode is None:
        return "stopped responding"
    if exitcode == -signal.SIGKILL:
        what = ("was killed by the out-of-memory killer (SIGKILL)" if oom_killed
                else "was killed (SIGKILL), most likely out of memory")
        return f"{what} ({memory})" if memory else what
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {
            "SIGSEGV": " (a segmentation fault in native code)",
            "SIGTERM": " (terminated from outside)",
        }.get(name, "")
        return f"was killed by {name}{hint}"
    return f"exited with code {exitcode}"


@dataclass
class _Proc:
    name: str
    process: Any
    conn: Any
    task_id: int | None = None
    run_id: int | None = None
    #: The large globals this worker holds: digest -> pickled size (see shipping.hold).
    held: dict[str, int] = field(default_factory=dict)
    #: Partitions this process has run (for max_tasks_per_worker).
    tasks: int = 0


class _Poller:
    """Waits on every worker's pipe and sentinel with one ``select.poll`` object kept
    for the pool's life: a worker's two descriptors are registered when it starts and
    unregistered when it is reaped. ``multiprocess.connection.wait`` builds (and tears
    down) a new selector on each call, which cost the kernel ~20 µs per result read.
    Where ``select.poll`` does not exist (Windows), ``wait`` it is.
    """

    def __init__(self) -> None:
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._owners: dict[int, tuple[_Proc, Any]] = {}

    def add(self, proc: _Proc) -> None:
        """Watch ``proc`` (again: a no-op while it is watched)."""
        if self._poll is None or proc.process.sentinel in self._owners:
            return
        for handle in (proc.conn, proc.process.sentinel):
            fd = handle if isinstance(handle, int) else handle.fileno()
            self._owners[fd] = (proc, handle)
            self._poll.register(fd, select.POLLIN)

    def discard(self, proc: _Proc) -> None:
        for fd in [fd for fd, (owner, _) in self._owners.items() if owner is proc]:
            del self._owners[fd]
            if self._poll is not None:
                self._poll.unregister(fd)

    def ready(self, busy: list[_Proc], timeout: float) -> set[Any]:
        """The pipes and sentinels of ``busy`` workers that are ready, as ``wait`` would
        return them. A worker that died while idle is forgotten here (its next task
        starts a new one), so that its sentinel does not wake every poll."""
        if self._poll is None:
            return set(wait([p.conn for p in busy] + [p.process.sentinel for p in busy],
                            timeout))
        deadline = time.monotonic() + timeout
        while True:
            ready: set[Any] = set()
            woken = self._poll.poll(max(0, math.ceil(timeout * 1000)))
            for fd, _ in woken:
                owner = self._owners.get(fd)
                if owner is None:
                    continue
                proc, handle = owner
                if proc.task_id is None:
                    self.discard(proc)
                else:
                    ready.add(handle)
            timeout = deadline - time.monotonic()
            if ready or not woken or timeout <= 0:
                return ready


class ProcessBackend(Backend):
    """A warm pool of ``multiprocess`` workers under fork, spawn or forkserver."""

    name = "processes"
    uses_processes = True
    can_stop_running = True
    local_fallback = True
    replaces_dead_workers = True
    one_worker_inline = True
    replaces_workers = True
    option_names = ("start_method", "blas_threads", "max_tasks_per_worker")

    def __init__(self, jobs: int, start_method: str | None = None,
                 blas_threads: int | None = None, max_tasks_per_worker: int | None = None,
                 **options: Any) -> None:
        # Checked once, with the other options (jupyter_par.run.options).
        method = start_method or default_start_method()
        super().__init__(jobs, start_method=method, blas_threads=blas_threads,
                         max_tasks_per_worker=max_tasks_per_worker, **options)
        self.start_method = method
        self.max_tasks = max_tasks_per_worker
        self.blas_threads = limits.threads_per_worker(jobs, blas_threads)
        self._ctx = multiprocess.get_context(method)
        self._procs: list[_Proc | None] = [None] * jobs
        self._slots: Any = None
        self._peaks: Any = None
        self._op: tuple[int, bytes, dict[str, bytes], dict[str, int]] | None = None
        self._budget = MemoryBudget(jobs)
        self._full_count = transport.full_count
        self._oom_kills = 0
        self._warned_full: int | None = None
        self._poller = _Poller()

    def start(self) -> None:
        """Make the pool ready. Workers start when partitions first need them (all of
        them at once when a run has enough partitions), never more than partitions."""
        if self.start_method == "forkserver":
            self._ctx.set_forkserver_preload(_PRELOAD)
        transport.sweep_orphans()  # segments of an earlier kernel killed with its workers
        self._slots = self._ctx.RawArray("q", self.jobs)
        self._peaks = self._ctx.RawArray("q", self.jobs)

    def _spawn(self, index: int) -> _Proc:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=serve,
            args=(child_end, self._slots, index, os.getpid(), self._peaks, self.blas_threads,
                  self.options.get("blas_threads") is not None, _kernel_authkeys()),
            name=f"jupyter_par-worker-{index}",
        )
        with _main_not_rerun(self.start_method), warnings.catch_warnings():
            # Python 3.12+ warns at each fork of a process that has threads (a kernel
            # always has some, and so does the pool): the same fork as on 3.11, and a
            # warning about jupyter_par's start method, not the user's code, which
            # must see the warnings a serial run gives (spawn/forkserver avoid forking).
            warnings.filterwarnings("ignore", r"This process \(pid=\d+\) is multi-threaded",
                                    DeprecationWarning)
            process.start()
        child_end.close()
        proc = _Proc(str(index), process, parent_end)
        self._poller.add(proc)
        return proc

    @property
    def workers(self) -> list[str]:
        return [str(i) for i in range(self.jobs)]

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [p.process.pid for p in self._procs if p is not None and p.process.is_alive()]

    def idle_workers(self) -> int:
        idle = sum(1 for p in self._procs if p is None or p.task_id is None)
        return self._budget.room(idle)

    def begin_run(self, run_id: int, op: Any = None, cancel: Any = None) -> None:
        """Serialize the run's operation once; each worker receives it with its first task.

        Large globals the operation reads travel apart, once per warm worker while their
        content is unchanged.
        """
        self._op = None
        if op is not None:
            externals: dict[str, bytes] = {}
            self._op = (run_id, shipping.dumps_code(op, externals=externals), externals,
                        worker_output.kernel_levels())
            self._budget.begin_run()
            self._full_count = transport.full_count
            self._oom_kills = limits.oom_kills()

    def end_run(self, run_id: int) -> None:
        """Let go of the run's code and large globals (the workers keep what they hold)."""
        if self._op is not None and self._op[0] == run_id:
            self._op = None
    def _free_index(self) -> int:
        """An idle live worker if there is one, else a slot with no worker yet."""
        live = [i for i, p in enumerate(self._procs) if p is not None and p.task_id is None]
        if live:
            return live[0]
        return next(i for i, p in enumerate(self._procs) if p is None)

    def _warn_if_shm_full(self) -> None:
        if transport.full_count == self._full_count:
            return
        self._full_count = transport.full_count
        run = self._op[0] if self._op else None
        if self._warned_full == run:
            return  # one warning per run
        self._warned_full = run
        warnings.warn(
            f"/dev/shm has {mb(transport.free_bytes())} free of {mb(transport.size_bytes())}: "
            "partitions that do not fit move through pipes instead (slower, same result); "
            "give the container more shared memory (docker run --shm-size=2g)",
            transport.SharedMemoryWarning, stacklevel=2)

    def submit(self, task: Task) -> str:
        index = self._free_index()
        proc = self._procs[index]
        if proc is None or not proc.process.is_alive():
            if proc is not None:
                self._reap(proc)
            proc = self._procs[index] = self._spawn(index)
        else:
            self._poller.add(proc)  # forgotten if its pipe woke a poll while it was idle
        op_bytes = None
        if proc.run_id != task.run_id:
            if self._op is None or self._op[0] != task.run_id:
                # The engine ships the operation once, in begin_run, before any task of a run.
                msg = f"task of run {task.run_id} submitted before begin_run shipped its operation"
                raise RuntimeError(msg)
            _, code, externals, levels = self._op
            missing = {t: b for t, b in externals.items() if t not in proc.held}
            proc.held = shipping.plan_hold(proc.held, externals)
            op_bytes = (code, missing, tuple(proc.held), levels)
        # Large numeric partitions travel through shared memory, not the pipe; Arrow
        # columns pickled (cheaper to send than a fresh segment's pages, see pack).
        packed = (transport.pack(task.data, name=transport.new_name(segment_tag(index)),
                                 arrow=False)
                  if transport.packable(task.data) else None)
        self._warn_if_shm_full()
        data_bytes = shipping.dumps_data(task.data if packed is None else packed,
                                         what=f"partition {task.task_id}")
        self._slots[index] = 0
        self._peaks[index] = -1
        self._budget.started(proc.name, task.task_id, proc.process.pid or 0,
                             len(data_bytes) + (packed.size if packed is not None else 0))
        message = pickle.dumps(("task", task.task_id, task.run_id, op_bytes, data_bytes),
                               protocol=shipping.PROTOCOL)
        # Busy before the first byte goes: an interrupt during or right after the send must
        # find this worker among the running ones and stop it, never leave it computing a
        # partition the pool believes idle (or holding half a message in its pipe).
        proc.task_id, proc.run_id = task.task_id, task.run_id
        proc.conn.send_bytes(message)
        return proc.name

    def poll(self, timeout: float) -> list[Event]:
        busy = [p for p in self._procs if p is not None and p.task_id is not None]
        if not busy:
            time.sleep(timeout)
            return []
        ready = self._poller.ready(busy, timeout)
        events: list[Event] = []
        for proc in busy:
            if proc.conn in ready:
                try:
                    payload = proc.conn.recv_bytes()
                except (EOFError, OSError):
                    events.append(self._died(proc))
                    continue
                if payload.startswith(OUTPUT_MARK):
                    task_id, text, records = pickle.loads(payload[len(OUTPUT_MARK):])
                    events.append(Output(proc.name, task_id, text, records, proc.run_id))
                    continue
                task_id, proc.task_id = proc.task_id, None
                used = self._peaks[int(proc.name)]
                self._budget.finished(proc.name, used if used >= 0 else None)
                outcome = decode_outcome(payload)
                if isinstance(outcome, TaskFailed):
                    proc.held = {}  # it may have failed to load them: send again
                assert outcome.task_id == task_id
                events.append(Finished(proc.name, outcome, proc.run_id))
                proc.tasks += 1
                if self.max_tasks is not None and proc.tasks >= self.max_tasks:
                    self._retire(proc)
            elif proc.process.sentinel in ready:
                events.append(self._died(proc))
        return events

    def _died(self, proc: _Proc) -> Died:
        proc.process.join(1.0)
        oom = limits.oom_kills() > self._oom_kills
        reason = _death_reason(proc.process.exitcode, self._budget.describe(proc.name), oom)
        self._oom_kills = limits.oom_kills()
        self._budget.released(proc.name)
        event = Died(proc.name, proc.task_id or 0, reason, proc.process.pid, proc.run_id)
        self._reap(proc)
        self._procs[int(proc.name)] = None
        return event

    def _retire(self, proc: _Proc) -> None:
        """Let an idle worker that ran its max_tasks_per_worker partitions exit; the next
        partition for its slot starts a fresh process (and runs worker_init there)."""
        with contextlib.suppress(Exception):
            proc.conn.send_bytes(pickle.dumps(("stop", 0, 0, None, None)))
        proc.process.join(1.0)
        self._reap(proc)
        self._procs[int(proc.name)] = None

    def rows_done(self) -> dict[str, int]:
        if self._slots is None:
            return {}
        return {
            p.name: self._slots[i]
            for i, p in enumerate(self._procs)
            if p is not None and p.task_id is not None
        }

    def _reap(self, proc: _Proc) -> None:
        self._poller.discard(proc)
        self._budget.released(proc.name)
        if proc.process.is_alive():
            proc.process.terminate()
            proc.process.join(1.0)
        if proc.process.is_alive():
            proc.process.kill()
            proc.process.join(1.0)
        # Once it is gone: segments it never mapped, or results it never sent.
        transport.sweep(tag=segment_tag(int(proc.name)))
        with contextlib.suppress(Exception):
            proc.conn.close()
        with contextlib.suppress(Exception):
            proc.process.close()

    def stop_worker(self, worker: str) -> None:
        index = int(worker)
        proc = self._procs[index]
        if proc is not None:
            self._reap(proc)
            self._procs[index] = None

    def stop_running(self) -> None:
        busy = [p for p in self._procs if p is not None and p.task_id is not None]
        for proc in busy:  # signal all first, then wait: stopping takes one grace period
            proc.process.terminate()
        for proc in busy:
            self.stop_worker(proc.name)

    def shutdown(self) -> None:
        live = [p for p in self._procs if p is not None]
        for proc in live:
            with contextlib.suppress(Exception):
                proc.conn.send_bytes(pickle.dumps(("stop", 0, 0, None, None)))
        deadline = time.monotonic() + 2.0
        for proc in live:
            proc.process.join(max(0.0, deadline - time.monotonic()))
            self._reap(proc)
        self._procs = [None] * self.jobs

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "start_method": self.start_method, "pids": self.pids(),
                "blas_threads": self.blas_threads}
