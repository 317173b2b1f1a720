"""Progress as text: live tqdm bars on a terminal, a few plain lines anywhere else.

A terminal redraws bars in place. A file, a pipe or a CI log cannot: every redraw would
be kept, escape sequences and all. So :class:`TextProgress` looks at its stream once:

- a terminal gets one live overall bar and one per worker; at the end they are erased
  and the final state is printed once (one overall line, one line per worker);
- anything else gets a start line, a summary every ``interval`` seconds, and an end line
  (with the error of each failed worker).

On a terminal, what workers print appears while the run goes, line by line above the
bars, each line prefixed with its partition and worker (``[p3 w1] loaded 200 rows``);
it is then not printed again at the end. Elsewhere a partition's output is printed
once, grouped under its heading, when the run ends.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from .records import RUNNING, format_seconds, percent_text

if TYPE_CHECKING:
    from .records import RunProgress, WorkerProgress

#: Seconds between two summary lines on a stream that is not a terminal.
PLAIN_INTERVAL = 5.0
# Fixed bar widths keep the overall bar and the workers' bars in columns; the text after
# a bar is put in literally (tqdm's own postfix field starts with a comma).
# The percentage is jupyter_par's (rounded down like the status line), not tqdm's.
_WORKER_BAR = "{desc} |{bar:24}| PERCENT "
_OVERALL_BAR = "{desc}: PERCENT|{bar:30}| "


def _with_text(bar_format: str, fraction: float | None, text: str) -> str:

    shown = "?" if fraction is None else percent_text(fraction)
    return bar_format.replace("PERCENT", f"{shown:>4}") + text.replace("{", "{{").replace(
        "}", "}}")


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (bars can be redrawn in place)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def overall_details(progress: RunProgress) -> str:
    """``"180,000/400,000 rows · 3/16 partitions · 12.0 s · ETA 14.6 s · 8/8 workers busy"``.

    A stopped run leads with where it stopped: ``"cancelled at 93% · ..."``.
    """

    parts = [] if progress.state == RUNNING else [progress.status]
    parts.append(f"{_count(progress.rows_done)}/{_count(progress.rows_total)} {progress.unit}")
    parts.append(f"{progress.partitions_done}/{_count(progress.partitions_total)} partitions")
    parts.append(format_seconds(progress.elapsed))
    if progress.state == RUNNING:
        parts.append(f"ETA {format_seconds(progress.eta)}")
        busy = sum(w.state == "busy" for w in progress.workers)
        parts.append(f"{busy}/{len(progress.workers)} workers busy")
    return " · ".join(parts)


def overall_line(progress: RunProgress) -> str:
    """``"score: 45% · 180,000/400,000 rows · ..."`` or ``"score: cancelled at 93% · ..."``."""

    fraction = progress.fraction
    head = ""
    if progress.state == RUNNING:
        head = (percent_text(fraction) if fraction is not None else "?%") + " · "
    return f"{progress.label or 'parallel'}: {head}{overall_details(progress)}"


def worker_postfix(w: WorkerProgress, unit: str) -> str:
    """``"busy · 1,234 rows · 95 rows/s · partition 7"``, or the failed worker's error."""
    text = f"{w.state} · {w.rows_done:,} {unit} · {w.rows_per_second:,.0f} {unit}/s"
    if w.error:
        return f"{text} · {w.error}"
    if w.partition is not None:
        return f"{text} · partition {w.partition}"
    return text


class TextProgress:
    """Progress for terminals and scripts; see the module docstring.

    Parameters
    ----------
    per_worker : bool, optional
        Draw a bar per worker on a terminal (the plain lines summarise workers anyway).
    file : file-like, optional
        Where to write; standard error by default, as tqdm does.
    plain : bool, optional
        Force plain lines (True) or live bars (False); by default, bars only on a terminal.
    interval : float, optional
        Seconds between two summary lines in plain mode (:data:`PLAIN_INTERVAL`).
    """

    def __init__(self, *, per_worker: bool = True, file: TextIO | None = None,
                 plain: bool | None = None, interval: float | None = None) -> None:
        self.per_worker = per_worker
        self.file = file
        self.plain = plain
        self.interval = PLAIN_INTERVAL if interval is None else interval
        self._overall: Any = None
        self._bars: dict[str, Any] = {}
        self._last_line: float | None = None
        self._closed = False
        self._partial: dict[int, tuple[str, str]] = {}  # partition -> (worker, open line)

    @property
    def stream(self) -> TextIO:
        """The stream written to (looked up late: tests and notebooks swap stderr)."""
        return self.file if self.file is not None else sys.stderr

    def _is_plain(self) -> bool:
        if self.plain is None:
            self.plain = not is_terminal(self.stream)
        return self.plain

    def update(self, progress: RunProgress) -> None:
        """Show ``progress``: redraw the bars, or print a line when one is due."""
        if self._is_plain():
            self._plain_update(progress)
        else:
            self._bars_update(progress)

    @property
    def keeps_output(self) -> bool:
        """Whether the live lines stay on screen (a terminal), so the output shown at
        the end leaves them out."""
        return not self._is_plain()

    def output(self, partition: int, worker: str, text: str) -> None:
        """Print, on a terminal, the complete lines of what ``partition`` printed."""
        if self._is_plain():
            return  # printed once, grouped, when the run ends
        _, open_line = self._partial.pop(partition, ("", ""))
        *lines, rest = (open_line + text).split("\n")
        if rest:
            self._partial[partition] = (worker, rest)
        self._print_lines(partition, worker, lines)

    def _print_lines(self, partition: int, worker: str, lines: list[str]) -> None:
        if not lines:
            return
        from tqdm.std import tqdm

        prefix = f"[p{partition} w{worker}] "
        # Above the bars (tqdm clears and redraws them), on standard output as prints go.
        tqdm.write("\n".join(prefix + line for line in lines), file=sys.stdout)

    def close(self, progress: RunProgress) -> None:
        """Show the final state once; the bars, if any, make way for it."""
        if self._closed:
            return
        self._closed = True
        for partition, (worker, rest) in sorted(self._partial.items()):
            self._print_lines(partition, worker, [rest])  # lines the partitions left open
        self._partial.clear()
        if self._is_plain():
            if self._last_line is None:
                self._write(self._start_line(progress))
            self._write(overall_line(progress))
            for w in progress.workers:
                if w.error:
                    self._write(f"  worker {w.worker} failed: {w.error}")
            return
        self._erase_bars()
        lines = [self._static_bar(progress.fraction, progress.label or "parallel",
                                  overall_details(progress), _OVERALL_BAR)]
        if self.per_worker:
            width = max((len(w.worker) for w in progress.workers), default=1)
            lines += [
                self._static_bar(w.fraction, f"  worker {w.worker:>{width}}",
                                 worker_postfix(w, progress.unit), _WORKER_BAR)
                for w in progress.workers
            ]
        self._write("\n".join(lines))

    def explain(self, text: str) -> None:
        """One plain line after the final bars: where the run's time went (see
        :func:`jupyter_par.progress.timings.explain`)."""
        self._write(f"  {text}")

    # -- plain lines -------------------------------------------------------------------
    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    @staticmethod
    def _start_line(progress: RunProgress) -> str:
        total = "" if progress.rows_total is None else f"{progress.rows_total:,} {progress.unit}"
        parts = "" if progress.partitions_total is None else \
            f" in {progress.partitions_total} partitions"
        what = f"{total}{parts} " if total or parts else ""
        return (f"{progress.label or 'parallel'}: started · {what}on "
                f"{len(progress.workers)} workers")

    def _plain_update(self, progress: RunProgress) -> None:
        if self._last_line is None:
            self._last_line = progress.elapsed
            self._write(self._start_line(progress))
        elif progress.elapsed - self._last_line >= self.interval:
            self._last_line = progress.elapsed
            self._write(overall_line(progress))

    # -- live bars ---------------------------------------------------------------------
    def _bar(self, position: int, desc: str) -> Any:
        from tqdm.std import tqdm

        # Refreshed by hand with each record (about ten a second); tqdm only draws.
        return tqdm(total=1.0, position=position, desc=desc, leave=False, file=self.stream,
                    dynamic_ncols=True, mininterval=0.0,
                    bar_format=_with_text(_OVERALL_BAR, 0.0, ""))

    @staticmethod
    def _move(bar: Any, fraction: float | None, bar_format: str, text: str) -> None:
        bar.n = fraction or 0.0
        bar.bar_format = _with_text(bar_format, fraction, text)
        bar.refresh()

    def _bars_update(self, progress: RunProgress) -> None:
        label = progress.label or "parallel"
        if self._overall is None:
            self._overall = self._bar(0, label)
        self._move(self._overall, progress.fraction, _OVERALL_BAR, overall_details(progress))
        if not self.per_worker:
            return
        width = max((len(w.worker) for w in progress.workers), default=1)
        for w in progress.workers:
            bar = self._bars.get(w.worker)
            if bar is None:
                bar = self._bars[w.worker] = self._bar(
                    len(self._bars) + 1, f"  worker {w.worker:>{width}}")
            self._move(bar, w.fraction, _WORKER_BAR, worker_postfix(w, progress.unit))

    def _erase_bars(self) -> None:
        # Last position first, so each bar clears its own line and the cursor ends where
        # the overall bar started.
        for bar in [*reversed(self._bars.values()), self._overall]:
            if bar is not None:
                bar.close()
        self._bars.clear()
        self._overall = None

    def _static_bar(self, fraction: float | None, prefix: str, postfix: str,
                    bar_format: str) -> str:
        from tqdm.std import tqdm

        if fraction is None:
            return f"{prefix} {postfix}"
        # Printed once: a line longer than the terminal may wrap, never lose its end.
        return tqdm.format_meter(fraction, 1.0, 0.0, prefix=prefix,
                                 bar_format=_with_text(bar_format, fraction, postfix))
