"""jupyter_par: run a notebook's own functions in parallel over pandas objects.

>>> import jupyter_par as jp
>>> jp.apply(df, score, axis=1, jobs=8)          # doctest: +SKIP

In a notebook, ``%load_ext jupyter_par`` adds the ``%%parallel`` cell magic.
"""

from __future__ import annotations

from typing import Any

from . import accessor as _accessor  # noqa: F401 - registers df.par / series.par
from ._version import __version__
from .api import apply, groupby_apply, map, map_partitions
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
from .run.options import current_defaults, set_defaults
from .wire import (
    shared_objects as shared,  # jp.shared["name"]: objects passed as shared= (read-only)
)
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
    "groupby_apply",
    "in_task",
    "last_run",
    "map",
    "map_partitions",
    "progress",
    "register_backend",
    "set_defaults",
    "shared",
    "shutdown",
]
