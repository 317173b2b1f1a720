"""Choose how progress is drawn: the one place that decides the front end.

:func:`choose_frontend` makes the whole decision once (as ``tqdm.auto`` does):

- ``progress=False`` (or None): nothing; a sink (``update`` and ``close``) or a callable
  the caller gave: that;
- ``progress="text"``, the ``frontend="text"`` option, no notebook view (ipywidgets
  missing), or not in a kernel (unless ``progress="widgets"``): text bars;
- otherwise widgets: the ``frontend`` option when it names one (``"lab"`` or
  ``"ipywidgets"``); VS Code and Colab render standard ipywidgets but never load
  JupyterLab extensions: ``"ipywidgets"``; anything else ``"auto"``, both views in one
  display whose richest type only the lab extension renders (the kernel cannot know
  what the browser loaded, so the front end picks).

The notebook view is registered by the layer above (:func:`register_notebook_view`,
done by ``jupyter_par/__init__.py``), so this layer never imports widgets or Jupyter code.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from .records import CallbackProgress, ProgressSink
from .text import TextProgress

LAB, IPYWIDGETS, TEXT, AUTO = "lab", "ipywidgets", "text", "auto"
#: The caller's own sink or callable draws; nothing is drawn.
OWN, NONE = "own", "none"
#: The ``frontend`` option's values.
FRONTENDS = (AUTO, LAB, IPYWIDGETS, TEXT)
#: The ``progress`` option's words (besides a sink or a callable).
PROGRESS_WORDS = (True, False, None, "auto", "widgets", "text", "tqdm")
#: Environment variables that VS Code's Jupyter extension sets in the kernels it starts.
_VSCODE_VARIABLES = ("VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI")

#: ``factory(label, frontend) -> sink`` drawing a run in a notebook; None until registered.
_notebook_view: Callable[[str, str], ProgressSink] | None = None


def register_notebook_view(factory: Callable[[str, str], ProgressSink] | None) -> None:
    """Set what draws a run in a notebook (``factory(label, frontend)``; None: text only)."""
    global _notebook_view
    _notebook_view = factory


def check_progress(value: Any) -> Any:
    """``value`` if it is a valid ``progress=``, else a one-line UsageError."""
    if (hasattr(value, "update") and hasattr(value, "close")) or callable(value):
        return value
    if not isinstance(value, str | bool | None) or value not in PROGRESS_WORDS:
        msg = ("progress must be True, False, 'text', 'widgets', a callable or a sink "
               f"(update and close), got {value!r}")
        raise UsageError(msg)
    return value


def check_frontend(value: Any) -> str:
    """``value`` if it is a valid ``frontend=``, else a one-line UsageError."""
    if value not in FRONTENDS:
        msg = f"frontend must be one of {', '.join(FRONTENDS)}, got {value!r}"
        raise UsageError(msg)
    return value


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a comm channel to a front end exists)."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def driven_by_vscode_or_colab() -> bool:
    """Whether the kernel's front end is one that never loads JupyterLab extensions."""
    return any(name in os.environ for name in _VSCODE_VARIABLES) or "google.colab" in sys.modules


def choose_frontend(progress: Any = True, frontend: str = AUTO) -> str:
    """NONE, OWN, TEXT, or the widgets to draw (AUTO, LAB, IPYWIDGETS): the one decision."""
    check_progress(progress)
    check_frontend(frontend)
    if progress is None or progress is False:
        return NONE
    if not isinstance(progress, str | bool):
        return OWN
    if progress in ("text", "tqdm") or frontend == TEXT:
        return TEXT
    if not (in_kernel() or progress == "widgets"):
        return TEXT
    if _notebook_view is None or importlib.util.find_spec("ipywidgets") is None:
        return TEXT
    if frontend != AUTO:
        return frontend
    return IPYWIDGETS if driven_by_vscode_or_colab() else AUTO


def sinks_for(progress: Any, label: str, frontend: str = AUTO) -> list[ProgressSink]:
    """The sinks that draw a run, from the ``progress`` and ``frontend`` options."""
    chosen = choose_frontend(progress, frontend)
    if chosen == NONE:
        return []
    if chosen == OWN:
        is_sink = hasattr(progress, "update") and hasattr(progress, "close")
        return [progress if is_sink else CallbackProgress(progress)]
    if chosen == TEXT or _notebook_view is None:
        return [TextProgress()]
    return [_notebook_view(label, chosen)]
