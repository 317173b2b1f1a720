"""jupyter_par: run a notebook's own functions in parallel over pandas objects.

>>> import jupyter_par as jp
>>> jp.apply(df, score, axis=1, jobs=8)          # doctest: +SKIP

In a notebook, ``%load_ext jupyter_par`` adds the ``%%parallel`` cell magic.

Layout, by layer, top to bottom. A module imports only from its own layer or a lower
one (``tests/test_layers.py`` reads this table and fails on an upward import)::

    layer  1 faces     __init__ api accessor group_accessor window_accessor magic
    layer  2 widgets   widgets/      views and the panel: draw state, start no work
    layer  3 cell      cell/         the magic's cell: run, code, meaning (+ expressions,
                                     cross_row_words), row_count, kept
    layer  4 run       run/          pipeline, engine, options, backend_choice, fallback,
                                     moving, column_sample
    layer  5 planning  planning/     Plan and every way to cut and combine
    layer  6 progress  progress/     records, the front-end chooser, text bars, timings
    layer  7 backends  backends/     registry, base, processes + process_worker, threads,
                                     inline, dask + dask_worker
    layer  8 machine   machine/      CPU, memory and /dev/shm limits, the memory budget
    layer  9 wire      wire/         shipping, pickling, shared memory, shared objects
    layer 10 worker    worker/       what runs around every partition, in any worker
    layer 11 base      errors shown_errors _version

Each decision is made in one place:

- which backend runs, and why (one job, nested in a task, too small to move):
  ``run.backend_choice.choose_backend``, stored in the options as ``runs_on``;
- defaults and precedence of options: ``run.options.resolve``;
- which front end draws progress: ``progress.chooser.choose_frontend`` (the notebook
  view is registered below by this module; the progress layer never imports widgets);
- how an error is shown, and which frames are hidden: ``shown_errors``;
- the start methods: ``backends.START_METHODS``, checked in ``run.options``;
- shipping the operation: ``Backend.begin_run``, called by the engine only.
"""

from __future__ import annotations

from typing import Any

from . import accessor as _accessor  # noqa: F401 - registers df.par / series.par
from . import group_accessor as _group_accessor  # noqa: F401 - registers groupby(...).par
from . import window_accessor as _window_accessor  # noqa: F401 - registers rolling(...).par
from ._version import __version__
from .api import (
    apply,
    groupby_agg,
    groupby_apply,
    groupby_filter,
    groupby_transform,
    imap,
    map,
    map_partitions,
)
from .backends import register_backend
from .backends import shutdown as _shutdown_backends
from .errors import (
    CancelledError,
    InlineFallbackWarning,
    JupyterParError,
    JupyterParWarning,
    PartialResultWarning,
    PartitionTimeoutError,
    SerialFallbackWarning,
    ShippingError,
    UsageError,
    WorkerDiedError,
    WorkerError,
)
from .planning.sources import files
from .progress.chooser import register_notebook_view
from .progress.timings import last_run
from .run.background import BackgroundRun, runs, wait
from .run.options import current_defaults, set_defaults
from .window_accessor import resample_call, window_apply
from .wire import (
    shared_objects as shared,  # jp.shared["name"]: objects passed as shared= (read-only)
)
from .worker.state import worker_state
from .worker.task import in_task, progress


def shutdown() -> None:
    """Stop every warm worker now (they also stop when Python exits)."""
    _shutdown_backends()


def _notebook_view(label: str, frontend: str) -> Any:
    """Draw a run in a notebook; the progress layer calls it (it never imports widgets)."""
    from .widgets.progress_view import NotebookProgress

    return NotebookProgress(label, frontend=frontend, display=True)


register_notebook_view(_notebook_view)


def __getattr__(name: str) -> Any:
    """``jp.Panel`` on first use: ipywidgets is imported only by those who want the panel."""
    if name == "Panel":
        from .widgets import Panel

        return Panel
    msg = f"module 'jupyter_par' has no attribute {name!r}"
    raise AttributeError(msg)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_par``: register the magics (imported only now, to keep import light)."""
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_par``: remove the magics and stop the workers."""
    from .magic import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-par"}]


__all__ = [
    "BackgroundRun",
    "CancelledError",
    "InlineFallbackWarning",
    "JupyterParError",
    "JupyterParWarning",
    "Panel",
    "PartialResultWarning",
    "PartitionTimeoutError",
    "SerialFallbackWarning",
    "ShippingError",
    "UsageError",
    "WorkerDiedError",
    "WorkerError",
    "__version__",
    "apply",
    "current_defaults",
    "files",
    "groupby_agg",
    "groupby_apply",
    "groupby_filter",
    "groupby_transform",
    "imap",
    "in_task",
    "last_run",
    "map",
    "map_partitions",
    "progress",
    "register_backend",
    "resample_call",
    "runs",
    "set_defaults",
    "shared",
    "shutdown",
    "wait",
    "window_apply",
    "worker_state",
]
