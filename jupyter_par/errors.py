"""Errors and warnings raised by jupyter_par.

A failure inside a worker reaches the caller as the user's own exception type, so
``except ValueError`` around a parallel call behaves as it would around the serial one.
The worker's formatted traceback travels along as the exception's ``__cause__`` (a
:class:`RemoteTraceback`), and a note names the partition and row that failed.
Everything jupyter_par raises on its own account derives from :class:`JupyterParError`
and from the builtin exception it resembles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: jupyter_par's own files: frames from here are hidden from the tracebacks users see
#: (jupyter_par.shown_errors.hidden_frame).
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class JupyterParError(Exception):
    """Base class of every error jupyter_par raises on its own account."""


class JupyterParWarning(UserWarning):
    """Base class of every warning jupyter_par emits."""


class UsageError(JupyterParError, ValueError):
    """The call itself is wrong: a bad argument, an unsupported input, an unknown name."""


class ShippingError(JupyterParError, TypeError):
    """An object could not be sent to (or back from) a worker."""


class WorkerDiedError(JupyterParError, RuntimeError):
    """A worker process ended while it held a partition (killed, crashed, out of memory)."""


class PartitionTimeoutError(JupyterParError, TimeoutError):
    """A partition ran longer than the ``timeout`` the call allowed."""


class CancelledError(JupyterParError, RuntimeError):
    """The run was cancelled (the panel's Cancel button, or ``RunHandle.cancel``)."""


class BackendUnavailableError(JupyterParError, ImportError):
    """A backend was asked for whose optional dependency is not installed."""


@dataclass(frozen=True)
class FailureSite:
    """Where a failure happened: which partition, which row, which worker."""

    partition: int
    partitions_total: int | None
    rows: str | None = None
    row_label: object = None
    has_row_label: bool = False
    worker: str | None = None
    pid: int | None = None

    def describe(self, *, with_worker: bool = True) -> str:
        """One line naming the partition, rows, row label and worker."""
        total = f" of {self.partitions_total}" if self.partitions_total else ""
        parts = [f"partition {self.partition}{total}"]
        if self.rows:
            parts.append(self.rows)
        if self.has_row_label:
            parts.append(f"row label {self.row_label!r}")
        if with_worker and self.worker is not None:
            pid = f", pid {self.pid}" if self.pid else ""
            parts.append(f"worker {self.worker}{pid}")
        return ", ".join(parts)


class RemoteTraceback(JupyterParError):
    """The traceback of an exception raised in a worker, attached as ``__cause__``.

    IPython shows ``_render_traceback_`` instead of a traceback of this object, so
    the notebook displays the worker's frames with the cell's own line numbers.
    """

    def __init__(self, traceback_text: str, site: FailureSite | None = None) -> None:
        self.traceback_text = traceback_text
        self.site = site
        super().__init__(traceback_text)

    def __str__(self) -> str:
        where = f"in {self.site.describe()}" if self.site else "in a worker"
        return f"\n\nTraceback {where}:\n\"\"\"\n{self.traceback_text.rstrip()}\n\"\"\""

    def _render_traceback_(self) -> list[str]:
        where = f"in {self.site.describe()}" if self.site else "in a worker"
        return [f"Traceback {where}:", *self.traceback_text.rstrip().splitlines()]


class WorkerError(JupyterParError, RuntimeError):
    """A worker raised an exception whose type cannot be rebuilt in this process.

    Carries the original type's name and message so nothing is lost.
    """

    def __init__(self, type_name: str, message: str, site: FailureSite | None = None) -> None:
        self.type_name = type_name
        self.message = message
        self.site = site
        where = f" in {site.describe()}" if site else ""
        super().__init__(f"{type_name}: {message}{where}")


class InlineFallbackWarning(JupyterParWarning):
    """The run went to the kernel: moving the data would have cost more than the work."""


class PartialResultWarning(JupyterParWarning):
    """Some partitions failed and were skipped (``on_error="skip"``)."""


class SerialFallbackWarning(JupyterParWarning):
    """The call ran in the caller, as pandas itself: cut into partitions, its meaning
    would change (a function of the whole Series, a numba engine, a key form that
    bins over the whole input)."""

