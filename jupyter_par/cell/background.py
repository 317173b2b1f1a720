"""``%%parallel --background``: the cell returns a handle at once; TARGET is written at the end.

The run goes on a thread of the kernel (:mod:`jupyter_par.run.background`). When it
ends, TARGET (or ``--out``) is written in one step, as a foreground cell would, unless
the user rebound one of those names while it ran: then nothing is written, the result
stays on the handle, and the view says why. Names are compared by identity, which is
what a rebinding changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..progress.chooser import sinks_for
from ..run import background
from ..run.options import Options

_MISSING = object()


def _written_names(request: Any, expression: bool, written: Any, nothing: Any) -> list[str]:
    """The names :func:`jupyter_par.cell.run.store_result` would write."""
    names = []
    if written is not nothing:
        names.append(request.target if expression else request.out or request.target)
    if expression and request.out:
        names.append(request.out)
    return names


def start(namespace: dict[str, Any], request: Any, label: str, options: Options,
          execute: Callable[..., tuple[Any, Any]], *, expression: bool, nothing: Any,
          store: Callable[[Any, Any], Any]) -> background.BackgroundRun:
    """Start the cell's run in the background; return its handle.

    ``execute(sinks=, cancel=, output=)`` runs the cell and returns ``(written, value)``;
    ``store(written, value)`` writes them to the notebook as a foreground cell would.
    """
    watched = {name: namespace.get(name, _MISSING)
               for name in filter(None, (request.target, request.out))}
    sinks = sinks_for(options.progress, label, options.frontend)
    pair: dict[str, Any] = {}

    def work(cancel: Any, sinks: list[Any], output: Any) -> Any:
        written, value = execute(sinks=sinks, cancel=cancel, output=output)
        pair["written"], pair["value"] = written, value
        if expression:
            return value
        return None if written is nothing else written

    def finish(_: Any) -> str | None:
        written, value = pair["written"], pair["value"]
        changed = [name for name in _written_names(request, expression, written, nothing)
                   if namespace.get(name, _MISSING) is not watched.get(name, _MISSING)]
        if not changed:
            store(written, value)
            return None
        note = (f"{', '.join(changed)} was rebound while the run went, so the result was not "
                "written; it is on the handle: .result()")
        for sink in sinks:
            if callable(getattr(sink, "explain", None)):
                sink.explain(note)
        return note

    return background.start(label, work, sinks, finish)
