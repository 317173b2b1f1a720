"""Read-only data shared with every worker: shipped once per worker, never per partition.

A lookup table that every partition reads would otherwise travel inside the
function, once per worker per run, pickled through a pipe. Here it travels once:

- :func:`prepare` pickles the objects with protocol 5, with the large buffers (numpy
  arrays, the numeric blocks of a DataFrame) kept *out of band*, and gives back a
  :class:`SharedBundle`, a small handle whose name (``token``) is a digest of the
  content.
- The bundle is written to one shared-memory segment only when it is pickled, i.e.
  only when it goes to worker processes; threads and the inline backend use the
  objects themselves.
- A worker maps the segment read-only and rebuilds the objects *on top of* the mapped
  pages: numeric data is neither copied nor unpickled, and every worker reads the same
  physical memory. Writing to it raises ``ValueError: assignment destination is
  read-only`` (shared data is never written back); ``.copy()`` it to modify.
- A warm worker keeps the objects of the last bundle it loaded; the next run that
  shares the same content (same token) loads nothing.
- The segment's name is removed when the run ends, well or badly (:meth:`close`);
  workers that mapped it keep their pages until they let go of them. Names follow
  :mod:`jupyter_par.wire.shared_memory`'s scheme, so its sweeps (a dead worker, shutdown,
  interpreter exit, a crashed kernel's leftovers) cover these segments too. Where there
  is no ``/dev/shm``, or the workers may be on other machines (``in_band``, for Dask),
  the pickled bytes travel inside the handle instead, still once per worker per run.

In user code, ``jp.shared["lookup"]`` reads a shared object (this module is
subscriptable for that purpose).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import pickle
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dill

from ..errors import ShippingError, UsageError
from . import pickling as _pickling
from . import shared_memory as transport

_ALIGN = transport.ALIGN
_TAG = "shared."


# One loaded bundle per process: (token, objects); a new token replaces it.
_loaded: tuple[str, Mapping[str, Any]] | None = None
_loads = 0
_current: Mapping[str, Any] = types.MappingProxyType({})
#: What tasks running in this process with objects as they are (WithObjects) hold, in the
#: order they started, and what was visible before the first of them.
_holders: list[Mapping[str, Any]] = []
_base: Mapping[str, Any] = _current
_lock = threading.Lock()


@dataclass(frozen=True)
class _Entry:
    """How one object was pickled: its stream and its out-of-band buffers."""

    name: str
    by_dill: bool
    stream: bytes
    buffers: tuple[memoryview, ...]


def _pickle(name: str, obj: Any) -> _Entry:
    # jupyter_par's picklers: notebook classes by value, no file open for writing.
    buffers: list[pickle.PickleBuffer] = []
    try:
        stream = _pickling.dumps_plain(obj, buffer_callback=buffers.append)
        by_dill = False
    except _pickling.Refused as exc:
        msg = f"cannot share {name!r} ({type(obj).__qualname__}) with the workers: {exc}"
        raise ShippingError(msg) from None
    except Exception:  # noqa: BLE001 - dill handles lambdas, local classes, ...
        buffers.clear()
        try:
            stream = _pickling.dumps_dill(obj)
        except Exception as exc:
            msg = (f"cannot share {name!r} ({type(obj).__qualname__}) with the workers: "
                   f"{type(exc).__name__}: {exc}. Share plain data (frames, arrays, dicts) "
                   "or use backend='threads'.")
            raise ShippingError(msg) from exc
        by_dill = True
    views = tuple(memoryview(b).cast("B") for b in (buf.raw() for buf in buffers))
    return _Entry(name, by_dill, stream, views)


def _digest(entries: list[_Entry]) -> str:
    # sha256 is the fastest hashlib digest here (about 600 MB/s, twice blake2b) and
    # releases the GIL, so it runs alongside the copy into the segment.
    digest = hashlib.sha256(usedforsecurity=False)
    for entry in entries:
        digest.update(entry.name.encode() + b"\0" + bytes([entry.by_dill]))
        digest.update(len(entry.stream).to_bytes(8, "little") + entry.stream)
        for view in entry.buffers:
            digest.update(len(view).to_bytes(8, "little"))
            digest.update(view)
    return digest.hexdigest()


def _layout(entries: list[_Entry]) -> tuple[int, list[tuple[str, bool, Any, tuple[Any, ...]]]]:
    """Offsets of every stream and buffer in one segment, each aligned for numpy."""
    size, plan = 0, []
    for entry in entries:
        spans = []
        for piece in (entry.stream, *entry.buffers):
            spans.append((size, len(piece)))
            size += -(-len(piece) // _ALIGN) * _ALIGN
        plan.append((entry.name, entry.by_dill, spans[0], tuple(spans[1:])))
    return size, plan


class SharedBundle:
    """A picklable handle to objects shared read-only with every worker of a run.

    In the caller it holds the objects themselves; pickled (to go to a worker
    process) it becomes a segment name and a layout, a few hundred bytes whatever the
    size of the objects. Call :meth:`close` when the run ends.
    """

    def __init__(self, objects: Mapping[str, Any], *, in_band: bool = False) -> None:
        self.objects: Mapping[str, Any] = types.MappingProxyType(dict(objects))
        self.in_band = in_band
        self._token: str | None = None
        self._segment: str | None = None
        self._wire: tuple[Any, ...] | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        """The names the objects are shared under."""
        return tuple(self.objects)

    @property
    def segment(self) -> str | None:
        """The shared-memory segment written for worker processes, if any yet."""
        return self._segment

    @property
    def token(self) -> str:
        """A digest of the pickled content: equal tokens, equal objects."""
        return self._token or self.wire()[0]

    def wire(self) -> tuple[Any, ...]:
        """Pickle the objects and write the segment, once; what travels to a worker.

        Done on the first pickling of the bundle (threads never pay for it), or
        earlier by a caller that wants a :class:`ShippingError` before the run starts.
        """
        with self._lock:
            if self._wire is not None:
                return self._wire
            if self._closed:
                msg = f"{self!r} was closed when its run ended; prepare the objects again"
                raise ShippingError(msg)
            entries = [_pickle(name, obj) for name, obj in self.objects.items()]
            if self.in_band or not transport.available():
                self._token = _digest(entries)
                inline = [(e.name, e.by_dill, e.stream, tuple(bytes(b) for b in e.buffers))
                          for e in entries]
                self._wire = (self._token, None, 0, inline)
                return self._wire
            size, plan = _layout(entries)
            if not transport.fits(size):
                return self._in_band(entries, size)
            name = transport.new_name(_TAG)
            digests: list[str] = []
            hashing = threading.Thread(target=lambda: digests.append(_digest(entries)))
            hashing.start()
            try:
                _write_segment(name, size, entries, plan)
            except OSError:  # /dev/shm filled up meanwhile (ENOSPC)
                return self._in_band(entries, size)
            finally:
                hashing.join()
            self._token, self._segment = digests[0], name
            self._wire = (self._token, name, size, plan)
            return self._wire

    def _in_band(self, entries: list[_Entry], size: int) -> tuple[Any, ...]:
        """The objects do not fit in /dev/shm: they travel in the handle (through the pipe,
        once per worker per run), with one warning saying how to give them room."""
        warnings.warn(
            f"shared objects {', '.join(self.names)} ({size / 2**20:.0f} MB) do not fit in "
            f"/dev/shm ({transport.free_bytes() / 2**20:.0f} MB free of "
            f"{transport.size_bytes() / 2**20:.0f} MB): each worker gets a copy through "
            "its pipe instead (slower, more memory); give the container more shared memory "
            "(docker run --shm-size=2g)", transport.SharedMemoryWarning, stacklevel=5)
        self._token = _digest(entries)
        inline = [(e.name, e.by_dill, e.stream, tuple(bytes(b) for b in e.buffers))
                  for e in entries]
        self._wire = (self._token, None, 0, inline)
        return self._wire

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return _Remote, self.wire()

    def close(self) -> None:
        """Remove the segment's name; workers that mapped it keep their pages."""
        global _current
        with self._lock:
            if self._segment is not None:
                transport.unlink(self._segment)
                self._segment = None
            self._wire, self._closed = None, True
        with _lock:
            if _current is self.objects:
                _current = types.MappingProxyType({})

    def load(self) -> Mapping[str, Any]:
        """The objects, as a task in this process sees them (the originals, here)."""
        return self.objects

    def __repr__(self) -> str:
        return f"SharedBundle({', '.join(self.names)})"


def _write_segment(name: str, size: int, entries: list[_Entry], plan: list[Any]) -> None:
    transport.write_segment(name, size, (
        (piece, offset)
        for entry, (_, _, first, rest) in zip(entries, plan)
        for piece, (offset, _length) in zip((entry.stream, *entry.buffers), (first, *rest))))


class _Remote:
    """The handle as a worker receives it: a token and where to find the objects."""

    def __init__(self, token: str, segment: str | None, size: int, plan: list[Any]) -> None:
        self.token, self.segment, self.size, self.plan = token, segment, size, plan

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(item[0] for item in self.plan)

    def load(self) -> Mapping[str, Any]:
        """The objects; loaded from the segment only if this process has not got them."""
        global _loaded, _loads, _current
        with _lock:
            if _loaded is not None and _loaded[0] == self.token:
                return _loaded[1]
            # Let the previous bundle's pages go before mapping new ones.
            _loaded, _current = None, types.MappingProxyType({})
            objects = types.MappingProxyType(self._read())
            _loaded = (self.token, objects)
            _loads += 1
            return objects

    def _read(self) -> dict[str, Any]:
        if self.segment is None:
            return {name: _unpickle(by_dill, stream, [memoryview(b) for b in buffers])
                    for name, by_dill, stream, buffers in self.plan}
        try:
            fd = os.open(transport.segment_path(self.segment), os.O_RDONLY)
        except FileNotFoundError as exc:
            msg = (f"the shared objects {', '.join(self.names)} are not in this machine's "
                   "shared memory: their run ended, or this worker runs on another machine")
            raise ShippingError(msg) from exc
        try:
            pages = memoryview(mmap.mmap(fd, max(self.size, 1), access=mmap.ACCESS_READ))
        finally:
            os.close(fd)
        out = {}
        for name, by_dill, (offset, length), spans in self.plan:
            buffers = [pages[o:o + n] for o, n in spans]
            out[name] = _unpickle(by_dill, pages[offset:offset + length], buffers)
        return out


def _unpickle(by_dill: bool, stream: Any, buffers: list[memoryview]) -> Any:
    if by_dill:
        return dill.loads(bytes(stream))
    return pickle.loads(stream, buffers=buffers)


def prepare(objects: Mapping[str, Any], *, in_band: bool = False) -> SharedBundle:
    """Make ``objects`` ready to share with the workers of one run.

    Parameters
    ----------
    objects
        Name → object. Large numeric data (DataFrames, Series, ndarrays, and such
        data nested in dicts or lists) is shared through shared memory without
        copies in the workers; anything else is pickled (with dill if needed) once.
    in_band
        Carry the pickled bytes inside the handle rather than in shared memory, for
        workers that may run on other machines (a Dask cluster).

    Returns
    -------
    SharedBundle
        Wrap the run's operation with :func:`attach` and :meth:`SharedBundle.close`
        the bundle when the run ends (or use :func:`sharing`, which does both).
    """
    if not isinstance(objects, Mapping):
        msg = (f"shared must be a dict of name -> object, got {type(objects).__name__}; "
               "for example shared={'lookup': lookup}")
        raise UsageError(msg)
    bad = [name for name in objects if not isinstance(name, str) or not name]
    if bad:
        msg = f"shared names must be non-empty strings, got {bad!r}"
        raise UsageError(msg)
    return SharedBundle(objects, in_band=in_band)


@dataclass(frozen=True)
class WithShared:
    """An operation that runs with ``jp.shared`` holding the bundle's objects."""

    op: Any
    bundle: Any

    def __call__(self, part: Any) -> Any:
        global _current
        objects = self.bundle.load()
        with _lock:
            _current = objects
        return self.op(part)


@dataclass(frozen=True)
class WithObjects:
    """An operation that runs in this process with ``jp.shared`` holding ``objects`` as
    they are: threads and the inline backend need no pickling, no segment, no copy."""

    op: Any
    objects: Mapping[str, Any]

    def __call__(self, part: Any) -> Any:
        global _current, _base
        mine = types.MappingProxyType(dict(self.objects))
        with _lock:
            if not _holders:
                _base = _current
            _holders.append(mine)
            _current = mine
        try:
            return self.op(part)
        finally:
            # Threads of one run finish in any order: each drops its own entry, and the
            # objects of whoever still runs stay visible (a saved "previous" per call would
            # put a finished thread's objects back after the run).
            with _lock:
                del _holders[next(i for i, held in enumerate(_holders) if held is mine)]
                _current = _holders[-1] if _holders else _base


def attach(op: Any, bundle: SharedBundle | None) -> Any:
    """``op`` wrapped so that each task sees ``bundle``'s objects in ``jp.shared``."""
    return op if bundle is None else WithShared(op, bundle)


@contextmanager
def sharing(objects: Mapping[str, Any] | None, *, to_processes: bool = True,
            in_band: bool = False) -> Iterator[Callable[[Any], Any]]:
    """Share ``objects`` for the length of a ``with`` block; yields ``wrap(op)``.

    This is all a caller of :func:`jupyter_par.run.engine.run` needs (the magic's
    ``--share NAME``)::

        with shared.sharing({"lookup": lookup}) as wrap:
            engine.run(parts, wrap(op), options)

    In the worker, ``jupyter_par.wire.shared_objects.visible_now()["lookup"]`` (or
    ``jp.shared["lookup"]``) is the object. Nothing is left in shared memory after the
    block, however it ends.
    With ``to_processes`` (not for threads or inline) the objects are pickled and
    written at once, so an object that cannot travel fails here, before any work;
    ``in_band`` as in :func:`prepare`.
    """
    if not objects:
        yield lambda op: op
        return
    if not to_processes:
        prepare(objects)  # the same checks of the names, nothing pickled
        yield lambda op: WithObjects(op, objects)
        return
    bundle = prepare(objects, in_band=in_band)
    try:
        if to_processes:
            bundle.wire()
        yield lambda op: attach(op, bundle)
    finally:
        bundle.close()


def visible_now() -> Mapping[str, Any]:
    """The objects shared with the task running now (empty outside a run)."""
    return _current


def loads_in_this_process() -> int:
    """How many bundles this process has loaded from shared memory (a cache miss each)."""
    return _loads


def forget() -> None:
    """Drop the loaded bundle of this process (its pages are released)."""
    global _loaded, _current
    with _lock:
        _loaded = None
        _current = types.MappingProxyType({})


def get(name: str, default: Any = None) -> Any:
    """``jp.shared.get(name, default)``: a shared object, or ``default``."""
    return _current.get(name, default)


def _missing(name: Any) -> KeyError:
    have = ", ".join(map(repr, _current)) or "none"
    return KeyError(f"no shared object named {name!r} in this run (shared now: {have}); "
                    f"pass shared={{{name!r}: ...}} to the jupyter_par call")


class _SharedModule(types.ModuleType):
    """Makes ``jp.shared["lookup"]`` read the shared objects of the running task."""

    def __getitem__(self, name: str) -> Any:
        try:
            return _current[name]
        except KeyError:
            raise _missing(name) from None

    def __contains__(self, name: object) -> bool:
        return name in _current

    def __iter__(self) -> Iterator[str]:
        return iter(_current)

    def __len__(self) -> int:
        return len(_current)


sys.modules[__name__].__class__ = _SharedModule
