"""The progress widget that the ``jupyter-par`` JupyterLab extension draws.

One widget shows every worker of a run. It only carries state: whoever runs the work sets
``workers`` and ``overall`` (about ten times a second), and the front end draws them in place.
The trait shapes below are the contract with ``labextension/src/tokens.ts``.

Its model is the standard ``DOMWidgetModel`` of ``@jupyter-widgets/base``; only the view
is the extension's. A front end without the extension (disabled, VS Code, Colab) can then
still create the model, so it logs no error for a widget it never draws (it draws the
ipywidgets fallback that comes in the same display, see
:mod:`jupyter_par.widgets.progress_view`).

``workers``: a list, one dict per worker::

    {"id": str, "state": "idle" | "busy" | "done" | "failed" | "stopped",
     "done": int (rows it got through), "assigned": int (rows handed to it),
     "fraction": float | None (0-1, how far through its part of the run; never decreases),
     "rate": float (rows/s), "partition": int | None, "error": str | None}

``overall``: one dict for the whole run::

    {"done": int, "total": int | None, "percent": float (0-100), "elapsed": float (s),
     "eta": float | None (s), "state": "running" | "done" | "failed" | "cancelled",
     "status": str ("running", "done", "cancelled at 93%", ...), "message": str | None,
     "label": str, "unit": str, "partitions_done": int, "partitions_total": int | None,
     "cancel": "interrupt" | "message" | "none"}

``log``: what the partitions printed while the run goes, the last lines of each of the
few that printed most recently (empty once the run ends: the whole output is then
printed under the cell)::

    [{"partition": int, "worker": str, "text": str}, ...]

``explain``: a string, empty until the run is done; then the line that says where its time
went (``"compute 92% · shipping 5% · kernel 3% · idle 4% → ..."``), drawn under the bars.

``cancel`` says how the front end stops the run: a run that holds the cell (the kernel is
busy in it and handles no comm message until it ends) is stopped by interrupting the
kernel; a run in a background thread (the panel's) by the ``{"event": "cancel"}`` message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets
import traitlets
from ipywidgets.widgets.widget import CallbackDispatcher

from .._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

MODULE_NAME = "jupyter-par"

WORKER_STATES = ("idle", "busy", "done", "failed", "stopped")
RUN_STATES = ("running", "done", "failed", "cancelled")
CANCEL_ROUTES = ("interrupt", "message", "none")
WORKER_KEYS = ("id", "state", "done", "assigned", "fraction", "rate", "partition", "error")


def empty_overall(label: str = "") -> dict[str, Any]:
    """The ``overall`` record of a run that has not made progress yet."""
    return {
        "done": 0,
        "total": None,
        "percent": 0.0,
        "elapsed": 0.0,
        "eta": None,
        "state": "running",
        "status": "running",
        "message": None,
        "label": label,
        "unit": "rows",
        "partitions_done": 0,
        "partitions_total": None,
        "cancel": "none",
    }


class LabProgressWidget(ipywidgets.DOMWidget):
    """Live progress of all workers of one run, drawn by the ``jupyter-par`` lab extension.

    Parameters
    ----------
    workers : list of dict, optional
        One record per worker (see the module docstring).
    overall : dict, optional
        The record of the whole run; missing keys take the values of `empty_overall`.

    Examples
    --------
    >>> w = LabProgressWidget(overall={"label": "score", "total": 1000})
    >>> with w.hold_sync():                     # one message for both traits
    ...     w.workers = [{"id": "w0", "state": "busy", "done": 10, "assigned": 500,
    ...                   "fraction": 0.02, "rate": 95.0, "partition": 0, "error": None}]
    ...     w.overall = {**w.overall, "done": 10, "percent": 1.0}
    """

    # The model stays DOMWidgetModel of @jupyter-widgets/base (see the module docstring).
    _view_name = traitlets.Unicode("ProgressView").tag(sync=True)
    _view_module = traitlets.Unicode(MODULE_NAME).tag(sync=True)
    _view_module_version = traitlets.Unicode(__version__).tag(sync=True)

    workers = traitlets.List(traitlets.Dict(), help="One progress record per worker.").tag(
        sync=True
    )
    overall = traitlets.Dict(help="The progress record of the whole run.").tag(sync=True)
    log = traitlets.List(traitlets.Dict(), help="What running partitions printed lately.").tag(
        sync=True
    )
    explain = traitlets.Unicode("", help="Where the finished run's time went.").tag(sync=True)

    def __init__(
        self,
        workers: Sequence[dict[str, Any]] = (),
        overall: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            workers=list(workers), overall={**empty_overall(), **(overall or {})}, **kwargs
        )
        self._cancel_handlers = CallbackDispatcher()
        self.on_msg(self._handle_frontend_msg)

    @property
    def has_cancel_handler(self) -> bool:
        """Whether anything listens for the front end's cancel message."""
        return bool(self._cancel_handlers.callbacks)

    def on_cancel(self, callback: Callable[[], Any], remove: bool = False) -> None:
        """Call ``callback()`` when the user presses Cancel (or runs ``jupyter-par:cancel``).

        Parameters
        ----------
        callback : callable
            Called with no arguments, in the kernel's thread that handles comm messages.
        remove : bool, optional
            Unregister ``callback`` instead.
        """
        self._cancel_handlers.register_callback(callback, remove=remove)

    def _handle_frontend_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """Dispatch custom messages from the view; only ``{"event": "cancel"}`` is known."""
        if isinstance(content, dict) and content.get("event") == "cancel":
            self._cancel_handlers()
