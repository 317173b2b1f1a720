"""Runs that leave the notebook free: a handle now, the result when the run ends.

Data flow::

    caller (main thread) ──sinks made and shown here, work──▶ start ──▶ BackgroundRun
    BackgroundRun.thread ──work(cancel, sinks)──▶ pipeline.execute ──▶ value / exception
    BackgroundRun ──finish(value) (the magic's write-back)──▶ notebook

The run goes on a thread of the kernel; its workers are processes (or threads), so the
kernel's main thread is free for other cells. A kernel interrupt raises
KeyboardInterrupt in the main thread only, so it stops the cell running there, not a
background run; :meth:`BackgroundRun.cancel` (or the view's Cancel) does.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..progress.records import ProgressSink, RunProgress

_runs: list[BackgroundRun] = []
_runs_lock = threading.Lock()


class _Recorder:
    """A sink that keeps the last progress record, for :attr:`BackgroundRun.progress`."""

    def __init__(self) -> None:
        self.last: RunProgress | None = None

    def update(self, progress: RunProgress) -> None:
        self.last = progress

    def close(self, progress: RunProgress) -> None:
        self.last = progress


class BackgroundRun:
    """A run going on in the background: ``result()``, ``done()``, ``cancel()``, ...

    Made by ``background=True`` / ``%%parallel --background``; listed by
    :func:`runs`. Like :class:`concurrent.futures.Future`, ``result(timeout)`` waits
    and returns the value or raises the run's exception.
    """

    def __init__(self, label: str, work: Callable[[threading.Event, list[Any], TextIO], Any],
                 sinks: Sequence[ProgressSink] = (),
                 finish: Callable[[Any], str | None] | None = None) -> None:
        self.label = label
        self.started = time.time()
        self.ended: float | None = None
        #: Why the result was not written where it was meant to go (the magic's TARGET).
        self.note: str | None = None
        self._cancel = threading.Event()
        self._recorder = _Recorder()
        self._sinks = [*sinks, self._recorder]
        self._work, self._finish = work, finish
        #: What the partitions printed (shown under the view when the run ends).
        self.output = io.StringIO()
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"jupyter_par-background-{label}")

    def _main(self) -> None:
        try:
            self._value = self._work(self._cancel, self._sinks, self.output)
            if self._finish is not None:
                self.note = self._finish(self._value)
        except BaseException as exc:  # noqa: BLE001 - kept for result()/exception()
            self._error = exc
        finally:
            self.ended = time.time()
            self._show_output()
            self._done.set()

    def _show_output(self) -> None:
        """Show what the run printed where its view is (or on standard output)."""
        text = self.output.getvalue()
        if not text:
            return
        for sink in self._sinks:
            late = getattr(sink, "late_output", None)
            if callable(late) and late(text):
                return
        sys.stdout.write(text)

    # -- the Future-like face -----------------------------------------------------
    def done(self) -> bool:
        """Whether the run has ended (succeeded, failed or was cancelled)."""
        return self._done.is_set()

    def running(self) -> bool:
        """Whether the run is still going."""
        return not self._done.is_set()

    def cancel(self) -> bool:
        """Ask the run to stop (workers stop within about a second); False if it ended."""
        if self._done.is_set():
            return False
        self._cancel.set()
        return True

    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was asked before the run ended."""
        return self._cancel.is_set()

    def _wait(self, timeout: float | None) -> None:
        if not self._done.wait(timeout):
            msg = f"{self.label} is still running after {timeout:g} s"
            raise TimeoutError(msg)

    def result(self, timeout: float | None = None) -> Any:
        """Wait (up to ``timeout`` seconds) and return the value, or raise the run's error."""
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait (up to ``timeout`` seconds) and return the run's error, or ``None``."""
        self._wait(timeout)
        return self._error

    @property
    def progress(self) -> RunProgress | None:
        """The latest progress record (``None`` before the first one, or without bars)."""
        return self._recorder.last

    def __repr__(self) -> str:
        if not self.done():
            last = self.progress
            state = "running" if last is None or last.fraction is None else \
                f"running, {last.fraction:.0%}"
        elif self._error is not None:
            state = f"failed: {type(self._error).__name__}"
        else:
            state = "done" + (f" ({self.note})" if self.note else "")
        return f"<BackgroundRun {self.label} · {state}>"


def start(label: str, work: Callable[[threading.Event, list[Any], TextIO], Any],
          sinks: Sequence[ProgressSink] = (),
          finish: Callable[[Any], str | None] | None = None) -> BackgroundRun:
    """Start ``work(cancel, sinks, output)`` on a thread; return its handle at once.

    ``sinks`` are made by the caller's thread (so a view shows under the calling
    cell); one with ``show()`` is shown now, one with ``on_cancel`` gets the handle's
    cancel for its Cancel button. What ``work`` writes to ``output`` is shown when
    the run ends, by a sink's ``late_output`` if one has a place for it.
    ``finish(value)`` runs on the thread after a successful run and returns why it
    did not store the value, or ``None``.
    """
    handle = BackgroundRun(label, work, sinks, finish)
    for sink in sinks:
        if callable(getattr(sink, "on_cancel", None)):
            sink.on_cancel(handle.cancel)
        if callable(getattr(sink, "show", None)):
            sink.show(with_output=True)
    with _runs_lock:
        _runs.append(handle)
    handle._thread.start()
    return handle


def runs() -> list[BackgroundRun]:
    """The background runs of this session, oldest first (running and ended)."""
    with _runs_lock:
        return list(_runs)


def wait(timeout: float | None = None) -> list[BackgroundRun]:
    """Wait until every background run has ended (or ``timeout`` seconds); return them."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for handle in runs():
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        handle._done.wait(left)
    return runs()
