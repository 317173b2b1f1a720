"""Progress widgets and the control panel: they draw the state they are given.

Importing this package registers the progress views with :mod:`jupyter_par.sinks`,
which is how the engine gets widgets without ever importing IPython or ipywidgets.
ipywidgets itself is imported only when a view or the panel is first used.
"""

from __future__ import annotations

from typing import Any

from .. import sinks as _sinks
from .frontend import choose_frontend


def _factory(label: str) -> Any:
    from .progress_view import widget_factory

    return widget_factory(label)


_sinks.register_widget_factory(_factory)

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
