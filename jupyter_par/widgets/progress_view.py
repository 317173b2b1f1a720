"""The progress sink for notebooks: one widget that shows every worker of a run.

The engine hands a :class:`~jupyter_par.progress.RunProgress` to :meth:`ProgressView.update`
about ten times a second and the final one to :meth:`ProgressView.close`. The view only
draws it, in one of two ways:

``lab``
    jupyter_par's own :class:`~jupyter_par.widgets.lab_widget.LabProgressWidget`, whose
    front end (the lab extension) draws all workers compactly; both traits change
    under ``hold_sync``, so each tick is one comm message.
``ipywidgets``
    a single standard ``ipywidgets.HTML`` whose value is the whole table. One widget
    per worker would cost one message per worker per tick (640 a second for 64
    workers); one HTML value costs one.

The final state stays on screen: every worker done, or the failed worker in red with
its error, or the run marked cancelled.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..progress import FAILED, RunProgress
from .frontend import IPYWIDGETS, LAB, choose_frontend

if TYPE_CHECKING:
    from collections.abc import Callable

#: Bar colours per worker state, the ipywidgets bar styles' palette.
_COLOURS = {"idle": "#9e9e9e", "busy": "#2196f3", "done": "#4caf50", "failed": "#f44336"}
_RUN_WORDS = {"running": "running", "done": "done", "failed": "failed", "cancelled": "cancelled"}


def format_seconds(seconds: float | None) -> str:
    """``"4.2 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``; ``"?"`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def percent(progress: RunProgress) -> float:
    """Overall percent done, 0 to 100 (0 while the total is unknown)."""
    fraction = progress.fraction
    return round(100.0 * fraction, 1) if fraction is not None else 0.0


def worker_records(progress: RunProgress) -> list[dict[str, Any]]:
    """The lab widget's ``workers`` trait for ``progress``."""
    return [
        {
            "id": w.worker,
            "state": w.state,
            "done": w.rows_done,
            "assigned": w.rows_assigned,
            "rate": round(w.rows_per_second, 1),
            "partition": w.partition,
            "error": w.error,
        }
        for w in progress.workers
    ]


def overall_record(progress: RunProgress) -> dict[str, Any]:
    """The lab widget's ``overall`` trait for ``progress``."""
    eta = progress.eta
    return {
        "done": progress.rows_done,
        "total": progress.rows_total,
        "percent": percent(progress),
        "elapsed": round(progress.elapsed, 2),
        "eta": None if eta is None else round(eta, 1),
        "state": progress.state,
        "label": progress.label,
        "partitions_done": progress.partitions_done,
        "partitions_total": progress.partitions_total,
    }


def _bar(share: float, colour: str) -> str:
    width = max(0.0, min(100.0, 100.0 * share))
    return (
        '<div style="background:#e0e0e0;height:10px;width:100%;min-width:120px">'
        f'<div style="background:{colour};height:10px;width:{width:.1f}%"></div></div>'
    )


def render_html(progress: RunProgress) -> str:
    """The whole run as one HTML table: an overall line, then one row per worker.

    Every row carries its numbers as ``data-`` attributes too, so tests and saved
    notebooks can read the state back without parsing the text.
    """
    unit = html.escape(progress.unit)
    total = "?" if progress.rows_total is None else f"{progress.rows_total:,}"
    state = progress.state
    overall_colour = {"done": _COLOURS["done"], "failed": _COLOURS["failed"],
                      "cancelled": _COLOURS["idle"]}.get(state, _COLOURS["busy"])
    eta = "" if state != "running" else f" · ETA {format_seconds(progress.eta)}"
    parts_total = "?" if progress.partitions_total is None else progress.partitions_total
    head = (
        f"<b>{html.escape(progress.label or 'parallel')}</b> · {_RUN_WORDS.get(state, state)} · "
        f"{percent(progress):.0f}% · {progress.rows_done:,}/{total} {unit} · "
        f"partitions {progress.partitions_done}/{parts_total} · "
        f"elapsed {format_seconds(progress.elapsed)}{eta}"
    )
    message = ""
    if progress.message and state != "done":
        message = f'<div style="color:{_COLOURS["failed"]}">{html.escape(progress.message)}</div>'
    rows = []
    for w in progress.workers:
        share = w.rows_done / w.rows_assigned if w.rows_assigned else (
            1.0 if w.state == "done" else 0.0)
        danger = " jp-par-danger" if w.state == FAILED else ""
        note = html.escape(w.error) if w.error else (
            f"partition {w.partition}" if w.partition is not None else "")
        note_style = f' style="color:{_COLOURS["failed"]}"' if w.error else ""
        rows.append(
            # Inline display: in JupyterLab the extension's CSS makes `.jp-par-worker` a grid.
            f'<tr class="jp-par-worker jp-par-{w.state}{danger}" style="display:table-row"'
            f' data-worker="{html.escape(w.worker)}"'
            f' data-state="{w.state}" data-done="{w.rows_done}" data-assigned="{w.rows_assigned}">'
            f"<td>worker {html.escape(w.worker)}</td><td>{w.state}</td>"
            f"<td style=\"width:40%\">{_bar(share, _COLOURS.get(w.state, _COLOURS['busy']))}</td>"
            f"<td>{w.rows_done:,}/{w.rows_assigned:,}</td>"
            f"<td>{w.rows_per_second:,.0f} {unit}/s</td><td{note_style}>{note}</td></tr>"
        )
    return (
        f'<div class="jp-par-progress" data-state="{state}" data-done="{progress.rows_done}"'
        f' data-total="{progress.rows_total if progress.rows_total is not None else ""}">'
        f"<div>{head}</div>{_bar(percent(progress) / 100, overall_colour)}{message}"
        '<table style="width:100%;border-collapse:collapse;font-size:90%">'
        f"{''.join(rows)}</table></div>"
    )


def render_text(progress: RunProgress | None, label: str = "") -> str:
    """One line for the text fallback a saved notebook keeps of the widget."""
    if progress is None:
        return f"{label or 'parallel'} · starting"
    total = "?" if progress.rows_total is None else f"{progress.rows_total:,}"
    parts = "?" if progress.partitions_total is None else progress.partitions_total
    message = f" · {progress.message}" if progress.message and progress.state != "done" else ""
    return (f"{progress.label or label or 'parallel'} · {progress.state} · "
            f"{percent(progress):.0f}% · {progress.rows_done:,}/{total} {progress.unit} · "
            f"partitions {progress.partitions_done}/{parts} · "
            f"elapsed {format_seconds(progress.elapsed)}{message}")


class ProgressView:
    """A progress sink drawn as one widget; reusable run after run (the panel keeps one).

    Parameters
    ----------
    label : str, optional
        Shown until the first update brings the run's own label.
    frontend : {"lab", "ipywidgets"}, optional
        How to draw; by default :func:`~jupyter_par.widgets.frontend.choose_frontend`.
    display : bool, optional
        Show the widget under the running cell at the first update (the default for
        runs started from code); the panel embeds the view instead.
    """

    def __init__(self, label: str = "", *, frontend: str | None = None,
                 display: bool = False) -> None:
        self.frontend = frontend or choose_frontend()
        if self.frontend == "text":
            self.frontend = IPYWIDGETS
        if self.frontend not in (LAB, IPYWIDGETS):
            msg = f"frontend must be 'lab' or 'ipywidgets', got {self.frontend!r}"
            raise UsageError(msg)
        self.label = label
        self.last: RunProgress | None = None
        self.closed = False
        self._display = display
        self._shown = False
        self._handle: Any = None
        self.widget = self._make_widget(label)

    def _make_widget(self, label: str) -> Any:
        if self.frontend == LAB:
            from .lab_widget import LabProgressWidget

            return LabProgressWidget(overall={"label": label})
        import ipywidgets

        return ipywidgets.HTML(value="", layout=ipywidgets.Layout(width="100%"))

    def update(self, progress: RunProgress) -> None:
        """Draw ``progress`` (one comm message)."""
        self.closed = False
        self.last = progress
        if self.frontend == LAB:
            with self.widget.hold_sync():
                self.widget.workers = worker_records(progress)
                self.widget.overall = overall_record(progress)
        else:
            self.widget.value = render_html(progress)
        if self._display and not self._shown:
            self._shown = True
            from IPython.display import display

            # With an id, so that close() can bring its text fallback up to date too.
            self._handle = display(self, display_id=True)

    def close(self, progress: RunProgress) -> None:
        """Draw the final state, which stays visible."""
        self.update(progress)
        self.closed = True
        if self._handle is not None:
            self._handle.update(self)

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` when the user presses the lab widget's own Cancel."""
        if self.frontend == LAB:
            self.widget.on_cancel(callback)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # A saved notebook shows text/plain where widgets are not rendered: make it say
        # how the run stands (ipywidgets' own is the repr at display time, 'running').
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle = {**bundle, "text/plain": render_text(self.last, self.label)}
        return bundle


def widget_factory(label: str, frontend: str = "auto") -> ProgressView | None:
    """What :mod:`jupyter_par.sinks` calls for each run drawn in a kernel."""
    frontend = choose_frontend(frontend)
    if frontend == "text":
        return None
    return ProgressView(label, frontend=frontend, display=True)
