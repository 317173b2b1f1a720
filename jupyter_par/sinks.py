"""Choose how progress is drawn: the one place that decides the front end.

``progress=True`` (the default) picks, in order: jupyter_par's widgets when running
in a Jupyter kernel with ipywidgets (the widget layer registers itself here when
imported), tqdm text bars otherwise. ``progress=False`` draws nothing; a callable
gets every :class:`~jupyter_par.progress.RunProgress`; an object with ``update`` and
``close`` is used as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .progress import CallbackProgress, ProgressSink, TextProgress

#: Set by the widget layer: returns a sink for a run, or None where widgets cannot show.
_widget_factory: Callable[[str], ProgressSink | None] | None = None


def register_widget_factory(factory: Callable[[str], ProgressSink | None] | None) -> None:
    """Let the widget layer supply progress views (the engine never imports it)."""
    global _widget_factory
    _widget_factory = factory


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a comm channel to a front end exists)."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _widget_sink(label: str) -> ProgressSink | None:
    if _widget_factory is None and in_kernel():
        try:
            import jupyter_par.widgets  # noqa: F401 - registers the factory
        except ImportError:
            return None
    return _widget_factory(label) if _widget_factory is not None else None


def sinks_for(progress: Any, label: str) -> list[ProgressSink]:
    """The sinks that draw a run, from the ``progress`` option."""
    if progress is None or progress is False:
        return []
    if hasattr(progress, "update") and hasattr(progress, "close"):
        return [progress]
    if callable(progress):
        return [CallbackProgress(progress)]
    if progress in (True, "auto", "widgets"):
        sink = _widget_sink(label) if in_kernel() or progress == "widgets" else None
        return [sink] if sink is not None else [TextProgress()]
    if progress in ("text", "tqdm"):
        return [TextProgress()]
    from .errors import UsageError

    msg = f"progress must be True, False, 'text', a callable or a sink, got {progress!r}"
    raise UsageError(msg)
