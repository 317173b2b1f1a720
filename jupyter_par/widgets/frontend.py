"""Decide how progress is drawn in a kernel: let the front end choose, or say what it can do.

:mod:`jupyter_par.progress.chooser` stays the entry point (it decides *whether* widgets are
wanted); this module decides *which* widgets:

1. the session option ``frontend`` (``jp.set_defaults(frontend="ipywidgets")``) wins;
2. without ipywidgets there is nothing to draw a widget with: text;
3. VS Code and Colab render standard ipywidgets but never load JupyterLab extensions:
   ipywidgets only, which saves sending a view they cannot draw;
4. anything else: ``auto``, both views in one display. The kernel cannot know what the
   browser loaded (an extension can be installed yet disabled, or the page can be a
   JupyterHub or a viewer without it), so it offers both and the front end picks: the
   display's richest type is jupyter_par's own, which only the lab extension renders;
   its other type is the standard ipywidgets view, which any widget front end renders.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from ..run.options import current_defaults

LAB, IPYWIDGETS, TEXT, AUTO = "lab", "ipywidgets", "text", "auto"
#: The lab extension's name (``labextension/package.json``) and widget module.
EXTENSION_NAME = "jupyter-par"
#: Environment variables that VS Code's Jupyter extension sets in the kernels it starts.
_VSCODE_VARIABLES = ("VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI")


def driven_by_vscode_or_colab() -> bool:
    """Whether the kernel's front end is one that never loads JupyterLab extensions."""
    return any(name in os.environ for name in _VSCODE_VARIABLES) or "google.colab" in sys.modules


def choose_frontend(chosen: str = AUTO) -> str:
    """``"auto"``, ``"lab"``, ``"ipywidgets"`` or ``"text"``: how the next run is drawn.

    ``chosen`` is the run's ``frontend`` option; ``"auto"`` falls back to the session's.
    """
    if chosen == AUTO:
        chosen = current_defaults().get("frontend", AUTO)
    if chosen != AUTO:
        return chosen
    if importlib.util.find_spec("ipywidgets") is None:
        return TEXT
    if driven_by_vscode_or_colab():
        return IPYWIDGETS
    return AUTO
