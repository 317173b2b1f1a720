"""Per-worker setup: ``worker_init`` runs once in a worker, its value is ``worker_state()``.

Setup that is costly or cannot travel (a model, a database connection, a tokenizer)
is made where the tasks run instead of being shipped with every call. The run's
operation is wrapped in :class:`WithWorkerInit`, so every backend gets the behaviour
without knowing of it: the first task a worker runs calls the init and keeps its value,
keyed by the init's digest (the function and its arguments, pickled), so a warm worker
reused by a run with another init runs that one, and a replacement worker (a fresh
process) runs it again.

Where a worker is a process (the pool, Dask) the value is the process's, made once under
a lock; where workers are threads of the caller (threads, inline) each thread makes its
own, since what needs per-worker setup (a sqlite connection) is often bound to its thread.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from ..shown_errors import add_note

#: Marks an exception raised by a worker_init, with the init's name (travels with it).
INIT_FAILED = "_jupyter_par_worker_init"

_process_state: dict[str, Any] = {}
_process_lock = threading.Lock()
_thread_state = threading.local()
_current = threading.local()


def init_name(init: Any) -> str:
    """The name a user knows the init by."""
    return getattr(init, "__qualname__", None) or getattr(init, "__name__", None) or repr(init)


@dataclass(frozen=True)
class WithWorkerInit:
    """``op(part)`` after this worker ran ``init(*args)`` once; its value is worker_state().

    ``digest`` identifies the init and its arguments; ``per_thread`` keeps one value per
    thread (workers that are threads) instead of one per process.
    """

    op: Any
    init: Any
    args: tuple[Any, ...]
    digest: str
    per_thread: bool = False

    def _state(self) -> Any:
        if self.per_thread:
            held = getattr(_thread_state, "held", None)
            if held is None or held[0] != self.digest:
                _thread_state.held = None  # a failing init leaves no stale state behind
                _thread_state.held = (self.digest, self._run_init())
            return _thread_state.held[1]
        with _process_lock:
            if self.digest not in _process_state:
                _process_state.clear()  # one init's state per worker: the latest run's
                _process_state[self.digest] = self._run_init()
            return _process_state[self.digest]

    def _run_init(self) -> Any:
        try:
            return self.init(*self.args)
        except Exception as exc:
            name = init_name(self.init)
            where = (f"thread {threading.current_thread().name}" if self.per_thread
                     else f"pid {os.getpid()}")
            said = f"worker_init {name}() failed in a worker ({where}), before its first task"
            setattr(exc, INIT_FAILED, said)
            add_note(exc, f"jupyter_par: {said}")  # travels in the traceback text too
            raise

    def __call__(self, part: Any) -> Any:
        state = self._state()
        previous = getattr(_current, "state", _UNSET)
        _current.state = state
        try:
            return self.op(part)
        finally:
            _current.state = previous


_UNSET = object()


def worker_state() -> Any:
    """The value ``worker_init`` returned in this worker, for use inside a task.

    Examples
    --------
    >>> def connect(path):  # doctest: +SKIP
    ...     return sqlite3.connect(path)
    >>> def lookup(key):  # doctest: +SKIP
    ...     return jp.worker_state().execute("select v from t where k=?", (key,)).fetchone()
    >>> jp.map(keys, lookup, worker_init=connect, worker_init_args=("db.sqlite",))  # doctest: +SKIP
    """
    state = getattr(_current, "state", _UNSET)
    if state is _UNSET:
        from ..errors import UsageError

        msg = ("jp.worker_state() has no value here: it is set inside the tasks of a call "
               "given worker_init=... (e.g. jp.map(items, func, worker_init=setup))")
        raise UsageError(msg)
    return state


def init_failure(exc: BaseException | None, traceback_text: str = "") -> str | None:
    """What a task's failure says if a worker_init raised it (``None`` otherwise)."""
    said = getattr(exc, INIT_FAILED, None) if exc is not None else None
    if said is None:  # the exception could not travel: its traceback's note did
        mark = "jupyter_par: worker_init "
        said = next((line[len("jupyter_par: "):] for line in traceback_text.splitlines()
                     if line.startswith(mark)), None)
    return said
