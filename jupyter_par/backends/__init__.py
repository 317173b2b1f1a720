"""The backend registry: a name → factory table, and the warm instances.

Optional engines (dask) are imported only when asked for, and a missing one says
what to install. One warm instance is kept per backend name; asking for another
shape (more workers, another start method) replaces it.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Any

from ..errors import BackendUnavailableError, UsageError
from ..wire.outcome import decode_outcome, encode_outcome
from ..worker.task import ProgressSlot, TaskDone, TaskFailed, run_task
from .base import Backend, Died, Event, Finished, Output, Task


def _processes() -> type[Backend]:
    from .processes import ProcessBackend

    return ProcessBackend


def _threads() -> type[Backend]:
    from .threads import ThreadBackend

    return ThreadBackend


def _inline() -> type[Backend]:
    from .inline import InlineBackend

    return InlineBackend


def _dask() -> type[Backend]:
    try:
        from .dask import DaskBackend
    except ImportError as exc:
        msg = (
            "backend 'dask' needs the distributed package: "
            "pip install 'jupyter_par[dask]' (or pip install distributed)"
        )
        raise BackendUnavailableError(msg) from exc
    return DaskBackend


BACKENDS: dict[str, Callable[[], type[Backend]]] = {
    "processes": _processes,
    "threads": _threads,
    "inline": _inline,
    "dask": _dask,
}

#: The start methods the process pool accepts (validated once, in jupyter_par.run.options).
START_METHODS = ("fork", "spawn", "forkserver")

_warm: dict[str, Backend] = {}
_lock = threading.Lock()


def register_backend(name: str, factory: Callable[[], type[Backend]]) -> None:
    """Make ``backend=name`` available; ``factory`` returns the Backend class."""
    BACKENDS[name] = factory


def backend_class(name: str) -> type[Backend]:
    """The class registered under ``name``, with a clear error for unknown names."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        msg = f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}"
        raise UsageError(msg) from None
    return factory()


def acquire(name: str, jobs: int, **options: Any) -> Backend:
    """A started backend of this shape: the warm one if it fits, else a new one."""
    cls = backend_class(name)
    with _lock:
        candidate = cls(jobs, **options)
        warm = _warm.get(name)
        if warm is not None and warm.key() == candidate.key() and warm.healthy():
            return warm
        # A cluster can often be resized where it stands (the panel's worker slider).
        if warm is not None and warm.healthy() and warm.reshape(candidate):
            return warm
        if warm is not None:
            warm.shutdown()
            del _warm[name]
        candidate.start()
        _warm[name] = candidate
        # atexit runs handlers last-registered first; multiprocess registers one that
        # joins every child, so ours must come after it to stop the workers first.
        atexit.unregister(shutdown)
        atexit.register(shutdown)
        return candidate


def warm_backends() -> dict[str, Backend]:
    """The backends whose workers are running now."""
    return dict(_warm)


def shutdown(name: str | None = None) -> None:
    """Stop the warm workers of one backend, or of all of them."""
    with _lock:
        names = [name] if name else list(_warm)
        for key in names:
            backend = _warm.pop(key, None)
            if backend is not None:
                backend.shutdown()


atexit.register(shutdown)

__all__ = [
    "BACKENDS", "START_METHODS", "Backend", "Died", "Event", "Finished", "Output", "ProgressSlot",
    "Task", "TaskDone", "TaskFailed", "acquire", "backend_class", "decode_outcome",
    "encode_outcome", "register_backend", "run_task", "shutdown", "warm_backends",
]
