"""Turn a run's ``worker_init`` option into the operation the workers run.

The init travels inside the operation (:class:`jupyter_par.worker.state.WithWorkerInit`),
so each backend ships it as it ships the function, and a worker runs it before its first
task. Its digest (the init and its arguments, pickled by value) is what a warm worker
compares to know whether the state it holds is this run's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..backends.base import Backend
from ..errors import UsageError
from ..wire import pickling
from ..worker.state import WithWorkerInit
from .options import Options


def _digest(init: Any, args: tuple[Any, ...]) -> str:
    try:
        payload = pickling.dumps_dill((init, args))
    except Exception:  # noqa: BLE001 - threads need no pickling: the objects' identity will do
        return f"id:{id(init)}:{id(args)}"
    return hashlib.sha256(payload).hexdigest()


def with_worker_init(op: Any, options: Options, backend: type[Backend]) -> Any:
    """``op`` wrapped so that each worker runs ``options.worker_init`` once first.

    Also refuses ``max_tasks_per_worker`` where workers cannot be replaced (threads, a
    cluster whose workers are its own), rather than ignoring it; in the caller (one job,
    inline) there is no worker to replace and nothing to refuse.
    """
    if options.max_tasks_per_worker is not None and not backend.replaces_workers \
            and not backend.in_caller:
        msg = (f"max_tasks_per_worker replaces worker processes, which backend "
               f"{backend.name!r} cannot do; use backend='processes' (on Dask, the "
               "workers' own --lifetime option recycles them)")
        raise UsageError(msg)
    if options.worker_init is None:
        return op
    args = tuple(options.worker_init_args or ())
    return WithWorkerInit(op, options.worker_init, args, _digest(options.worker_init, args),
                          per_thread=backend.uses_threads)
