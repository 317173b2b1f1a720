"""Progress widgets and the control panel: they draw the state they are given.

The progress layer never imports this one: ``jupyter_par/__init__.py`` registers
:class:`.progress_view.NotebookProgress` with :mod:`jupyter_par.progress.chooser`, so the
engine never imports IPython or ipywidgets. ipywidgets itself is imported only when a
view or the panel is first used.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Panel": ".panel",
    "NotebookProgress": ".progress_view",
    "LabProgressWidget": ".lab_widget",
    "TuneResult": ".tune",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = ["LabProgressWidget", "NotebookProgress", "Panel", "TuneResult"]
