"""``jp.Panel()``: run a notebook function over a notebook DataFrame from widgets.

The panel picks a DataFrame and a function from the notebook's namespace, how to cut
the frame (rows, groups of a ``by`` column, columns), the number of workers (a
slider) and the backend. Run starts the work in a background thread (see
:mod:`jupyter_par.widgets.runner`) so the Cancel click reaches the kernel while the
workers run; the result is stored under the result name only when every partition
succeeded. Tune (:mod:`jupyter_par.widgets.tune`) measures the speedup on a sample and
moves the slider to the recommended count. Nothing here decides an option's default:
the slider and the backend start from the session's options
(:func:`jupyter_par.run.options.resolve`).
"""

from __future__ import annotations

import functools
import html
import inspect
import io
import keyword
import re
import warnings
from typing import Any

import ipywidgets as W
import pandas as pd

from ..backends import BACKENDS
from ..errors import CancelledError, UsageError
from ..run.options import resolve, usable_cpus
from .progress_view import NotebookProgress, format_seconds
from .runner import Job, Selection
from .tune import TuneResult, measure, plot_png

#: Functions from these packages are tools, not the notebook's own work.
_LIBRARY_PACKAGES = {"jupyter_par", "pandas", "numpy", "IPython", "ipywidgets", "builtins"}
_RED, _GREEN = "#c62828", "#2e7d32"


def _user_namespace() -> dict[str, Any]:
    try:
        from IPython import get_ipython
    except ImportError:
        shell = None
    else:
        shell = get_ipython()
    if shell is None:
        msg = "Panel() needs a notebook (an IPython shell); outside one pass namespace=globals()"
        raise UsageError(msg)
    return shell.user_ns


def frames_in(namespace: dict[str, Any]) -> list[str]:
    """Names of the DataFrames in ``namespace``, hidden (``_``) names left out."""
    return sorted(k for k, v in namespace.items()
                  if not k.startswith("_") and isinstance(v, pd.DataFrame))


def functions_in(namespace: dict[str, Any]) -> list[str]:
    """Names of the functions the notebook defined or imported from its own modules."""
    def wanted(value: Any) -> bool:
        if isinstance(value, functools.partial):
            return True
        if not inspect.isfunction(value):
            return False
        package = (getattr(value, "__module__", None) or "builtins").split(".")[0]
        return package not in _LIBRARY_PACKAGES

    return sorted(k for k, v in namespace.items() if not k.startswith("_") and wanted(v))


class Panel:
    """Widgets to run a notebook function over a DataFrame, with a worker-count slider.

    Parameters
    ----------
    namespace : dict, optional
        Where to find frames and functions and where to store results; the
        notebook's own namespace by default.
    frontend : {"lab", "ipywidgets"}, optional
        How the progress is drawn; chosen like every run's by default.

    Examples
    --------
    >>> panel = jp.Panel()       # doctest: +SKIP
    >>> panel                    # doctest: +SKIP
    """

    def __init__(self, namespace: dict[str, Any] | None = None, *,
                 frontend: str | None = None) -> None:
        self.namespace = _user_namespace() if namespace is None else namespace
        with warnings.catch_warnings():  # a capped worker count warns when a run starts
            warnings.simplefilter("ignore")
            defaults = resolve(progress=False)
        cpus = usable_cpus()
        self.frame_picker = W.Dropdown(description="DataFrame")
        self.func_picker = W.Dropdown(description="function")
        self.refresh_button = W.Button(icon="refresh", tooltip="look for new frames and functions",
                                       layout=W.Layout(width="40px"))
        self.mode_picker = W.ToggleButtons(
            options=[("rows", "rows"), ("groups", "groups"), ("columns", "columns")],
            description="split by", style={"button_width": "80px"})
        self.by_picker = W.Dropdown(description="by", disabled=True)
        self.jobs_slider = W.IntSlider(value=min(defaults.jobs, max(8, 2 * cpus)),
                                       min=1, max=max(8, 2 * cpus), description="workers")
        self.backend_picker = W.Dropdown(options=list(BACKENDS), value=defaults.chosen.asked,
                                         description="backend")
        self.result_name = W.Text(value="result", description="result name")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.cancel_button = W.Button(description="Cancel", button_style="danger", icon="stop",
                                      disabled=True)
        self.tune_button = W.Button(description="Tune", icon="sliders",
                                    tooltip="measure the speedup on a sample; set the slider")
        self.progress = NotebookProgress(frontend=frontend)
        self.summary = W.HTML()
        self.log = W.Output()
        self.tune_output = W.Output()
        self.widget = W.VBox([
            W.HBox([self.frame_picker, self.func_picker, self.refresh_button]),
            W.HBox([self.mode_picker, self.by_picker]),
            W.HBox([self.jobs_slider, self.backend_picker, self.result_name]),
            W.HBox([self.run_button, self.cancel_button, self.tune_button]),
            self.progress.widget, self.summary, self.log, self.tune_output,
        ])
        self.job: Job | None = None
        self.last_tune: TuneResult | None = None
        self._serial_seconds: dict[tuple[Any, ...], float] = {}
        self.refresh_button.on_click(lambda _: self.refresh())
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.tune_button.on_click(lambda _: self.tune())
        self.frame_picker.observe(lambda _: self._refresh_columns(), names="value")
        self.mode_picker.observe(lambda _: self._refresh_columns(), names="value")
        self.progress.on_cancel(self.cancel)
        self.refresh()

    # -- choices --------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the notebook's frames and functions, keeping the current choices."""
        for picker, names in ((self.frame_picker, frames_in(self.namespace)),
                              (self.func_picker, functions_in(self.namespace))):
            current = picker.value
            picker.options = names
            picker.value = current if current in names else (names[0] if names else None)
        self._refresh_columns()

    def _refresh_columns(self) -> None:
        frame = self.namespace.get(self.frame_picker.value)
        columns = [c for c in frame.columns if isinstance(c, str)] if frame is not None else []
        current = self.by_picker.value
        self.by_picker.options = columns
        self.by_picker.value = current if current in columns else (columns[0] if columns else None)
        self.by_picker.disabled = self.mode_picker.value != "groups"

    def selection(self) -> Selection:
        """The chosen frame, function and split, checked."""
        frame_name, func_name = self.frame_picker.value, self.func_picker.value
        frame = self.namespace.get(frame_name) if frame_name else None
        func = self.namespace.get(func_name) if func_name else None
        if not isinstance(frame, pd.DataFrame):
            msg = "pick a DataFrame (press ↻ after defining one)"
            raise UsageError(msg)
        if not callable(func):
            msg = "pick a function (press ↻ after defining one)"
            raise UsageError(msg)
        return Selection(frame, func, self.mode_picker.value, self.by_picker.value)

    def _checked_result_name(self) -> str:
        name = self.result_name.value.strip()
        if not name.isidentifier() or keyword.iskeyword(name):
            msg = f"the result name must be a Python name, got {name!r}"
            raise UsageError(msg)
        return name

    # -- actions ----------------------------------------------------------------------
    def run(self) -> Job | None:
        """Start a run with the slider's worker count; return its job (None if refused)."""
        if self._refuse_if_running():
            return None
        try:
            selection, name = self.selection(), self._checked_result_name()
            options = resolve(jobs=self.jobs_slider.value, backend=self.backend_picker.value,
                              progress=False)
        except UsageError as exc:
            self._say(str(exc), _RED)
            return None
        key = (self.frame_picker.value, self.func_picker.value, selection.mode, selection.by,
               len(selection.frame))
        self.log.outputs = ()
        self._say(f"running on {options.jobs} worker(s) ({options.backend})…")

        def work(cancel: Any) -> Any:
            stream = io.StringIO()
            try:
                result, outcome = selection.run(options, sinks=[self.progress], cancel=cancel,
                                           output=stream)
            except BaseException as exc:
                self._report_failure(exc, job)
                raise
            finally:
                self._set_busy(False)
            self.namespace[name] = result
            seconds = outcome.elapsed if outcome is not None else 0.0
            self._report_success(name, result, options.jobs, options.backend, seconds, key)
            if stream.getvalue():
                self.log.append_stdout(stream.getvalue())
            return result

        job = self.job = Job(work)
        self._set_busy(True)
        return job.start()

    def cancel(self) -> None:
        """Stop the run or the tuning now; no notebook variable changes."""
        if self.job is not None and self.job.running:
            self.job.cancel()
            self._say("cancelling…")

    def tune(self, seconds: float = 1.0, counts: list[int] | None = None) -> Job | None:
        """Measure the speedup on a sample at 1, 2, 4, ... workers; move the slider."""
        if self._refuse_if_running():
            return None
        try:
            selection = self.selection()
        except UsageError as exc:
            self._say(str(exc), _RED)
            return None
        backend = self.backend_picker.value
        self.tune_output.outputs = ()
        self._say("tuning: timing a sample at several worker counts…")

        def step(count: int, took: float) -> None:
            self._say(f"tuning: {count} worker(s) took {took:.3f} s…")

        def work(cancel: Any) -> TuneResult:
            try:
                result = measure(selection, counts=counts, backend=backend, seconds=seconds,
                                 cancel=cancel, sinks=[self.progress], on_step=step)
            except BaseException as exc:
                self._report_failure(exc, job)
                raise
            finally:
                self._set_busy(False)
            self.last_tune = result
            self.jobs_slider.value = max(self.jobs_slider.min,
                                         min(self.jobs_slider.max, result.recommended))
            self._show_tune(result)
            return result

        job = self.job = Job(work, name="jupyter_par-tune")
        self._set_busy(True)
        return job.start()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the current run or tuning; return its result (re-raising its error)."""
        if self.job is None:
            return None
        self.job.wait(timeout)
        if self.job.error is not None:
            raise self.job.error
        return self.job.result

    # -- reporting --------------------------------------------------------------------
    def _refuse_if_running(self) -> bool:
        if self.job is not None and self.job.running:
            self._say("a run is in progress: wait for it or press Cancel", _RED)
            return True
        return False

    def _set_busy(self, busy: bool) -> None:
        self.run_button.disabled = self.tune_button.disabled = busy
        self.cancel_button.disabled = not busy

    def _say(self, text: str, colour: str | None = None, *, markup: bool = False) -> None:
        body = text if markup else html.escape(text)
        self.summary.value = f'<span style="color:{colour}">{body}</span>' if colour else body

    def _report_success(self, name: str, result: Any, jobs: int, backend: str,
                        seconds: float, key: tuple[Any, ...]) -> None:
        shape = (f"{result.shape[0]:,} x {result.shape[1]:,}" if isinstance(result, pd.DataFrame)
                 else f"{len(result):,} rows" if isinstance(result, pd.Series)
                 else type(result).__name__)
        text = (f"done in {format_seconds(seconds)} with {jobs} worker(s) ({backend}); "
                f"stored as <code>{html.escape(name)}</code> ({shape}). ")
        if jobs == 1:
            self._serial_seconds[key] = seconds
        elif key in self._serial_seconds and seconds > 0:
            serial = self._serial_seconds[key]
            ratio = serial / seconds
            faster = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
            text += (f"<b>{faster}</b> than the last 1-worker run ({format_seconds(serial)})"
                     + ("." if ratio >= 1 else ": the work is too small to gain from workers, "
                        "or the CPUs are busy; try Tune."))
        else:
            text += "Run once with 1 worker to see the speedup."
        self._say(text, _GREEN, markup=True)

    def _report_failure(self, exc: BaseException, job: Job) -> None:
        if isinstance(exc, CancelledError | KeyboardInterrupt):
            took = format_seconds((job.ended or _now()) - job.started)
            self._say(f"cancelled after {took}; no notebook variable was changed", _RED)
            return
        notes = " ".join(getattr(exc, "__notes__", []))
        self._say(f"failed: {type(exc).__name__}: {exc} {notes}; no notebook variable "
                  "was changed", _RED)
        cause = exc.__cause__
        if cause is not None and str(cause):
            self.log.append_stderr(str(cause) + "\n")

    def _show_tune(self, result: TuneResult) -> None:
        from IPython.display import HTML, Image

        png = plot_png(result)
        shown = Image(data=png, format="png") if png else HTML(
            f"<pre>{html.escape(result.table())}</pre>")
        self.tune_output.append_display_data(shown)
        self._say(f"tuned on {result.rows:,} sample rows: best speedup "
                  f"{max(result.speedups):.2f}x; recommended {result.recommended} worker(s); "
                  "the slider is set to it" + (f"; {result.note}" if result.note else ""),
                  _GREEN)

    @property
    def summary_text(self) -> str:
        """The summary line without markup (for scripts and logs)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.summary.value))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _now() -> float:
    import time

    return time.monotonic()
