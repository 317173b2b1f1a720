"""Decide how progress is drawn in a kernel: the lab widget, plain ipywidgets, or text.

:mod:`jupyter_par.sinks` stays the entry point (it decides *whether* widgets are
wanted); this module decides *which* widgets, because only the widget layer knows
what a front end can render:

1. the session option ``frontend`` (``jp.set_defaults(frontend="ipywidgets")``) wins;
2. without ipywidgets there is nothing to draw a widget with: text;
3. VS Code and Colab render standard ipywidgets but never load JupyterLab extensions;
4. JupyterLab / Notebook 7 load jupyter_par's extension when it is installed in a
   Jupyter data path (``share/jupyter/labextensions/jupyter-par``): the lab widget;
5. anything else: standard ipywidgets.

The kernel cannot ask the browser which extensions it loaded, so step 4 is a
judgement from the installation; ``frontend=`` is the way out when it is wrong.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from ..config import current_defaults

LAB, IPYWIDGETS, TEXT = "lab", "ipywidgets", "text"
#: The folder name the extension is installed under (``labextension/package.json``'s name).
EXTENSION_NAME = "jupyter-par"
#: Environment variables that VS Code's Jupyter extension sets in the kernels it starts.
_VSCODE_VARIABLES = ("VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI")


def labextension_installed() -> bool:
    """Whether jupyter_par's lab extension is in one of the Jupyter data paths."""
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return False
    return any(
        (Path(folder) / EXTENSION_NAME / "package.json").is_file()
        for folder in jupyter_path("labextensions")
    )


def driven_by_vscode_or_colab() -> bool:
    """Whether the kernel's front end is one that never loads JupyterLab extensions."""
    return any(name in os.environ for name in _VSCODE_VARIABLES) or "google.colab" in sys.modules


def choose_frontend(chosen: str = "auto") -> str:
    """``"lab"``, ``"ipywidgets"`` or ``"text"``: how the next run is drawn in a kernel.

    ``chosen`` is the run's ``frontend`` option; ``"auto"`` falls back to the session's.
    """
    if chosen == "auto":
        chosen = current_defaults().get("frontend", "auto")
    if chosen != "auto":
        return chosen
    if importlib.util.find_spec("ipywidgets") is None:
        return TEXT
    if driven_by_vscode_or_colab():
        return IPYWIDGETS
    return LAB if labextension_installed() else IPYWIDGETS
