"""How an error is shown: the one place that turns a failure into what the user sees.

- which frames are hidden (:func:`hidden_frame`: jupyter_par's, pandas', and for a
  short traceback IPython's; pandas' own tests are callers);
- a worker's failure raised in the caller (:func:`from_worker`: the user's own type,
  the worker's traceback as its cause, a note naming the partition);
- an error raised on the caller's behalf shown short (:func:`show_short`);
- the notebook's view of a failed cell (:func:`for_cell`, :func:`notebook_lines`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import traceback
import types
from collections.abc import Mapping

from .errors import (
    PACKAGE_DIR,
    FailureSite,
    JupyterParError,
    RemoteTraceback,
    ShippingError,
    WorkerError,
)


@functools.cache
def _pandas_dirs() -> tuple[str, str]:
    """pandas' directory, and that of its tests (found without importing pandas here)."""
    import importlib.util

    spec = importlib.util.find_spec("pandas")
    origin = spec.origin if spec is not None and spec.origin else ""
    root = os.path.dirname(os.path.abspath(origin)) + os.sep if origin else "\0"
    return root, os.path.join(root, "tests") + os.sep


def _ipython_dir() -> str | None:
    ipython = sys.modules.get("IPython")
    path = getattr(ipython, "__file__", None) if ipython is not None else None
    return os.path.dirname(os.path.abspath(path)) + os.sep if path else None


def hidden_frame(filename: str, *, pandas: bool = True, ipython: bool = False) -> bool:
    """Whether a frame of ``filename`` is hidden from what users see.

    jupyter_par's own frames are; pandas' too (a serial call would have pointed past
    them) unless ``pandas=False``, but not pandas' own tests (they are callers, as
    pandas' ``find_stack_level`` has it); IPython's where asked (``ipython``).
    """
    if filename.startswith(PACKAGE_DIR):
        return True
    pandas_dir, pandas_tests = _pandas_dirs()
    if pandas and filename.startswith(pandas_dir) and not filename.startswith(pandas_tests):
        return True
    here = _ipython_dir() if ipython else None
    return here is not None and filename.startswith(here)


def format_worker_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` in a worker, with the hidden frames left out."""
    formatted = traceback.TracebackException.from_exception(exc)
    kept = [f for f in formatted.stack if not hidden_frame(f.filename)]
    if kept:
        formatted.stack = traceback.StackSummary.from_list(kept)
    return "".join(formatted.format())


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``; before Python 3.11, PEP 678's ``__notes__`` list, which the
    ``exceptiongroup`` backport (IPython's dependency there) prints with the traceback."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
        return
    notes = getattr(exc, "__notes__", None)
    with contextlib.suppress(AttributeError, TypeError):
        exc.__notes__ = [*(notes if isinstance(notes, list) else []), note]  # type: ignore[attr-defined]


def from_worker(exception: BaseException | None, type_name: str, message: str,
                traceback_text: str, site: FailureSite, *, in_caller: bool) -> BaseException:
    """The exception the caller gets for a task that raised.

    The user's own type when it came back (so ``except ValueError`` works as in a
    serial run), else a :class:`WorkerError` with its name and message; the worker's
    traceback as its cause (not for a task run in the caller: its frames are real);
    a note naming the partition, rows and worker.
    """
    exc = exception if exception is not None else WorkerError(type_name, message, site)
    if not in_caller:
        exc.__cause__ = RemoteTraceback(traceback_text, site)
        exc.__suppress_context__ = True
    add_note(exc, f"jupyter_par: raised in {site.describe()}")
    return exc


def short_traceback(exc: BaseException) -> list[str]:
    """The caller's own frames and the message, for IPython's ``_render_traceback_``."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    cells = getattr(getattr(shell, "compile", None), "_filename_map", {})
    lines = ["-" * 75, f"{type(exc).__name__:<42}Traceback (most recent call last)"]
    for frame in traceback.extract_tb(exc.__traceback__):
        if hidden_frame(frame.filename, pandas=False, ipython=True):
            continue
        if frame.filename in cells:
            lines.append(f"Cell In[{cells[frame.filename]}], line {frame.lineno}")
        else:
            lines.append(f'File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line}")
    return [*lines, f"{type(exc).__name__}: {exc}"]


def show_short(exc: BaseException) -> bool:
    """Whether ``exc`` is to be raised without its traceback (then it shows short).

    An object that cannot be sent is reported on the caller's behalf: the message
    names the object and what to do; the engine's frames and the pickler's own error
    would only bury it. A worker's own failure keeps everything.
    """
    if not isinstance(exc, ShippingError) or isinstance(exc.__cause__, RemoteTraceback):
        return False
    exc._render_traceback_ = functools.partial(short_traceback, exc)  # type: ignore[attr-defined]
    return True


def for_cell(exc: BaseException,
             cell_names: Mapping[str, int]) -> types.TracebackType | None:
    """Prepare a failed cell's error: name its cells; return the traceback to raise with.

    A worker's traceback says ``Cell In[n]`` where it names a notebook cell's file; the
    kernel-side traceback starts at the first frame outside jupyter_par.
    """
    cause = exc.__cause__
    if isinstance(cause, RemoteTraceback):
        text = cause.traceback_text
        for filename, number in cell_names.items():
            if filename in text:
                text = text.replace(f'File "{filename}"', f"Cell In[{number}]")
        cause.traceback_text = text
        cause.args = (text,)
    tb = exc.__traceback__
    while tb is not None and hidden_frame(tb.tb_frame.f_code.co_filename, pandas=False):
        tb = tb.tb_next
    return tb


def notebook_lines(exc: BaseException) -> list[str] | None:
    """What the notebook shows for a failed run, when IPython's own rendering would mislead.

    A worker's failure: the worker's traceback (already naming the cells) as if it had
    happened here, without the kernel-side frames. jupyter_par's own errors (timeout,
    dead worker, cancel): their one-line message. An exception raised in the kernel
    itself (``--jobs 1``): None, IPython's rendering (its frames are the real ones).
    """
    cause = exc.__cause__
    notes = [n for n in getattr(exc, "__notes__", []) if isinstance(n, str)]
    if isinstance(cause, RemoteTraceback):
        frames = cause.traceback_text.rstrip().splitlines()
        if frames and frames[0].startswith("Traceback"):
            frames = frames[1:]
        header = f"{type(exc).__name__:<42}Traceback (most recent call last)"
        # A note made in the worker (a failing worker_init) is in its traceback already.
        return ["-" * 75, header, *frames, *[n for n in notes if n not in frames]]
    if isinstance(exc, JupyterParError):
        return [f"{type(exc).__name__}: {exc}", *notes]
    return None
