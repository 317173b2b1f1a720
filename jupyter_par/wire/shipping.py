"""What travels to workers and back, and how.

Code travels by value with dill, with ``recurse=True``: a function defined in a
notebook lives in ``__main__``, which a spawned or forkserver worker does not share,
so the function, the helpers it calls and the globals it reads must go with it.
Data travels with the standard pickle (protocol 5, fast for pandas and numpy), and
falls back to dill for the objects only dill can handle. Classes defined in the
notebook go to workers by value and come back by name, so results are instances of
the notebook's own classes; large globals go as fast pickles, apart from the code
when the backend can keep them warm (see :mod:`jupyter_par.wire.pickling`).

When something cannot travel, the error names the object and why, and says what to do.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import dill

from ..errors import ShippingError
from .pickling import PROTOCOL, Refused, dumps_dill, dumps_plain, held_loads, hold, plan_hold

__all__ = [
    "PROTOCOL",
    "as_local_exception",
    "dumps_code",
    "dumps_data",
    "dumps_exception",
    "dumps_result",
    "find_unshippable",
    "held_loads",
    "hold",
    "loads",
    "plan_hold",
    "unshippable_names",
]


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    kind = type(obj).__qualname__
    return f"{name!r} ({kind})" if name else f"a {kind} object"


#: Modules whose objects live in one process (or thread) and cannot be sent anywhere.
_DATABASES = ("sqlite3", "psycopg", "psycopg2", "pymysql", "sqlalchemy")
_PROCESS_BOUND = ("_thread", "threading", "socket", "ssl", "multiprocessing", "multiprocess",
                  "_multiprocessing", "selectors", "asyncio")


def advice(value: Any, cause: BaseException | None, *, threads: str = "backend='threads'",
           inside: str = "the function",
           init: str = "worker_init=setup (jp.worker_state() is then its value in the "
                       "function)") -> str:
    """What to do about ``value``, which could not be sent because of ``cause``.

    A connection, a lock or a socket cannot travel at all: it is made where it is used,
    once per worker with ``worker_init`` (or once per call inside the function).
    """
    if isinstance(cause, Refused):
        return ""  # the refusal says it
    module = (type(value).__module__ or "").split(".")[0]
    if module in _DATABASES:
        return (f"A database connection cannot move to another process (and a sqlite one "
                f"not even to another thread): open it once per worker with {init}, where "
                "setup returns sqlite3.connect(path); or open it inside "
                f"{inside}, once per call or per partition.")
    if module in _PROCESS_BOUND:
        return (f"A {type(value).__qualname__} belongs to the process that made it: make it "
                f"once per worker with {init}, or inside {inside}.")
    return (f"Create such objects inside {inside} or once per worker with {init} (or pass "
            f"plain data), or use {threads} which needs no shipping.")


def dumps_code(obj: Any, *, what: str = "the function",
               externals: dict[str, bytes] | None = None) -> bytes:
    """Serialize a function (or an operation holding one) by value, for any start method.

    With ``externals`` (a dict), large globals the code reads are left out of the bytes
    and put there instead, by content digest; the receiver must :func:`hold` them.
    """
    try:
        return dumps_dill(obj, externals=externals)
    except Exception as exc:  # noqa: BLE001 - re-raised below as a ShippingError
        found = _culprit(obj)
        if found is not None:
            name, value, cause = found
            msg = f"cannot send {what} to the workers: it uses {name}: {_text(cause)}"
        else:
            value, cause = obj, exc
            msg = f"cannot send {what} to the workers: {_text(exc)}"
        said = advice(value, cause)
        msg = f"{msg}. {said}" if said else f"{msg}."
        # The cause without its traceback: dozens of pickler frames say nothing to the
        # user (the message names the culprit) and take a notebook a second to render.
        raise ShippingError(msg) from exc.with_traceback(None)


def _text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, Refused) else f"{type(exc).__name__}: {exc}"


def _referenced(obj: Any) -> dict[str, Any]:
    """The globals and closure variables a function (or an operation's function) uses."""
    func = getattr(obj, "func", obj)
    if not inspect.isfunction(func):
        return {}
    try:
        closure = inspect.getclosurevars(func)
    except (TypeError, ValueError):
        return {}
    return {**closure.globals, **closure.nonlocals}


def _culprit(obj: Any, _depth: int = 0) -> tuple[str, Any, BaseException] | None:
    """The first object used by ``obj`` that cannot be sent: (name, object, why)."""
    for name, value in _referenced(obj).items():
        if inspect.ismodule(value):
            continue
        try:
            dumps_dill(value)
        except Exception as exc:  # noqa: BLE001
            if inspect.isfunction(value) and _depth < 3:
                inner = _culprit(value, _depth + 1)
                if inner:
                    return f"{name!r}, which uses {inner[0]}", inner[1], inner[2]
            return f"{name!r} ({type(value).__module__}.{type(value).__qualname__})", value, exc
    return None


def find_unshippable(obj: Any) -> str | None:
    """Name the first object used by ``obj`` that cannot be sent, if it can be found."""
    found = _culprit(obj)
    if found is not None:
        name, _, cause = found
        return f"{name}: {_text(cause)}"
    func = getattr(obj, "func", obj)
    return _describe(func) if func is not obj else None


def unshippable_names(names: Mapping[str, Any]) -> str | None:
    """For a ``%%parallel`` cell: the message for the first name that cannot be sent."""
    for name, value in names.items():
        try:
            dumps_dill(value)
        except Exception as exc:  # noqa: BLE001
            return _cell_message(name, value, exc)
    return None


def _cell_message(name: str, value: Any, exc: BaseException) -> str:
    # A function fails because of what it uses: name that, it is what to fix.
    found = _culprit(value) if inspect.isfunction(value) else None
    if found is not None:
        inner, value, exc = found
        what = f"{name!r}, which uses {inner}"
    else:
        what = f"{name!r} ({type(value).__qualname__})"
    said = advice(value, exc, threads="--backend threads", inside="the cell",
                  init="--init setup (a notebook function; jp.worker_state() is then its value "
                       "in the cell)")
    return f"cannot send {what} to the workers: {_text(exc)}. {said}".rstrip()


def dumps_data(obj: Any, *, what: str = "a partition") -> bytes:
    """Serialize data: pickle first (fast), dill for what pickle cannot do."""
    return _dumps_data(obj, what, local_first=False)


def dumps_result(obj: Any, *, what: str = "the partition's result") -> bytes:
    """Serialize a worker's result for the kernel: notebook classes go back by name."""
    return _dumps_data(obj, what, local_first=True)


def _dumps_data(obj: Any, what: str, *, local_first: bool) -> bytes:
    try:
        return dumps_plain(obj, local_first=local_first)
    except Refused as exc:
        msg = f"cannot send {what} ({type(obj).__qualname__}): {exc}"
        raise ShippingError(msg) from None
    except Exception:  # noqa: BLE001 - dill handles lambdas, local classes, ...
        pass
    try:
        return dumps_dill(obj, local_first=local_first)
    except Exception as exc:  # noqa: BLE001 - re-raised as a ShippingError
        msg = f"cannot send {what} ({type(obj).__qualname__}): {_text(exc)}"
        raise ShippingError(msg) from exc.with_traceback(None)


def loads(payload: bytes) -> Any:
    """Inverse of :func:`dumps_code`, :func:`dumps_data` and :func:`dumps_result`."""
    return dill.loads(payload)


def dumps_exception(exc: BaseException) -> bytes | None:
    """The exception itself, if it can travel; ``None`` when only its text can."""
    try:
        payload = dill.dumps(exc, protocol=PROTOCOL, recurse=True)
        dill.loads(payload)
    except Exception:  # noqa: BLE001 - the type name and message travel instead
        return None
    return payload


def as_local_exception(exc: BaseException) -> BaseException:
    """Rebind an exception whose class was defined in ``__main__`` to the caller's class.

    dill rebuilds such classes by value, which would make ``except MyError`` miss in
    the notebook; the notebook's own class of the same name is the one the user means.
    """
    cls = type(exc)
    if cls.__module__ != "__main__":
        return exc
    import __main__

    local = getattr(__main__, cls.__qualname__, None)
    if not isinstance(local, type) or local is cls or not issubclass(local, BaseException):
        return exc
    rebuilt = local.__new__(local)
    rebuilt.__dict__.update(getattr(exc, "__dict__", {}))
    rebuilt.args = exc.args
    return rebuilt
