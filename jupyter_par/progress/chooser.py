"""Choose how progress is drawn: the one place that decides the front end.

``progress=True`` (the default) picks, in order: jupyter_par's widgets when running
in a Jupyter kernel with ipywidgets, tqdm text bars otherwise. ``progress=False`` draws
nothing; a callable gets every :class:`~jupyter_par.progress.records.RunProgress`; an object
with ``update`` and ``close`` is used as it is. Which widgets (the lab extension's or
plain ipywidgets) is the widget layer's decision, given the run's ``frontend`` option.

The widget layer is imported by name, only in a kernel, so the engine never imports
Jupyter code and the package's import graph has no cycle.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from ..errors import UsageError
from .records import CallbackProgress, ProgressSink
from .text import TextProgress

#: The module whose ``widget_factory(label, frontend)`` draws a run in a kernel.
WIDGET_FACTORY_MODULE = "jupyter_par.widgets.progress_view"


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a comm channel to a front end exists)."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _widget_sink(label: str, frontend: str) -> ProgressSink | None:
    try:
        module = importlib.import_module(WIDGET_FACTORY_MODULE)
    except ImportError:  # no ipywidgets: text bars
        return None
    return module.widget_factory(label, frontend)


def sinks_for(progress: Any, label: str, frontend: str = "auto") -> list[ProgressSink]:
    """The sinks that draw a run, from the ``progress`` and ``frontend`` options."""
    if progress is None or progress is False:
        return []
    if hasattr(progress, "update") and hasattr(progress, "close"):
        return [progress]
    if callable(progress):
        return [CallbackProgress(progress)]
    if progress in (True, "auto", "widgets"):
        wanted = frontend != "text" and (in_kernel() or progress == "widgets")
        sink = _widget_sink(label, frontend) if wanted else None
        return [sink] if sink is not None else [TextProgress()]
    if progress in ("text", "tqdm"):
        return [TextProgress()]
    msg = f"progress must be True, False, 'text', a callable or a sink, got {progress!r}"
    raise UsageError(msg)
