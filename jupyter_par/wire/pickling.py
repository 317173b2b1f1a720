"""The picklers behind :mod:`jupyter_par.wire.shipping`: notebook classes, open files, big globals.

- **Classes defined in the notebook** live in ``__main__``. A spawned worker cannot find
  them by name and a forked one holds the definition of the fork's time (none at all
  for a class defined later), so towards the workers they travel by value (dill). A
  worker rebuilds each definition once, so the code and the data sent to it see one and
  the same class (``isinstance`` in the function holds). Coming back, a class travels
  by name with its definition as a fallback: the kernel resolves its own class, so a
  result is an instance of the notebook's class and ``==`` the serial one.
- **A file open for writing** is refused: dill would open it again in every worker,
  and in mode ``"w"`` that empties the file.
- **IPython's ``display``** becomes, in a worker, the recorder of
  :mod:`jupyter_par.worker.display`.
- **A large global** (a lookup dict, a frame) that the fast C pickler can carry travels
  as that pickler's bytes, about ten times faster than dill; given a ``externals``
  table it travels outside the code, keyed by a digest of its content, so that the
  process pool sends it once per warm worker while the content stays the same. The
  worker keeps the object itself: like ``--share`` objects it is meant to be read;
  one that code grew or shrank in an earlier run is unpickled afresh.
"""

from __future__ import annotations

import copyreg
import enum
import hashlib
import io
import math
import pickle
import sys
import threading
import types
import weakref
from typing import Any

import dill
import dill._dill
import numpy as np

from ..worker import display as _display

PROTOCOL = 5
#: A global whose pickle is at least this big travels apart from the code, by digest.
BIG_BYTES = 1 << 20
#: Containers with fewer items are not worth a trial pickle to measure them.
_MANY_ITEMS = 2048
#: False sends large globals inside the code, by dill, as before (for benchmarks/big_globals.py).
FAST_BIG_GLOBALS = True


class Refused(pickle.PicklingError):
    """An object jupyter_par will not send; the message says what to do instead."""


# -- open files -------------------------------------------------------------------------
def check_file(obj: Any) -> None:
    """Refuse a file handle open for writing (dill would reopen, and truncate, it)."""
    if obj in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        return
    mode, name = getattr(obj, "mode", None), getattr(obj, "name", None)
    if not isinstance(mode, str) or not isinstance(name, str) or not set(mode) & set("wax+"):
        return
    harm = "and empty it" if "w" in mode else "and write to it from several processes at once"
    msg = (f"the file {name!r} is open for writing (mode {mode!r}): a worker would open it "
           f"again {harm}. Open the file inside the function instead (with open(path, 'a') "
           "as f: ...), or return the lines and write them from the notebook")
    raise Refused(msg)


# -- classes defined in the notebook --------------------------------------------------
_rebuilt: dict[str, type] = {}  # digest of a definition -> the class built from it here
_definitions: weakref.WeakKeyDictionary[type, bytes] = weakref.WeakKeyDictionary()
_classes_lock = threading.RLock()


def _is_notebook_class(obj: Any, skip: Any = None) -> bool:
    # Not enums: dill cannot rebuild one (its class dict is special); see _refuse_enum.
    return (isinstance(obj, type) and obj is not skip and obj.__module__ == "__main__"
            and "<locals>" not in obj.__qualname__ and not isinstance(obj, enum.EnumMeta))


def _refuse_enum(cls: type) -> None:
    """An enum the notebook defines cannot be rebuilt in a worker: say what works."""
    msg = (f"the enum {cls.__qualname__} is defined in the notebook, and jupyter_par cannot "
           "rebuild such an enum in a worker yet: define it in a module (a .py file next to "
           "the notebook) and import it from there, or use its values instead of its members")
    raise Refused(msg)


def definition(cls: type) -> bytes:
    """The class by value (dill): its methods, and the globals they use."""
    known = _definitions.get(cls)
    if known is not None:
        return known
    # Pickling an instance caches __slotnames__ on its class: have it there always, so
    # that one class gives one definition, and a worker one class, before and after.
    copyreg._slotnames(cls)
    buffer = io.BytesIO()
    CodePickler(buffer, by_value=cls).dump(cls)
    return buffer.getvalue()


def _in_main(qualname: str) -> type | None:
    obj: Any = sys.modules.get("__main__")
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


def notebook_class(qualname: str, blob: bytes, local_first: bool) -> type:
    """Rebuild a notebook class: this process's own one by name, or from its definition.

    ``local_first`` is set on what comes back to the kernel: the kernel's class of that
    name is the one the user means. A worker always builds from the definition (its
    ``__main__`` may hold an older one, or none), once per definition.
    """
    if local_first:
        local = _in_main(qualname)
        if local is not None:
            return local
    key = hashlib.sha256(blob).hexdigest()
    with _classes_lock:
        cls = _rebuilt.get(key)
        if cls is None:
            cls = _rebuilt[key] = dill.loads(blob)
            _definitions[cls] = blob
        return cls


# -- large globals, sent once per warm worker ------------------------------------------
#: A warm worker keeps the large globals of its last few runs, up to these limits (the
#: current run's are always kept), so that calls alternating between two functions do
#: not send their globals again each time.
HOLD_OBJECTS = 4
HOLD_BYTES = 512 << 20

#: In a worker: digest -> [object, its pickle, its len() when unpickled].
_held: dict[str, list[Any]] = {}
_held_loads = 0


def plan_hold(held: dict[str, int], needed: dict[str, bytes]) -> dict[str, int]:
    """What a worker should hold after receiving ``needed``: digest -> pickled size.

    The kernel keeps this for each worker (oldest first) and sends it along, so that
    both sides agree on what the worker has without asking it.
    """
    plan = {t: n for t, n in held.items() if t not in needed}
    plan.update((t, len(data)) for t, data in needed.items())
    while len(plan) > max(HOLD_OBJECTS, len(needed)) or (
            sum(plan.values()) > HOLD_BYTES and len(plan) > len(needed)):
        del plan[next(iter(plan))]
    return plan


def _length(obj: Any) -> int | None:
    try:
        return len(obj)
    except Exception:  # noqa: BLE001 - not sized
        return None


def _unpickled(data: bytes) -> list[Any]:
    global _held_loads
    obj = pickle.loads(data)
    _held_loads += 1
    return [obj, data, _length(obj)]


def hold(payloads: dict[str, bytes], keep: tuple[str, ...]) -> None:
    """In a worker: hold exactly the large globals ``keep`` (see :func:`plan_hold`).

    ``payloads`` brings those this worker has not got yet; the others are dropped.
    """
    global _held
    kept = {token: _held[token] for token in keep if token in _held}
    _held = {}  # on failure below the worker holds nothing, and the kernel resends
    for token in keep:
        if token not in kept:
            kept[token] = _unpickled(payloads[token])
    _held = kept


def held_global(token: str) -> Any:
    """A large global this worker was sent earlier (see :func:`hold`).

    The kernel's copy is unchanged (same digest), but code may have changed this one
    in an earlier run; one that grew or shrank (a cache filled in) is unpickled again.
    """
    try:
        entry = _held[token]
    except KeyError:
        msg = "this worker lost a large global of the notebook; run the call again"
        raise LookupError(msg) from None
    if _length(entry[0]) != entry[2]:
        entry[:] = _unpickled(entry[1])
    return entry[0]


def held_loads() -> int:
    """How many big globals this process has unpickled (a miss each)."""
    return _held_loads


# -- strings, fast --------------------------------------------------------------------
#: Arrays of at least this many strings travel as one UTF-8 buffer (see `_utf8_reduction`).
STRINGS_AS_TEXT_FROM = 32
_SEPARATOR = "\x00"


def _utf8_reduction(array: np.ndarray) -> tuple[Any, ...] | None:
    """An object array made mostly of ``str`` as one UTF-8 buffer, or None.

    Pickle writes each string on its own and remembers each in its memo: about 0.4 s for
    a million short strings, where joining and encoding them takes 0.05 s. Pandas keeps
    text columns (``object``, and ``str`` without pyarrow) as such arrays, so this is
    what partitions, results and shared frames of text cost to move. Values that are not
    exactly ``str`` (missing values, numbers, subclasses) travel apart, pickled with
    their positions, so the array comes back equal, element for element and type for
    type; an array in which a string holds the separator is left to pickle.
    """
    if array.dtype != object or array.size < STRINGS_AS_TEXT_FROM or type(array) is not np.ndarray:
        return None
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    flat = array.ravel(order=order)
    if set(map(type, flat)) == {str}:  # the common case, checked at C speed
        others = np.empty(0, dtype=np.intp)
    else:
        kinds = np.fromiter(map(type, flat), dtype=object, count=flat.size)
        others = np.flatnonzero(kinds != str)  # noqa: E721 - elementwise, over types
    if len(others) * 2 > flat.size:
        return None  # not text: nothing to gain
    strings = np.delete(flat, others) if len(others) else flat
    text = _SEPARATOR.join(strings)
    if text.count(_SEPARATOR) != max(0, strings.size - 1):
        return None  # a value holds the separator itself
    data = text.encode("utf-8", "surrogatepass")
    rest = (others, list(flat[others])) if len(others) else None
    return _strings_from_utf8, (pickle.PickleBuffer(data), array.shape, order, rest)


def _strings_from_utf8(data: Any, shape: tuple[int, ...], order: str,
                       rest: tuple[np.ndarray, list[Any]] | None = None) -> np.ndarray:
    """Inverse of :func:`_utf8_reduction`."""
    text = str(memoryview(data), "utf-8", "surrogatepass")
    size = math.prod(shape)
    flat = np.empty(size, dtype=object)
    if rest is None:
        flat[:] = text.split(_SEPARATOR)
    else:
        positions, values = rest
        is_string = np.ones(size, dtype=bool)
        is_string[positions] = False
        if size > len(positions):
            flat[is_string] = text.split(_SEPARATOR)
        for position, value in zip(positions.tolist(), values):
            flat[position] = value  # one by one: a value may itself be a sequence
    return flat.reshape(shape, order=order)


# -- the picklers ---------------------------------------------------------------------
class DataPickler(pickle.Pickler):
    """The standard (C) pickler, with notebook classes by value and no writable files.

    A notebook function would go by name, which a worker cannot resolve: it is
    refused here so that the caller falls back to dill.
    """

    def __init__(self, file: Any, *, local_first: bool = False, buffer_callback: Any = None,
                 ) -> None:
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffer_callback)
        self.local_first = local_first

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray:
            return _utf8_reduction(obj) or NotImplemented
        if isinstance(obj, type):
            if _is_notebook_class(obj):
                return notebook_class, (obj.__qualname__, definition(obj), self.local_first)
            return NotImplemented
        if isinstance(obj, types.FunctionType) and obj.__module__ == "__main__":
            msg = f"{obj.__qualname__} is defined in the notebook: it goes by value, with dill"
            raise pickle.PicklingError(msg)
        if isinstance(obj, io.IOBase):
            check_file(obj)
        return NotImplemented


def dumps_plain(obj: Any, *, local_first: bool = False, buffer_callback: Any = None) -> bytes:
    """``obj`` with :class:`DataPickler`; raises what it raises."""
    buffer = io.BytesIO()
    DataPickler(buffer, local_first=local_first, buffer_callback=buffer_callback).dump(obj)
    return buffer.getvalue()


def _loads_plain(data: bytes) -> Any:
    return pickle.loads(data)


def _maybe_big(obj: Any) -> bool:
    """Cheap guess whether ``obj`` might pickle to :data:`BIG_BYTES` or more."""
    if not FAST_BIG_GLOBALS:
        return False
    if isinstance(obj, dict | list | tuple | set | frozenset):
        return len(obj) >= _MANY_ITEMS
    if isinstance(obj, bytes | bytearray | str):
        return len(obj) >= BIG_BYTES
    # numpy arrays and pandas objects only: getattr on anything else may run its code
    # (a Manager's proxy asks its server for any attribute).
    if not type(obj).__module__.startswith(("numpy", "pandas")):
        return False
    shape = getattr(obj, "shape", None)
    if not isinstance(shape, tuple):
        return False
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int) and nbytes >= BIG_BYTES:
        return True
    count = 1
    for n in shape:
        count *= n
    return count >= _MANY_ITEMS  # object columns count only their references in nbytes


class CodePickler(dill.Pickler):
    """dill, by value (``recurse=True``), with jupyter_par's rules on top.

    A module the kernel imported by name travels by name: dill would send a module
    outside site-packages (an editable install of jupyter_par, the notebook's own
    helper module) by value, with everything in it, and fail on what it holds (locks,
    thread-locals). A worker imports such a module by name just as the kernel did.
    """

    dispatch = type(dill.Pickler.dispatch)(dill.Pickler.dispatch)

    def __init__(self, file: Any, *, by_value: type | None = None, local_first: bool = False,
                 externals: dict[str, bytes] | None = None) -> None:
        super().__init__(file, protocol=PROTOCOL, recurse=True)
        self.by_value, self.local_first, self.externals = by_value, local_first, externals

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type):
            if _is_notebook_class(obj, skip=self.by_value):
                return notebook_class, (obj.__qualname__, definition(obj), self.local_first)
            if isinstance(obj, enum.EnumMeta) and obj.__module__ == "__main__":
                _refuse_enum(obj)
            return NotImplemented
        if isinstance(obj, io.IOBase):
            check_file(obj)
            return NotImplemented
        if isinstance(obj, types.FunctionType) and obj.__name__ == "display" and (
                obj.__module__ == "IPython.core.display_functions"):
            return _display.stand_in, ()  # a worker records what it would show
        if _maybe_big(obj):
            return self._big(obj)
        return NotImplemented

    def _big(self, obj: Any) -> Any:
        if self.externals is None and isinstance(obj, bytes | bytearray | str):
            return NotImplemented  # dill writes these as fast (and the pickle is bytes)
        try:
            data = dumps_plain(obj)
        except Refused:
            raise
        except Exception:  # noqa: BLE001 - dill takes what the fast pickler cannot
            return NotImplemented
        if len(data) < BIG_BYTES:
            return NotImplemented  # small: keeps dill's sharing of objects within the stream
        if self.externals is None:
            return _loads_plain, (data,)
        token = hashlib.sha1(data, usedforsecurity=False).hexdigest()  # fastest here
        self.externals[token] = data
        return held_global, (token,)


def _save_module(pickler: Any, module: types.ModuleType) -> None:
    name = module.__name__
    if name != "__main__" and sys.modules.get(name) is module and getattr(module, "__file__", None):
        pickler.save_reduce(dill._dill._import_module, (name,), obj=module)
        return
    dill.Pickler.dispatch[types.ModuleType](pickler, module)


CodePickler.dispatch[types.ModuleType] = _save_module


def dumps_dill(obj: Any, *, local_first: bool = False,
               externals: dict[str, bytes] | None = None) -> bytes:
    """``obj`` with :class:`CodePickler`; raises what it raises."""
    buffer = io.BytesIO()
    CodePickler(buffer, local_first=local_first, externals=externals).dump(obj)
    return buffer.getvalue()
