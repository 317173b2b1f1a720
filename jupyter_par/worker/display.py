"""``display()`` in a worker: recorded as MIME bundles, shown in the kernel like prints.

A worker process cannot show anything itself: a forked one would send on the
kernel's sockets (ipykernel drops such messages), a spawned one has no ``display``
at all. So while a task runs in a worker, ``display`` (the builtin IPython puts in
every kernel, and IPython's own function when the code imported it) records what
it would show, formatted as the kernel would format it, at its place in the
partition's printed output. The kernel then shows each bundle under the
partition's heading, between the prints that came before and after it.

IPython is imported in a worker only when the code calls ``display``; this module
itself imports nothing of it.
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_local = threading.local()
_installed = False
_formatter: Any = None


@dataclass(frozen=True)
class Shown:
    """One display: ``at`` is where it came in the partition's printed output."""

    at: int
    data: dict[str, Any]
    metadata: dict[str, Any]


class _Recorder:
    def __init__(self, output: Any) -> None:
        self.output, self.shown = output, []

    def add(self, data: Any, metadata: Any) -> None:
        if data:
            self.shown.append(Shown(self.output.tell(), dict(data), dict(metadata or {})))


def _format(obj: Any, include: Any, exclude: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The MIME bundle the kernel would make of ``obj``."""
    global _formatter
    if _formatter is None:
        from IPython.core.interactiveshell import InteractiveShell

        if InteractiveShell.initialized():  # forked from the kernel: its own formatters
            _formatter = InteractiveShell.instance().display_formatter
        else:
            from IPython.core.formatters import DisplayFormatter

            _formatter = DisplayFormatter()
    data, metadata = _formatter.format(obj, include=include, exclude=exclude)
    return data, metadata


def display(*objs: Any, include: Any = None, exclude: Any = None, metadata: Any = None,
            transient: Any = None, display_id: Any = None, raw: bool = False,
            clear: bool = False, **kwargs: Any) -> None:
    """IPython's ``display`` as a worker runs it: each object is recorded, not sent."""
    recorder = getattr(_local, "recorder", None)
    if recorder is None:  # not inside a task: print, as IPython does outside a kernel
        print(*objs)
        return
    for obj in objs:
        if raw:
            recorder.add(obj, metadata)
            continue
        data, found = _format(obj, include, exclude)
        recorder.add(data, {**found, **(metadata or {})})


class _Publisher:
    """Stands in for a forked kernel's display publisher (IPython's display by module)."""

    def publish(self, data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> None:
        recorder = getattr(_local, "recorder", None)
        if recorder is not None:
            recorder.add(data, metadata)

    def clear_output(self, wait: bool = False) -> None:
        return


def stand_in() -> Any:
    """What a worker gets where the code names IPython's ``display`` (see _pickling)."""
    return display


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    builtins.display = display  # type: ignore[attr-defined] - as IPython does in a kernel
    shell_module = sys.modules.get("IPython.core.interactiveshell")
    if shell_module is not None and shell_module.InteractiveShell.initialized():
        shell_module.InteractiveShell.instance().display_pub = _Publisher()


@contextmanager
def recording(output: Any) -> Iterator[list[Shown]]:
    """Record this thread's displays while a task runs; ``output`` is its print buffer."""
    _install()
    recorder = _local.recorder = _Recorder(output)
    try:
        yield recorder.shown
    finally:
        _local.recorder = None


# -- in the kernel --------------------------------------------------------------------
def show_output(text: str, shown: Sequence[Shown], stream: Any) -> None:
    """Write a partition's printed ``text`` with its displays shown where they came."""
    done = 0
    for item in shown:
        stream.write(text[done:item.at])
        done = item.at
        _show(item, stream)
    rest = text[done:]
    if rest:
        stream.write(rest if rest.endswith("\n") else rest + "\n")


def _show(item: Shown, stream: Any) -> None:
    shell_module = sys.modules.get("IPython.core.interactiveshell")
    if shell_module is None or not shell_module.InteractiveShell.initialized():
        text = item.data.get("text/plain", f"<{', '.join(item.data)}>")
        stream.write(text if text.endswith("\n") else text + "\n")
        return
    from IPython.display import display as show

    stream.flush()  # the text before it must come first
    show(item.data, raw=True, metadata=item.metadata)
