"""How a partition's outcome travels from a worker back to the parent, for every backend
whose workers are other processes (the process pool, Dask).

A result goes with pickle (large numeric ones through shared memory); a failure goes as
its fields, with the exception itself when it can travel, so nothing is lost when it
cannot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import traceback
from typing import Any

from ..worker.task import TaskDone, TaskFailed
from . import shared_memory as transport
from . import shipping


def encode_outcome(outcome: TaskDone | TaskFailed, tag: str = "", owner: int = 0) -> bytes:
    """A task's outcome as bytes for the parent; a large numeric result via shared memory."""
    if isinstance(outcome, TaskDone):
        try:
            # A large numeric or Arrow result goes back through shared memory (the parent
            # maps it: no copy, no unpickling), named after the parent so that the parent
            # can sweep it if this worker dies before it is read.
            packed = transport.pack(outcome.value, name=transport.new_name(tag, owner)) \
                if owner else None
            if packed is not None:
                outcome = dataclasses.replace(outcome, value=packed)
            return shipping.dumps_result(("done", outcome), what="the partition's result")
        except Exception as exc:  # noqa: BLE001 - an unsendable result is the user's failure
            # A live ShippingError (not only its text) so the caller can catch it by type.
            from ..errors import ShippingError

            cause = exc.__cause__ or exc
            error = ShippingError(
                f"the result of this partition ({type(outcome.value).__qualname__}) cannot "
                f"be sent back: {type(cause).__name__}: {cause}. Return plain data "
                "(numbers, strings, lists, DataFrames), not generators, locks or connections."
            )
            outcome = TaskFailed(
                outcome.task_id, error, "ShippingError", str(error),
                f"jupyter_par.errors.ShippingError: {error}\n", output=outcome.output,
                warnings=outcome.warnings, displays=outcome.displays,
            )
    exc_bytes = shipping.dumps_exception(outcome.exception) if outcome.exception else None
    label = outcome.row_label
    try:
        pickle.dumps(label)
    except Exception:  # noqa: BLE001
        label = repr(label)
    return pickle.dumps(
        ("failed", outcome.task_id, exc_bytes, outcome.type_name, outcome.message,
         outcome.traceback_text, label, outcome.has_row_label, outcome.output,
         outcome.warnings, outcome.displays),
        protocol=shipping.PROTOCOL,
    )


def decode_outcome(payload: bytes) -> TaskDone | TaskFailed:
    """Inverse of :func:`encode_outcome`, in the parent."""
    message = shipping.loads(payload)
    if message[0] == "done":
        done = message[1]
        if isinstance(done.value, transport.Packed):
            done = dataclasses.replace(done, value=transport.unpack(done.value))
        return done
    _, task_id, exc_bytes, type_name, text, tb, label, has_label, output, warns, shown = message
    exception = None
    if exc_bytes is not None:
        with contextlib.suppress(Exception):
            exception = shipping.as_local_exception(shipping.loads(exc_bytes))
    return TaskFailed(task_id, exception, type_name, text, tb, label, has_label, output, warns,
                      shown)



def loading_failed(exc: BaseException) -> Any:
    """An op that raises why the worker could not load the function or its data."""
    def raise_it(_: Any) -> None:
        from ..errors import ShippingError

        msg = (f"the worker could not load the function or its data: {type(exc).__name__}: "
               f"{exc}{_loading_hint(exc)}")
        raise ShippingError(msg) from exc

    return raise_it


def _loading_hint(exc: BaseException) -> str:
    """What most likely went wrong, by the kind of failure."""
    if isinstance(exc, ModuleNotFoundError) or (
            isinstance(exc, AttributeError) and "Can't get attribute" in str(exc)):
        return " (is it defined in a module the workers cannot import?)"
    if _raised_in(exc, ("multiprocessing.managers", "multiprocess.managers",
                        "multiprocessing.connection", "multiprocess.connection")):
        return (" (it uses a proxy of a multiprocessing Manager, which could not be reached: "
                "is the Manager still running?)")
    return ""


def _raised_in(exc: BaseException, modules: tuple[str, ...]) -> bool:
    return any(frame.f_globals.get("__name__") in modules
               for frame, _ in traceback.walk_tb(exc.__traceback__))
