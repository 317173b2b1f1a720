"""What travels to workers and back, and how.

Code travels by value with dill, with ``recurse=True``: a function defined in a
notebook lives in ``__main__``, which a spawned or forkserver worker does not share,
so the function, the helpers it calls and the globals it reads must go with it.
Data travels with the standard pickle (protocol 5, fast for pandas and numpy), and
falls back to dill for the objects only dill can handle.

When something cannot travel, the error names the object and why, and says what to do.
"""

from __future__ import annotations

import inspect
import io
import pickle
import sys
from types import ModuleType
from typing import Any

import dill
import dill._dill

from .errors import ShippingError

PROTOCOL = 5


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    kind = type(obj).__qualname__
    return f"{name!r} ({kind})" if name else f"a {kind} object"


class _CodePickler(dill.Pickler):
    """dill, except that a module the kernel imported by name travels by name.

    dill sends a module outside site-packages (an editable install of jupyter_par, the
    notebook's own helper module) by value, with everything in it, and fails on what
    it holds (locks, thread-locals); so ``jp.progress(1)`` in a notebook function broke.
    A worker imports such a module by name just as the kernel did.
    """

    dispatch = type(dill.Pickler.dispatch)(dill.Pickler.dispatch)


def _save_module(pickler: Any, module: ModuleType) -> None:
    name = module.__name__
    if name != "__main__" and sys.modules.get(name) is module and getattr(module, "__file__", None):
        pickler.save_reduce(dill._dill._import_module, (name,), obj=module)
        return
    dill.Pickler.dispatch[ModuleType](pickler, module)


_CodePickler.dispatch[ModuleType] = _save_module


def dumps_code(obj: Any, *, what: str = "the function") -> bytes:
    """Serialize a function (or an operation holding one) by value, for any start method."""
    try:
        buffer = io.BytesIO()
        _CodePickler(buffer, protocol=PROTOCOL, recurse=True).dump(obj)
        return buffer.getvalue()
    except Exception as exc:  # noqa: BLE001 - re-raised below as a ShippingError
        culprit = find_unshippable(obj)
        where = f" because it uses {culprit}" if culprit else ""
        msg = (
            f"cannot send {what} to the workers{where}: {type(exc).__name__}: {exc}. "
            "Create such objects inside the function (or pass plain data), or use "
            "backend='threads' which needs no shipping."
        )
        # The cause without its traceback: dozens of pickler frames say nothing to the
        # user (the message names the culprit) and take a notebook a second to render.
        raise ShippingError(msg) from exc.with_traceback(None)


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


def find_unshippable(obj: Any, _depth: int = 0) -> str | None:
    """Name the first object used by ``obj`` that dill cannot pickle, if it can be found."""
    for name, value in _referenced(obj).items():
        if inspect.ismodule(value):
            continue
        try:
            dill.dumps(value, protocol=PROTOCOL, recurse=True)
        except Exception as exc:  # noqa: BLE001
            if inspect.isfunction(value) and _depth < 3:
                inner = find_unshippable(value, _depth + 1)
                if inner:
                    return f"{name!r}, which uses {inner}"
            return f"{name!r} ({type(value).__qualname__}: {exc})"
    func = getattr(obj, "func", obj)
    return _describe(func) if func is not obj else None


def dumps_data(obj: Any, *, what: str = "a partition") -> bytes:
    """Serialize data: pickle first (fast), dill for what pickle cannot do."""
    try:
        return pickle.dumps(obj, protocol=PROTOCOL)
    except Exception:  # noqa: BLE001 - dill handles lambdas, local classes, ...
        pass
    try:
        return dill.dumps(obj, protocol=PROTOCOL, recurse=True)
    except Exception as exc:
        msg = f"cannot send {what} ({type(obj).__qualname__}): {type(exc).__name__}: {exc}"
        raise ShippingError(msg) from exc


def loads(payload: bytes) -> Any:
    """Inverse of :func:`dumps_code` and :func:`dumps_data` (dill reads both)."""
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
