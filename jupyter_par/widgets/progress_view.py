"""The progress sink for notebooks: one display that shows every worker of a run.

The engine hands a :class:`~jupyter_par.progress.records.RunProgress` to
:meth:`NotebookProgress.update` about ten times a second and the final one to
:meth:`NotebookProgress.close`. The view only draws it, with one or both of two widgets:

``lab``
    jupyter_par's own :class:`~jupyter_par.widgets.lab_widget.LabProgressWidget`, whose
    front end (the lab extension) draws all workers compactly; both traits change
    under ``hold_sync``, so each tick is one comm message.
``ipywidgets``
    a single standard ``ipywidgets.HTML`` whose value is the whole run
    (:mod:`~jupyter_par.widgets.progress_html`). One widget per worker would cost one
    message per worker per tick (640 a second for 64 workers); one HTML value costs one.
``auto`` (the default in Jupyter)
    both, shown by one display whose richest type (:data:`MIME_TYPE`) only the lab
    extension renders, next to the standard ipywidgets view of the HTML widget. The front
    end picks what it can draw; the kernel never guesses what the browser loaded.

The final state stays on screen: every worker done, or the failed worker in red with
its error, or the run cancelled at the counts it had reached.

While the run goes, the view also shows what the partitions print (:meth:`NotebookProgress.output`,
the last lines of each, grouped per partition). When it ends that live tail is taken
away: the whole output is printed under the cell, grouped, once.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..progress.chooser import AUTO, IPYWIDGETS, LAB, TEXT, check_frontend, choose_frontend
from ..progress.records import LiveLog, RunProgress, format_seconds, percent, percent_text
from ..run.options import resolve
from .progress_html import explain_html, render_html

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MIME_TYPE", "NotebookProgress", "format_seconds", "overall_record", "render_html",
           "worker_records"]

#: The display type the lab extension renders (``labextension/src/tokens.ts``).
MIME_TYPE = "application/vnd.jupyter-par.progress+json"
WIDGET_VIEW_TYPE = "application/vnd.jupyter.widget-view+json"
#: With both views, the HTML fallback is redrawn at most this often (seconds): it is the
#: bigger message, and a front end that draws the lab view never shows it.
FALLBACK_INTERVAL = 0.3


def worker_records(progress: RunProgress) -> list[dict[str, Any]]:
    """The lab widget's ``workers`` trait for ``progress``."""
    return [
        {
            "id": w.worker,
            "state": w.state,
            "done": w.rows_done,
            "assigned": w.rows_assigned,
            "fraction": None if w.fraction is None else round(w.fraction, 4),
            "rate": round(w.rows_per_second, 1),
            "partition": w.partition,
            "error": w.error,
        }
        for w in progress.workers
    ]


def overall_record(progress: RunProgress, cancel: str = "none") -> dict[str, Any]:
    """The lab widget's ``overall`` trait for ``progress``; ``cancel`` is the route."""
    eta = progress.eta
    return {
        "done": progress.rows_done,
        "total": progress.rows_total,
        "percent": percent(progress.fraction),
        "elapsed": round(progress.elapsed, 2),
        "eta": None if eta is None else round(eta, 1),
        "state": progress.state,
        "status": progress.status,
        "message": progress.message,
        "label": progress.label,
        "unit": progress.unit,
        "partitions_done": progress.partitions_done,
        "partitions_total": progress.partitions_total,
        "cancel": cancel,
    }


def render_text(progress: RunProgress | None, label: str = "") -> str:
    """One line for the text fallback a saved notebook keeps of the widget."""
    if progress is None:
        return f"{label or 'parallel'} · starting"
    total = "?" if progress.rows_total is None else f"{progress.rows_total:,}"
    parts = "?" if progress.partitions_total is None else progress.partitions_total
    message = f" · {progress.message}" if progress.message and progress.state != "done" else ""
    return (f"{progress.label or label or 'parallel'} · {progress.state} · "
            f"{percent_text(progress.fraction or 0.0)} · "
            f"{progress.rows_done:,}/{total} {progress.unit} · "
            f"partitions {progress.partitions_done}/{parts} · "
            f"elapsed {format_seconds(progress.elapsed)}{message}")


class NotebookProgress:
    """A progress sink drawn as widgets; reusable run after run (the panel keeps one).

    Parameters
    ----------
    label : str, optional
        Shown until the first update brings the run's own label.
    frontend : {"auto", "lab", "ipywidgets"}, optional
        What to draw; by default what :func:`~jupyter_par.progress.chooser.choose_frontend`
        chooses for the session's ``frontend`` option.
    display : bool, optional
        Show the view under the running cell at the first update (the default for
        runs started from code); the panel embeds :attr:`widget` instead.

    Attributes
    ----------
    lab : LabProgressWidget or None
        The lab extension's widget, unless only ipywidgets are drawn.
    html : ipywidgets.HTML or None
        The fallback table, unless only the lab view is drawn.
    widget : ipywidgets.Widget
        What to put in a layout: with both views, an ``Output`` holding the display.
    """

    def __init__(self, label: str = "", *, frontend: str | None = None,
                 display: bool = False) -> None:
        if frontend is None:
            frontend = choose_frontend("widgets", resolve(progress=False).frontend)
        chosen = IPYWIDGETS if check_frontend(frontend) == TEXT else frontend
        import ipywidgets

        self.frontend = chosen
        self.label = label
        self.last: RunProgress | None = None
        #: The line under the finished run's bars (:meth:`explain`); empty while it runs.
        self.explained = ""
        self.closed = False
        self._display = display
        self._shown = False
        self._handle: Any = None
        self._html_drawn = 0.0
        self.log = LiveLog()
        self._log_drawn = -1
        self.lab: Any = None
        self.html: Any = None
        if chosen in (AUTO, LAB):
            from .lab_widget import LabProgressWidget

            self.lab = LabProgressWidget(overall={"label": label})
        if chosen in (AUTO, IPYWIDGETS):
            self.html = ipywidgets.HTML(value="", layout=ipywidgets.Layout(width="100%"))
        if chosen == AUTO:
            self.widget: Any = ipywidgets.Output(layout=ipywidgets.Layout(width="100%"))
            self.widget.outputs = (
                {"output_type": "display_data", "data": self._bundle(), "metadata": {}},
            )
        else:
            self.widget = self.lab if chosen == LAB else self.html

    def _bundle(self) -> dict[str, Any]:
        """Both views, the richest first: the lab extension's, then standard ipywidgets."""
        # What a saved notebook shows where widgets are not drawn: how the run stands.
        bundle: dict[str, Any] = {"text/plain": render_text(self.last, self.label)}
        if self.lab is not None:
            bundle[MIME_TYPE] = {"model_id": self.lab.model_id, "version": __version__}
        view = self.html if self.html is not None else self.lab
        bundle[WIDGET_VIEW_TYPE] = {"version_major": 2, "version_minor": 0,
                                    "model_id": view.model_id}
        return bundle

    def cancel_route(self) -> str:
        """How the front end stops this run: see :mod:`~jupyter_par.widgets.lab_widget`."""
        if threading.current_thread() is threading.main_thread():
            return "interrupt"  # the run holds the cell: no comm message gets through
        if self.lab is not None and self.lab.has_cancel_handler:
            return "message"
        return "none"

    def update(self, progress: RunProgress) -> None:
        """Draw ``progress`` (one comm message per widget)."""
        if self.explained:  # a new run in a reused view (the panel's)
            self.explain("")
        self._draw(progress, final=False)

    def close(self, progress: RunProgress) -> None:
        """Draw the final state, which stays visible."""
        self._draw(progress, final=True)
        self.closed = True
        if self._handle is not None:
            self._handle.update(self)

    def output(self, partition: int, worker: str, text: str) -> None:
        """Keep what ``partition`` printed, for the next draw (the engine calls this)."""
        self.log.add(partition, worker, text)

    def _draw(self, progress: RunProgress, *, final: bool) -> None:
        self.closed = False
        self.last = progress
        if final:
            self.log.clear()  # the whole output is printed under the cell now
        log_changed = self.log.version != self._log_drawn
        self._log_drawn = self.log.version
        if self.lab is not None:
            with self.lab.hold_sync():
                self.lab.workers = worker_records(progress)
                self.lab.overall = overall_record(progress, self.cancel_route())
                if log_changed:
                    self.lab.log = self.log.entries()
        if self.html is not None:
            now = time.monotonic()
            if final or self.lab is None or now - self._html_drawn >= FALLBACK_INTERVAL:
                self._html_drawn = now
                self.html.value = render_html(progress, self.log.entries())
        self.show()

    def show(self, *, with_output: bool = False) -> None:
        """Show the view under the running cell, once (at the first update, or now for a
        background run: its updates come from a thread whose output has no cell).

        ``with_output`` also places an empty Output widget under it, which
        :meth:`late_output` fills when a background run ends: its cell has ended by
        then, and a front end drops what is printed (or displayed) for a cell that has
        ended, but a widget's state still reaches the page.
        """
        if self._display and not self._shown:
            self._shown = True
            from IPython.display import display

            # With an id, so that close() can bring its text fallback up to date too.
            self._handle = display(self, display_id=True)
            if with_output:
                import ipywidgets

                self._late = ipywidgets.Output()
                display(self._late)

    def late_output(self, text: str) -> bool:
        """Show ``text`` (what a background run printed) under the view; False if no
        place was made for it by :meth:`show`."""
        late = getattr(self, "_late", None)
        if late is None:
            return False
        late.append_stdout(text)
        return True

    def explain(self, text: str) -> None:
        """Show under the finished run's bars where its time went (the pipeline calls it
        after combining; see :func:`jupyter_par.progress.timings.explain`)."""
        self.explained = text
        if self.lab is not None:
            self.lab.explain = text
        if self.html is not None and self.last is not None:
            self.html.value = render_html(self.last) + explain_html(text)

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` when the user presses the lab view's Cancel (panel runs)."""
        if self.lab is not None:
            self.lab.on_cancel(callback)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # A saved notebook shows text/plain where widgets are not rendered: make it say
        # how the run stands (the repr at display time would say 'running' forever).
        if self.frontend == AUTO:
            return self._bundle()
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle = {**bundle, "text/plain": render_text(self.last, self.label)}
        return bundle

