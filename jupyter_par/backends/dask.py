"""A Dask ``distributed`` cluster as a backend: the same runs, on many machines.

jupyter_par cuts the partitions itself and hands each one to ``Client.submit``; it
needs nothing of ``dask.dataframe``. Where the work goes and what it costs::

    kernel ──Client.submit(partition, pinned to one worker thread)──▶ dask worker
      ▲                                                                 │ _worker.run_task
      │◀── log_event(topic, rows) ──scheduler── subscribe_topic ◀───────┤ (prints captured)
      └◀── encoded TaskDone / TaskFailed (the future's result) ◀────────┘

* Code: the operation travels as dill bytes (scattered once per run to every worker,
  so that no task depends on another worker staying up) and each worker process loads
  it once, so notebook functions work as on the processes backend. Shared objects
  (``shared=``, ``--share``) travel inside it: a worker on another machine has no
  access to the kernel's shared memory.
* Placement: every task is pinned to a worker the backend picked, one partition per
  worker thread, so the progress view can name the worker (its address) the moment the
  task is submitted, and at most ``jobs`` partitions are in flight (the panel's slider
  on a shared cluster; a local cluster is scaled to ``jobs`` workers instead).
* Workers need jupyter_par and the packages the user's code imports: the task itself
  is jupyter_par's, and only the user's code travels by value.
* Dead workers: a task pinned to a worker that leaves the cluster would wait forever,
  so membership is checked while polling and the task is reported as died. A worker
  whose machine or network went down stays a member until the scheduler's TCP
  timeouts fire (a minute here); one whose last heartbeat (``last_seen``) is
  ``SILENT_AFTER`` seconds older than the other workers' is reported as lost sooner
  and gets no more partitions (a cluster of one worker waits for the scheduler).
* A lost scheduler: the client cancels every future when its connection drops and
  then tries to reconnect; the run ends at once with :class:`SchedulerUnreachableError`
  naming the partitions that were out, and the next run connects afresh.
* Stopping: Dask cannot stop a running task, so each run has a ``distributed.Event``
  that the task checks between row steps; a task that does not stop within a grace
  period has its worker restarted through its nanny.
* Security: the backend connects only to the address (or ``Client``) it was given and a
  local cluster listens on 127.0.0.1; a user's ``Client`` (with its TLS ``Security``)
  is used untouched and never closed.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask
import distributed
from distributed import Client

from ..errors import JupyterParError, JupyterParWarning, UsageError
from ..wire import shipping
from ..wire.outcome import decode_outcome
from ..worker import output as worker_output
from ..worker.task import TaskFailed
from . import dask_spawn, dask_worker
from .base import Backend, Died, Event, Finished, Output, Task
from .dask_worker import run_partition, still_executing

#: Seconds to wait for a cancelled task to notice before its worker is restarted.
GRACE = 2.0
#: Seconds between two membership checks (how fast a killed worker is noticed).
MEMBERSHIP_EVERY = 0.5
#: Seconds to wait for a worker restart to finish before the run returns anyway.
RESTART_WAIT = 1.0
#: Partitions larger than this are scattered to their worker instead of riding in the graph.
SCATTER_BYTES = 4 * 2**20
#: Seconds to wait for a scheduler to answer, or for a cluster to have any worker.
CONNECT_TIMEOUT = 20.0
#: Seconds without a heartbeat after which a worker holding a partition counts as lost.
SILENT_AFTER = 15.0
#: Seconds between two reads of the workers' heartbeats while partitions are out.
SILENT_CHECK_EVERY = 1.0


_LEFT = "left the Dask cluster (killed, crashed or its machine was lost)"


class SchedulerUnreachableError(JupyterParError, ConnectionError):
    """The Dask scheduler the user named could not be reached (or has no workers)."""


#: Packages whose versions must agree between the kernel and the workers: code and
#: data travel pickled by dill and cloudpickle, and are rebuilt by pandas there.
VERSIONED = ("jupyter_par", "pandas", "dill", "cloudpickle")


def _version_probe() -> Callable[[], dict[str, str | None]]:
    """A function giving its process's versions of :data:`VERSIONED` (``None``: missing).

    It reads the modules' own ``__version__``: what is imported, which is not always
    what the installed metadata says (a checkout on ``PYTHONPATH``). Made here, not
    at module level, so that cloudpickle sends it by value: a worker without
    jupyter_par can run it and say so.
    """
    names = VERSIONED

    def probe() -> dict[str, str | None]:
        import importlib

        found: dict[str, str | None] = {}
        for name in names:
            try:
                found[name] = str(getattr(importlib.import_module(name), "__version__", "?"))
            except Exception:  # noqa: BLE001 - missing, or broken: either way not usable
                found[name] = None
        return found

    return probe


def version_differences(kernel: dict[str, str | None], workers: dict[str, Any]) -> str:
    """One line naming each package whose version differs on some worker, or ''."""
    problems = []
    unreadable = sorted(a for a, v in workers.items() if not isinstance(v, dict))
    for name in VERSIONED:
        by_version: dict[str | None, list[str]] = {}
        for address, versions in sorted(workers.items()):
            if isinstance(versions, dict) and versions.get(name) != kernel.get(name):
                by_version.setdefault(versions.get(name), []).append(address)
        for version, addresses in by_version.items():
            where = addresses[0] if len(addresses) == 1 else (
                f"{len(addresses)} workers ({addresses[0]}, ...)")
            have = "missing" if version is None else version
            problems.append(f"{name} {have} on {where} (kernel: {kernel.get(name) or 'missing'})")
    if unreadable:
        problems.append(f"versions unreadable on {', '.join(unreadable)}")
    if not problems:
        return ""
    return ("the Dask workers' packages differ from this kernel's: " + "; ".join(problems)
            + ". Install the kernel's versions on every worker, or results may fail to load "
            "or differ.")


def _pre_spawn_environ() -> dict[str, str | None]:
    """The kernel's values of the variables a nanny sets before it starts a worker."""
    keys = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return {str(key): os.environ.get(str(key)) for key in keys}


def _in_band(op: Any) -> Any:
    """``op`` with its shared objects carried inside it, not in this machine's /dev/shm.

    A worker on another machine cannot map the kernel's shared memory; the caller
    should already prepare the bundle in band, and this makes sure of it.
    """
    from ..wire.shared_objects import SharedBundle, WithShared

    if isinstance(op, WithShared) and isinstance(op.bundle, SharedBundle) \
            and not op.bundle.in_band:
        return WithShared(op.op, SharedBundle(op.bundle.objects, in_band=True))
    return op


# -- the kernel's side ------------------------------------------------------------------
@dataclass
class _Flight:
    """A partition submitted to the cluster and not yet reported back."""

    task_id: int
    run_id: int
    slot: str
    address: str
    future: Any


def _last_seen(identity: dict[str, Any]) -> dict[str, Any]:
    """Each worker's last heartbeat (the scheduler's clock) from a scheduler identity."""
    return {a: w.get("last_seen") for a, w in identity.get("workers", {}).items()}


def _slot_names(members: dict[str, int], cap: int) -> list[tuple[str, str]]:
    """(progress name, address) for up to ``cap`` worker threads, spread over workers.

    A worker with one thread is named by its address; one with several gets a name per
    thread (``address#2``), since a progress row shows one partition at a time.
    """
    slots = []
    for thread in range(max(members.values(), default=0)):
        for address in sorted(members):
            if thread < members[address]:
                name = address if members[address] == 1 else f"{address}#{thread + 1}"
                slots.append((name, address))
    return slots[:cap]


class DaskBackend(Backend):
    """Partitions run as tasks on a Dask cluster: a given one, or a local one."""

    name = "dask"
    uses_processes = True
    can_stop_running = True
    shares_host_memory = False
    option_names = ("scheduler",)

    def __init__(self, jobs: int, scheduler: Any = None, **options: Any) -> None:
        if scheduler is not None and not isinstance(scheduler, str | Client):
            msg = (
                "scheduler must be an address such as 'tcp://10.0.0.5:8786', a "
                f"distributed.Client, or None for a local cluster; got {scheduler!r}"
            )
            raise UsageError(msg)
        super().__init__(jobs, scheduler=scheduler, **options)
        self.scheduler = scheduler
        self.token = uuid.uuid4().hex[:12]
        self.topic = f"jupyter_par-progress-{self.token}"
        self.client: Any = None
        self.cluster: Any = None
        self._kernel_environ: dict[str, str | None] | None = None
        self._members: dict[str, int] = {}
        self._checked = 0.0
        self._flights: dict[int, _Flight] = {}
        self._rows: dict[tuple[int, int], int] = {}
        # Output of running tasks, appended by the client's thread, read by poll.
        self._outputs: collections.deque[tuple[int, int, str, tuple[Any, ...]]] = \
            collections.deque()
        self._op: tuple[int, str, bytes] | None = None
        self._op_at: dict[str, Any] = {}  # worker address -> its copy of the operation
        self._cancel_names: dict[int, str] = {}
        self._levels: dict[str, int] = {}
        self._keys = itertools.count()
        self._empty_since: float | None = None
        self._retiring: set[str] = set()  # being restarted: no new partitions for them
        # Members and heartbeats fetched in the background; silent workers get no work.
        self._fetch_pending = False
        self._fetched: tuple[int, dict[str, int], dict[str, Any] | None] | None = None
        # Grows at each forced refresh: an answer fetched before it is older than what
        # the forced one got, and is dropped (a scheduler restarted meanwhile: old ports).
        self._generation = 0
        self._heard_at = 0.0
        self._silent: set[str] = set()
        # Set by every future as it completes: poll sleeps on it instead of on the cluster.
        self._wake = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Connect to the named scheduler, or start a loopback-only local cluster."""
        if self.scheduler is None:
            with warnings.catch_warnings():
                # Without a dashboard the scheduler still serves health checks; when its
                # default port is taken it says so, and takes another one on 127.0.0.1.
                warnings.filterwarnings("ignore", message="Port .* is already in use")
                self._kernel_environ = _pre_spawn_environ()
                # Its nannies' workers must not re-run a script's __main__ (dask_spawn).
                dask_spawn.hold()
                try:
                    self.cluster = distributed.LocalCluster(
                        n_workers=self.jobs, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None,
                        silence_logs=logging.ERROR, preload=[dask_worker.__name__],
                    )
                except BaseException:
                    dask_spawn.release()
                    raise
                self._restore_environ()
            self.client = Client(self.cluster, set_as_default=False)
        elif isinstance(self.scheduler, str):
            try:
                self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT,
                                     set_as_default=False)
            except (OSError, TimeoutError) as exc:
                tls = (" For TLS, pass scheduler=distributed.Client(address, security=...)."
                       if self.scheduler.startswith("tls://") else "")
                msg = (
                    f"could not reach the Dask scheduler at {self.scheduler!r}: {exc}. "
                    f"Check the address, and that `dask scheduler` runs there.{tls}"
                )
                raise SchedulerUnreachableError(msg) from exc
        else:
            if self.scheduler.status != "running":
                msg = (f"the distributed.Client given as scheduler is {self.scheduler.status}; "
                       "pass an open Client or the scheduler's address")
                raise UsageError(msg)
            self.client = self.scheduler
        self.client.subscribe_topic(self.topic, self._on_event)
        self._refresh(force=True)
        if self.cluster is None:  # a local cluster runs this very environment
            self._check_versions()

    def _check_versions(self) -> None:
        """Warn, in one line, where the workers' packages differ from the kernel's."""
        try:
            found = self.client.run(_version_probe(), on_error="return")
        except Exception as exc:  # noqa: BLE001 - a check must never stop the run
            warnings.warn(f"could not compare the Dask workers' package versions with this "
                          f"kernel's: {type(exc).__name__}: {exc}", JupyterParWarning,
                          stacklevel=4)
            return
        text = version_differences(_version_probe()(), found)
        if text:
            warnings.warn(text, JupyterParWarning, stacklevel=4)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """Rows done, or output, reported by a running task (on the client's own thread)."""
        _, msg = event
        with contextlib.suppress(KeyError, TypeError, ValueError):
            if msg["run"] not in self._cancel_names:  # a straggler of a run that ended
                return
            if "out" in msg:
                records = tuple(worker_output.LogRecordData(**r) for r in msg["logs"])
                self._outputs.append((msg["run"], msg["task"], msg["out"], records))
            else:
                self._rows[(msg["run"], msg["task"])] = int(msg["rows"])

    def reshape(self, other: Backend) -> bool:
        """Another ``jobs`` on the same cluster: scale the local one, or just cap in-flight."""
        same = other.options.get("scheduler") is self.scheduler or (
            isinstance(self.scheduler, str) and other.options.get("scheduler") == self.scheduler)
        if not isinstance(other, DaskBackend) or not same or self._flights:
            return False
        self.jobs = other.jobs
        if self.cluster is not None:
            self.cluster.scale(self.jobs)
            deadline = time.monotonic() + CONNECT_TIMEOUT
            while len(self.client.nthreads()) != self.jobs:
                if time.monotonic() > deadline:
                    return False  # replaced by a fresh cluster of the right size
                time.sleep(0.05)
        self._refresh(force=True)
        return True

    def healthy(self) -> bool:
        if self.client is None or self.client.status != "running":
            return False
        return self.cluster is None or self.cluster.status.name == "running"

    def shutdown(self) -> None:
        if self.client is None:
            return
        if self._connected():  # a lost scheduler would make each call wait for it
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(self.topic)
            with contextlib.suppress(Exception):
                self.client.cancel([f.future for f in self._flights.values()])
        self._flights.clear()
        if self.client is not self.scheduler:  # a user's Client stays theirs to close
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()
            dask_spawn.release()
            self._restore_environ()
        self.client = self.cluster = None

    def _restore_environ(self) -> None:
        """Undo what a local cluster's nannies set in the kernel's own environment.

        A nanny sets ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1``,
        ...) in its own process before it starts a worker; a local cluster's nannies
        live in the kernel, which would then run its own numpy on one thread.
        """
        for key, value in (self._kernel_environ or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # -- membership ---------------------------------------------------------------------
    def _refresh(self, *, force: bool = False) -> None:
        """Bring the members (and heartbeats) up to date.

        Forced (a run starts, the cluster was resized), it asks the scheduler and
        waits. Otherwise it never waits: the answer is fetched on the client's own
        event loop every ``MEMBERSHIP_EVERY`` seconds and used when it has come, so
        a scheduler that is slow, or dying (a call to it can wait out the connect
        timeout), never stalls the run, its timeouts or its cancel.
        """
        self._check_connected()
        now = time.monotonic()
        if force:
            self._checked = now
            self._generation += 1
            self._fetched = None
            try:
                self._members = dict(self.client.nthreads())
                self._heard(_last_seen(self.client.scheduler_info(n_workers=-1)))
            except (OSError, TimeoutError) as exc:  # CommClosedError is an OSError
                raise self._scheduler_lost(exc) from exc
        else:
            if not self._fetch_pending and now - self._checked >= MEMBERSHIP_EVERY:
                # Heartbeats (a larger answer) only while partitions are out.
                heartbeats = bool(self._flights) and now - self._heard_at >= SILENT_CHECK_EVERY
                self._checked, self._fetch_pending = now, True
                if heartbeats:
                    self._heard_at = now
                self.client.loop.add_callback(self._fetch, heartbeats, self._generation)
            fetched, self._fetched = self._fetched, None
            if fetched is not None and fetched[0] == self._generation:
                _, self._members, seen = fetched
                if seen is not None:
                    self._heard(seen)
        self._retiring &= set(self._members)

    async def _fetch(self, heartbeats: bool, generation: int) -> None:
        """Members (and heartbeats) as the scheduler has them; runs on the client's loop."""
        try:
            members = dict(await self.client.scheduler.ncores())
            seen = None
            if heartbeats:
                seen = _last_seen(await self.client.scheduler.identity(n_workers=-1))
            self._fetched = (generation, members, seen)
        except Exception:  # noqa: BLE001 - a lost scheduler is noticed by poll itself
            pass
        finally:
            self._fetch_pending = False

    def _heard(self, seen: dict[str, Any]) -> None:
        """Mark silent the workers whose last heartbeat lags the others' by too much.

        A worker is silent when its ``last_seen`` (the scheduler's clock) is more than
        ``SILENT_AFTER`` seconds older than the newest of all workers': no clock is
        compared with the kernel's, and a scheduler that is merely slow makes nobody
        silent. Silent workers get no new partitions and lose those they hold.
        """
        times = {a: t for a, t in seen.items() if isinstance(t, int | float)}
        newest = max(times.values(), default=0.0)
        # The scheduler's heartbeat interval grows with the cluster (n / 200 + 1 s).
        limit = max(SILENT_AFTER, 3 * (len(times) / 200 + 1))
        self._silent = {a for a, t in times.items() if newest - t > limit}

    def _connected(self) -> bool:
        return self.client is not None and self.client.status == "running"

    def _check_connected(self) -> None:
        if not self._connected():
            raise self._scheduler_lost()

    def _scheduler_lost(self, cause: BaseException | None = None) -> SchedulerUnreachableError:
        """The error for a scheduler that went away, naming the partitions that were out."""
        address = self.scheduler if isinstance(self.scheduler, str) else None
        with contextlib.suppress(Exception):
            address = self.client.scheduler.address
        out = sorted(self._flights)
        lost = (f"; partition(s) {', '.join(map(str, out))} were running and are lost"
                if out else "")
        self._flights.clear()
        why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        msg = (
            f"lost the connection to the Dask scheduler at {address}{why}{lost}; no result "
            "was stored. Check that the scheduler runs and can be reached, then run again "
            "(the next run connects afresh)."
        )
        return SchedulerUnreachableError(msg)

    def _check_heartbeats(self) -> list[str]:
        """Addresses of silent workers (see :meth:`_heard`) holding partitions."""
        return sorted(self._silent & {f.address for f in self._flights.values()})

    def _slots(self) -> list[tuple[str, str]]:
        usable = {a: n for a, n in self._members.items()
                  if a not in self._retiring and a not in self._silent}
        return _slot_names(usable, self.jobs)

    @property
    def workers(self) -> list[str]:
        self._refresh(force=True)
        return [name for name, _ in self._slots()]

    def idle_workers(self) -> int:
        self._refresh()
        busy = {f.slot for f in self._flights.values()}
        free = sum(1 for name, _ in self._slots() if name not in busy)
        return max(0, min(free, self.jobs - len(self._flights)))

    # -- runs ---------------------------------------------------------------------------
    def begin_run(self, run_id: int, op: Any = None, cancel: Any = None) -> None:
        """Send the operation's dill bytes to each worker once; each loads them once.

        Each worker gets its own copy (its own key), and its tasks depend on that copy
        only: a task never waits on data held by another worker, which could be gone
        (a single copy would be, once the scheduler trims replicas it thinks spare).
        """
        self._op = None
        self._op_at = {}
        if op is not None:
            self._op = (run_id, f"{self.token}-{run_id}", shipping.dumps_code(_in_band(op)))
            self._scatter_op(sorted({address for _, address in self._slots()}))
        self._cancel_names[run_id] = f"jupyter_par-cancel-{self.token}-{run_id}"
        # The kernel's logger levels, taken once per run: every task of it gets them.
        self._levels = worker_output.kernel_levels()

    def _scatter_op(self, addresses: list[str]) -> None:
        """One copy of the run's operation on each of ``addresses``, in one call."""
        assert self._op is not None
        if not addresses:
            return
        futures = self.client.scatter([self._op[2]] * len(addresses), workers=addresses,
                                      hash=False)
        holders = self.client.who_has(futures)
        for future in futures:
            for address in holders.get(future.key, ()):
                self._op_at.setdefault(address, future)

    def _op_on(self, address: str) -> Any:
        """The copy of the operation on ``address`` (sent now if it has none yet)."""
        if address not in self._op_at:
            self._op_at[address] = self.client.scatter(self._op[2] if self._op else b"",
                                                       workers=[address], hash=False)
        return self._op_at[address]

    def end_run(self, run_id: int) -> None:
        if self.cluster is not None:
            self._restore_environ()  # a worker restarted during the run set them again
        self._op = None
        self._op_at = {}
        self._rows = {k: v for k, v in self._rows.items() if k[0] != run_id}
        name = self._cancel_names.pop(run_id, None)
        if name is not None and self._connected():
            with contextlib.suppress(Exception):
                distributed.Event(name, client=self.client).clear()

    def submit(self, task: Task) -> str:
        if self._op is None or self._op[0] != task.run_id:
            # The engine ships the operation once, in begin_run, before any task of a run.
            msg = f"task of run {task.run_id} submitted before begin_run shipped its operation"
            raise RuntimeError(msg)
        op_key = self._op[1]
        busy = {f.slot for f in self._flights.values()}
        slot, address = next((n, a) for n, a in self._slots() if n not in busy)
        try:
            op_payload = self._op_on(address)
        except KeyError:  # the scheduler no longer knows that worker: ask who is there
            self._refresh(force=True)
            free = [(n, a) for n, a in self._slots() if n not in busy]
            if not free:
                raise
            slot, address = free[0]
            op_payload = self._op_on(address)
        data: Any = shipping.dumps_data(task.data, what=f"partition {task.task_id}")
        if len(data) > SCATTER_BYTES:  # big graphs are slow; send it straight to its worker
            data = self.client.scatter(data, workers=[address], hash=False)
        self._rows.pop((task.run_id, task.task_id), None)  # a retry starts from zero
        future = self.client.submit(
            run_partition, task.task_id, task.run_id, op_key, op_payload, data, self.topic,
            self._cancel_names[task.run_id], self._levels,
            key=f"jupyter_par-{self.token}-{task.task_id}-{next(self._keys)}",
            workers=[address], allow_other_workers=False, pure=False, retries=0,
        )
        future.add_done_callback(lambda _: self._wake.set())
        self._flights[task.task_id] = _Flight(task.task_id, task.run_id, slot, address, future)
        return slot

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        self._refresh()
        self._check_not_empty()
        silent = self._check_heartbeats()
        for flight in list(self._flights.values()):
            if flight.address not in self._members:
                events.append(self._lost(flight, _LEFT))
            elif flight.address in silent:
                events.append(self._lost(flight, (
                    f"has not been heard from for over {SILENT_AFTER:g} s (its machine or its "
                    "network is down, or it is frozen)")))
        events.extend(self._drain_outputs())
        futures = [f.future for f in self._flights.values()]
        if not futures:
            time.sleep(timeout)
            return events
        if not events and not any(f.done() for f in futures):
            self._wake.wait(timeout)
        self._wake.clear()
        # A lost scheduler connection cancels every future: say what happened instead.
        self._check_connected()
        events.extend(self._drain_outputs())  # what a task printed comes before its end
        for flight in list(self._flights.values()):
            if flight.future.done():
                del self._flights[flight.task_id]
                events.append(self._outcome(flight))
        return events

    def _drain_outputs(self) -> list[Event]:
        """The output events that came since the last poll."""
        events: list[Event] = []
        while self._outputs:
            run_id, task_id, text, records = self._outputs.popleft()
            flight = self._flights.get(task_id)
            worker = flight.slot if flight is not None else ""
            events.append(Output(worker, task_id, text, records, run_id))
        return events

    def _check_not_empty(self) -> None:
        """A cluster without workers would make the run wait forever: say so instead."""
        if self._members or self._flights:
            self._empty_since = None
            return
        now = time.monotonic()
        if self._empty_since is None:
            self._empty_since = now
        elif now - self._empty_since > CONNECT_TIMEOUT:
            address = self.client.scheduler.address
            msg = (
                f"the Dask cluster at {address} has had no workers for "
                f"{CONNECT_TIMEOUT:g} s; start some with `dask worker {address}`."
            )
            raise SchedulerUnreachableError(msg)

    def _outcome(self, flight: _Flight) -> Event:
        future = flight.future
        if future.status == "finished":
            return Finished(flight.slot, decode_outcome(future.result()))
        if future.status == "cancelled":
            # Its worker's data (the operation's copy) went with the worker: say so.
            self._refresh(force=True)
            if flight.address not in self._members:
                return Died(flight.slot, flight.task_id, _LEFT)
            return Died(flight.slot, flight.task_id, "had its task cancelled by the cluster")
        exc = future.exception()
        text = "".join(traceback.format_exception(type(exc), exc, future.traceback()))
        message = (
            f"the Dask worker could not run the partition: {type(exc).__name__}: {exc}. "
            "Install jupyter_par, and the packages your function imports, on every worker."
        )
        failed = TaskFailed(flight.task_id, None, type(exc).__qualname__, message, text)
        return Finished(flight.slot, failed)

    def _lost(self, flight: _Flight, reason: str) -> Died:
        del self._flights[flight.task_id]
        with contextlib.suppress(Exception):
            self.client.cancel([flight.future])
        return Died(flight.slot, flight.task_id, reason)

    def rows_done(self) -> dict[str, int]:
        return {
            f.slot: self._rows.get((f.run_id, f.task_id), 0) for f in self._flights.values()
        }

    # -- stopping -----------------------------------------------------------------------
    def stop_running(self) -> None:
        """Raise the run's cancel flag; restart the workers of tasks that ignore it."""
        flights = list(self._flights.values())
        self._flights.clear()
        if not flights or not self._connected():
            return  # without a scheduler there is nothing to cancel through
        for run_id in {f.run_id for f in flights}:
            name = self._cancel_names.get(run_id)
            if name is not None:
                distributed.Event(name, client=self.client).set()
        futures = [f.future for f in flights]
        deadline = time.monotonic() + GRACE
        while not all(f.done() for f in futures) and time.monotonic() < deadline:
            self._wake.wait(0.05)
            self._wake.clear()
        pending = [f for f in flights if not f.future.done()]
        self.client.cancel(futures)
        self._stop_executing(pending)

    def stop_worker(self, worker: str) -> None:
        """A partition timed out: cancel it, and restart its worker if it is running it."""
        flight = next((f for f in self._flights.values() if f.slot == worker), None)
        if flight is None or not self._connected():
            return
        del self._flights[flight.task_id]
        self.client.cancel([flight.future])
        self._stop_executing([flight])

    def _stop_executing(self, flights: list[_Flight]) -> None:
        """Restart the workers whose threads still run one of ``flights``.

        A cancelled future that had not started never will; one whose thread runs on
        (it ignored the flag) stays in its worker's ``executing`` set until the worker
        is restarted. The nanny gives the worker a few seconds to end gracefully, then
        kills it; the call returns sooner, and the worker takes no more partitions.
        """
        if not flights:
            return
        keys = [f.future.key for f in flights]
        addresses = sorted({f.address for f in flights})
        try:
            running = self.client.run(still_executing, keys, workers=addresses, on_error="ignore")
        except Exception:  # noqa: BLE001 - unsure: restart them all
            running = dict.fromkeys(addresses, True)
        stuck = sorted(address for address, found in running.items() if found)
        if not stuck:
            return
        self._retiring.update(stuck)
        try:
            self.client.restart_workers(stuck, timeout=RESTART_WAIT, raise_for_error=False)
        except ValueError as exc:  # workers started without a nanny cannot be restarted
            warnings.warn(
                f"could not stop the task(s) still running on {', '.join(stuck)}: {exc}. "
                "Their results are discarded; start workers with a nanny (the default) to "
                "let jupyter_par stop them.",
                JupyterParWarning, stacklevel=3,
            )
        self._refresh(force=True)

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "workers": sorted(self._members)}
        if self.client is not None:
            info["scheduler"] = self.client.scheduler.address
            if self.cluster is not None:  # local workers are this kernel's own children
                with contextlib.suppress(Exception):
                    info["pids"] = sorted(self.client.run(os.getpid).values())
        return info
