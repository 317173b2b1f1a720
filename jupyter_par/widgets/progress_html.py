"""The run as one HTML fragment: the ipywidgets fallback view, and a saved notebook's record.

Drawn with inline styles only, because where it shows (the extension disabled, VS Code,
Colab, a notebook viewer) none of jupyter_par's CSS is loaded. Every worker carries its
numbers as ``data-`` attributes too, so tests and saved notebooks can read the state back
without parsing the text.

Up to :data:`ROWS_UP_TO` workers get one table row each; more get a grid of small cells
(each with its id, bar, rows done and state), so 64 workers fit in a screenful.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..progress.records import FAILED, RUNNING, format_seconds, percent_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..progress.records import RunProgress, WorkerProgress

#: Bar colours per state; the state is always written out as well.
COLOURS = {"idle": "#9e9e9e", "busy": "#2196f3", "done": "#4caf50", "failed": "#f44336",
           "stopped": "#ff9800", "cancelled": "#ff9800"}
#: Above this many workers the fallback draws a grid of cells instead of table rows.
ROWS_UP_TO = 16
WORKER_STATE_ORDER = ("busy", "idle", "done", "stopped", "failed")


def compact_count(n: int) -> str:
    """``"950"``, ``"12.3k"``, ``"4.1M"``: a count that fits a small cell."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return f"{n:,}"


def state_counts(progress: RunProgress) -> str:
    """``"6 busy · 1 idle · 1 failed"``: the workers' states, counted."""
    counts = Counter(w.state for w in progress.workers)
    return " · ".join(f"{counts[s]} {s}" for s in WORKER_STATE_ORDER if counts[s])


def _bar(fraction: float | None, colour: str, height: int = 10) -> str:
    width = 0.0 if fraction is None else max(0.0, min(100.0, 100.0 * fraction))
    return (
        f'<div style="background:#e0e0e0;height:{height}px;width:100%;min-width:60px">'
        f'<div style="background:{colour};height:{height}px;width:{width:.1f}%"></div></div>'
    )


def _attributes(w: WorkerProgress) -> str:
    fraction = "" if w.fraction is None else f"{w.fraction:.4f}"
    return (f' data-worker="{html.escape(w.worker)}" data-state="{w.state}"'
            f' data-done="{w.rows_done}" data-assigned="{w.rows_assigned}"'
            f' data-fraction="{fraction}"')


def _row(w: WorkerProgress, unit: str) -> str:
    colour = COLOURS.get(w.state, COLOURS["busy"])
    danger = " jp-par-danger" if w.state == FAILED else ""
    pct = "" if w.fraction is None else percent_text(w.fraction)
    note = f"partition {w.partition}" if w.partition is not None else ""
    row = (
        # Inline display: in JupyterLab the extension's CSS makes `.jp-par-worker` a grid.
        f'<tr class="jp-par-worker jp-par-{w.state}{danger}" style="display:table-row"'
        f"{_attributes(w)}>"
        f"<td>worker {html.escape(w.worker)}</td>"
        f'<td style="color:{colour};font-weight:bold">{w.state}</td>'
        f'<td style="width:35%">{_bar(w.fraction, colour)}</td><td>{pct}</td>'
        f"<td>{w.rows_done:,} {unit}</td><td>{w.rows_per_second:,.0f} {unit}/s</td>"
        f"<td>{note}</td></tr>"
    )
    if w.error:
        row += (f'<tr class="jp-par-error" style="display:table-row"><td></td>'
                f'<td colspan="6" style="color:{COLOURS["failed"]}">'
                f"{html.escape(w.error)}</td></tr>")
    return row


def _cell(w: WorkerProgress) -> str:
    colour = COLOURS.get(w.state, COLOURS["busy"])
    border = f"border:1px solid {colour};" if w.state == FAILED else ""
    return (
        f'<div class="jp-par-worker jp-par-{w.state}" style="{border}padding:1px 3px"'
        f'{_attributes(w)} title="{html.escape(w.error or "")}">'
        f'<div style="display:flex;justify-content:space-between;gap:4px;font-size:85%">'
        f"<b>{html.escape(w.worker)}</b><span>{compact_count(w.rows_done)}</span>"
        f'<span style="color:{colour}">{w.state}</span></div>'
        f"{_bar(w.fraction, colour, 5)}</div>"
    )


def render_log(entries: Sequence[dict[str, Any]]) -> str:
    """What running partitions printed lately: a block per partition, its last lines."""
    blocks = "".join(
        f'<div style="margin-top:2px"><span style="font-size:85%;color:#666">partition '
        f'{e["partition"]} · worker {html.escape(str(e["worker"]))}</span>'
        f'<pre style="margin:0;padding:2px 4px;max-height:8em;overflow:auto;'
        f'background:rgba(128,128,128,0.08);font-size:85%">{html.escape(e["text"])}</pre></div>'
        for e in entries if e["text"])
    return f'<div class="jp-par-log">{blocks}</div>' if blocks else ""


def render_html(progress: RunProgress, log: Sequence[dict[str, Any]] = ()) -> str:
    """The whole run as one HTML fragment: an overall line, the workers, then what the
    running partitions printed lately (``log``: see
    :class:`~jupyter_par.progress.records.LiveLog`)."""
    unit = html.escape(progress.unit)
    total = "?" if progress.rows_total is None else f"{progress.rows_total:,}"
    state = progress.state
    fraction = progress.fraction
    overall_colour = {"done": COLOURS["done"], "failed": COLOURS["failed"],
                      "cancelled": COLOURS["cancelled"]}.get(state, COLOURS["busy"])
    eta = "" if state != RUNNING else f" · ETA {format_seconds(progress.eta)}"
    # A stopped run's status already says how far it got ("cancelled at 93%").
    stopped = state in ("cancelled", "failed")
    percent = "" if fraction is None or stopped else f"{percent_text(fraction)} · "
    parts_total = "?" if progress.partitions_total is None else progress.partitions_total
    head = (
        f"<b>{html.escape(progress.label or 'parallel')}</b> · "
        f'<span style="color:{overall_colour};font-weight:bold">'
        f"{html.escape(progress.status)}</span> · {percent}"
        f"{progress.rows_done:,}/{total} {unit} · "
        f"partitions {progress.partitions_done}/{parts_total} · "
        f"elapsed {format_seconds(progress.elapsed)}{eta}"
    )
    message = ""
    if progress.message and state == "failed":
        message = f'<div style="color:{COLOURS["failed"]}">{html.escape(progress.message)}</div>'
    workers = progress.workers
    counts = f'<div style="font-size:90%">workers: {state_counts(progress)}</div>'
    if len(workers) <= ROWS_UP_TO:
        body = ('<table style="width:100%;border-collapse:collapse;font-size:90%">'
                f"{''.join(_row(w, unit) for w in workers)}</table>")
    else:
        errors = "".join(
            f'<div style="color:{COLOURS["failed"]}">worker {html.escape(w.worker)}: '
            f"{html.escape(w.error)}</div>" for w in workers if w.error)
        body = ('<div style="display:grid;grid-template-columns:repeat(auto-fill,'
                'minmax(110px,1fr));gap:3px 6px;font-size:90%">'
                f"{''.join(_cell(w) for w in workers)}</div>{errors}")
    overall_fraction = fraction if fraction is not None else 0.0
    return (
        f'<div class="jp-par-progress" data-state="{state}" data-done="{progress.rows_done}"'
        f' data-total="{progress.rows_total if progress.rows_total is not None else ""}">'
        f"<div>{head}</div>{_bar(overall_fraction, overall_colour)}{message}{counts}"
        f"{body}{render_log(log)}</div>"
    )


def explain_html(text: str) -> str:
    """The line under a finished run: where its time went
    (:func:`jupyter_par.progress.timings.explain`)."""
    if not text:
        return ""
    return (f'<div class="jp-par-explain" style="font-size:90%;color:#616161">'
            f"{html.escape(text)}</div>")
