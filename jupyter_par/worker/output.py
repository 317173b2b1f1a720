"""Worker output while a run goes: printed text and ``logging`` records, sent as they come.

A partition's prints are captured (so they are shown grouped, never interleaved), but a
long partition's progress messages are worth nothing at the end. So a worker sends what
its running partitions printed a few times a second (:data:`SEND_EVERY`), from one
background thread per worker process, through whatever its backend uses to talk to the
kernel (the pipe, a Dask event, a queue). The kernel shows these pieces in the progress
view while the run goes; the whole output still comes with the partition's result.

``logging`` records made in a worker process travel as plain data and are handled again
in the kernel, by the logger of the same name (:func:`reemit`): the kernel's own handlers,
levels and formatters decide what is shown, as in a serial run. The worker takes the
kernel's logger levels (:func:`kernel_levels`) with each run, so it makes the records the
kernel would, and no others. Threads of the kernel need none of this: their records reach
the kernel's handlers directly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: Seconds between two sends of a running partition's new output.
SEND_EVERY = 0.25

#: How a worker sends new output: ``send(text, records)``.
Send = Callable[[str, tuple["LogRecordData", ...]], None]


class LiveBuffer(io.StringIO):
    """A partition's print buffer that also knows what of it was not sent yet.

    Written by the task's thread, read by the sending thread: both under one lock.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._sent = 0

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)

    def unsent(self) -> str:
        """The text written since the last call."""
        with self._lock:
            text = self.getvalue()
            new, self._sent = text[self._sent:], len(text)
        return new


@dataclass(frozen=True)
class LogRecordData:
    """A ``logging.LogRecord`` as plain data: the message already formatted, the
    exception as text (tracebacks cannot travel)."""

    name: str
    levelno: int
    levelname: str
    message: str
    pathname: str
    lineno: int
    funcName: str  # the LogRecord attribute's own name
    created: float
    exc_text: str | None = None
    stack_info: str | None = None

    @classmethod
    def of(cls, record: logging.LogRecord) -> LogRecordData:
        """The data of ``record``, its arguments merged into the message."""
        try:
            message = record.getMessage()
        except Exception as exc:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} (could not be formatted: {exc})"
        exc_text = record.exc_text
        if exc_text is None and record.exc_info and record.exc_info[0] is not None:
            exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        return cls(record.name, record.levelno, record.levelname, message, record.pathname,
                   record.lineno, record.funcName, record.created, exc_text, record.stack_info)

    def record(self, **extra: Any) -> logging.LogRecord:
        """A ``LogRecord`` for the kernel's handlers (``extra`` becomes attributes)."""
        return logging.makeLogRecord({
            "name": self.name, "levelno": self.levelno, "levelname": self.levelname,
            "msg": self.message, "args": None, "pathname": self.pathname,
            "lineno": self.lineno, "funcName": self.funcName, "created": self.created,
            "exc_text": self.exc_text, "stack_info": self.stack_info, **extra,
        })


class OutputChannel:
    """One running partition's new output, sent by the worker's sending thread."""

    def __init__(self, buffer: LiveBuffer, send: Send) -> None:
        self.buffer, self.send = buffer, send
        self._records: list[LogRecordData] = []
        self._lock = threading.Lock()

    def add_record(self, record: LogRecordData) -> None:
        with self._lock:
            self._records.append(record)

    def flush(self) -> None:
        """Send what came since the last flush, if anything did."""
        with self._lock:
            records, self._records = tuple(self._records), []
        text = self.buffer.unsent()
        if text or records:
            self.send(text, records)


_channels: dict[int, OutputChannel] = {}  # thread ident -> the partition it runs
_channels_lock = threading.Lock()
_sender: threading.Thread | None = None


def _send_loop() -> None:
    while True:
        time.sleep(SEND_EVERY)
        with _channels_lock:
            channels = list(_channels.values())
        for channel in channels:
            with contextlib.suppress(Exception):  # the kernel went away: nothing to tell
                channel.flush()


@contextlib.contextmanager
def streaming(buffer: LiveBuffer, send: Send | None):
    """Send ``buffer``'s new text (and the thread's log records) while the block runs;
    what is left is sent when it ends, before the partition's result."""
    global _sender
    if send is None:
        yield None
        return
    channel = OutputChannel(buffer, send)
    ident = threading.get_ident()
    with _channels_lock:
        _channels[ident] = channel
        if _sender is None or not _sender.is_alive():
            _sender = threading.Thread(target=_send_loop, name="jupyter_par-output",
                                       daemon=True)
            _sender.start()
    try:
        yield channel
    finally:
        with _channels_lock:
            _channels.pop(ident, None)
        channel.flush()


# -- logging in worker processes -------------------------------------------------------
_forwarding = False
_original_call_handlers = logging.Logger.callHandlers


def _call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
    """``Logger.callHandlers`` in a worker process: a record made by a running
    partition goes to the kernel instead of this process's handlers (which, under fork,
    are copies of the kernel's whose output would be lost)."""
    channel = _channels.get(threading.get_ident())
    if channel is None:
        _original_call_handlers(self, record)
        return
    channel.add_record(LogRecordData.of(record))


def forward_logging() -> None:
    """In a worker process: send the records partitions make to the kernel (idempotent)."""
    global _forwarding
    if not _forwarding:
        _forwarding = True
        logging.Logger.callHandlers = _call_handlers  # type: ignore[method-assign]


def kernel_levels() -> dict[str, int]:
    """The kernel's logger levels that differ from the default, and ``logging.disable``.

    ``""`` is the root logger; ``"<disable>"`` the level ``logging.disable`` set.
    """
    levels = {"": logging.getLogger().level, "<disable>": logging.root.manager.disable}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


_applied: dict[str, int] = {}


def apply_levels(levels: dict[str, int] | None, keep: tuple[str, ...] = ()) -> None:
    """In a worker process: take the kernel's logger levels, so that a partition makes
    exactly the records the kernel would have made. Loggers named in ``keep`` (and
    their children) keep their own."""
    global _applied
    if levels and keep:
        levels = {name: level for name, level in levels.items()
                  if not any(name == k or name.startswith(k + ".") for k in keep)}
    if not levels or levels == _applied:
        return
    for name in set(_applied) - set(levels):
        if name not in ("", "<disable>"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    for name, level in levels.items():
        if name == "<disable>":
            logging.disable(level)
        else:
            logging.getLogger(name or None).setLevel(level)
    _applied = dict(levels)


def reemit(records: Iterable[LogRecordData], partition: int, worker: str) -> None:
    """In the kernel: hand each record to the logger of its name, as if made here.

    The record carries ``jp_partition`` and ``jp_worker`` attributes, for formatters
    that want to say where it came from.
    """
    for data in records:
        logger = logging.getLogger(data.name or None)
        if logger.isEnabledFor(data.levelno):
            logger.handle(data.record(jp_partition=partition, jp_worker=worker))
