"""Progress widgets and the control panel: they draw the state they are given.

:mod:`jupyter_par.progress.chooser` imports :mod:`.progress_view` by name when a run is drawn in a
kernel, so the engine never imports IPython or ipywidgets. ipywidgets itself is
imported only when a view or the panel is first used.
"""

from __future__ import annotations

from typing import Any

from .frontend import choose_frontend

_LAZY = {
    "Panel": ".panel",
    "ProgressView": ".progress_view",
    "LabProgressWidget": ".lab_widget",
    "TuneResult": ".tune",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = ["LabProgressWidget", "Panel", "ProgressView", "TuneResult", "choose_frontend"]
