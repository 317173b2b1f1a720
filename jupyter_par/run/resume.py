"""Finished work is not thrown away: keep a failed run's partitions, reuse them on resume.

Data flow::

    pipeline ──plan, options──▶ Keeper ──(resume) partitions still to run──▶ engine
    engine ──each finished partition's result──▶ Keeper.record (──▶ cache= on disk)
    run fails / is cancelled / interrupted ──▶ Keeper.failed ──▶ the kept store (per label)
    run succeeds ──▶ Keeper.succeeded ──▶ the label's kept partitions are forgotten

A kept run is matched by content, not identity: each partition's data is digested
(``pandas.util.hash_pandas_object`` with index, columns, dtypes and shape; a pickle for
other data), only when needed (a run that failed and kept something, a resume, a
``cache=`` run). The same number of partitions with the same digests is the same data
cut the same way; the function may differ (the user fixed it). Kept results live in
memory up to a budget, beyond it in a private temporary directory removed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import pickle
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import pandas as pd

from ..machine.limits import available_memory
from ..shown_errors import add_note
from . import cache as disk

#: Fraction of the memory available now that kept partitions may hold before spilling.
MEMORY_SHARE = 0.25
#: Kept runs (one per label) beyond which the oldest is dropped: a session of many
#: failing calls must not fill the disk with spilled partitions nobody resumes.
MAX_KEPT_RUNS = 8
RESUME_HINT = "run it again with %%parallel --resume (or resume=True) to compute only the rest"


def _column_bytes(values: Any) -> Any:
    """One column's (or index level's) values as bytes that change when they change."""
    array = np.asarray(values)
    if array.dtype.kind in "biufcmM":  # plain numbers and times: their own bytes
        return np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    try:  # all strings (the common object column): joined, several times faster
        return "\x1e\x00".join(array.tolist()).encode("utf-8", "surrogatepass")
    except TypeError:  # mixed objects, missing values: pandas' own content hash
        return pd.util.hash_array(array.astype(object)).tobytes()


def digest(data: Any) -> str | None:
    """A digest of one partition's data, or ``None`` if it cannot be taken.

    pandas objects: their type, shape, dtypes, labels and every column's and index
    level's values (raw bytes for numbers, joined text for strings, pandas' content
    hash otherwise); anything else: its pickle.
    """
    h = hashlib.blake2b(digest_size=20)
    if isinstance(data, pd.DataFrame | pd.Series):
        frame = data if isinstance(data, pd.DataFrame) else data.to_frame(name=0)
        shape = (type(data).__name__, data.shape, list(map(str, frame.dtypes)),
                 list(map(repr, frame.columns)) if isinstance(data, pd.DataFrame)
                 else repr(data.name), list(map(repr, data.index.names)),
                 type(data.index).__name__, list(map(str, getattr(
                     data.index, "dtypes", [data.index.dtype]))))
        h.update(repr(shape).encode())
        try:
            index = data.index
            levels = [index.get_level_values(i) for i in range(index.nlevels)]
            for values in [*levels, *(frame.iloc[:, i] for i in range(frame.shape[1]))]:
                h.update(_column_bytes(values))
            return h.hexdigest()
        except TypeError:  # unhashable cells (lists, dicts): their pickle below
            pass
    try:
        h.update(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - data that cannot be pickled cannot be matched
        return None
    return h.hexdigest()


def run_key(label: str) -> str:
    """What finds a run's kept partitions: its label without the function's name
    (``apply(…, axis=1)``), since resuming is for a function that was fixed or renamed."""
    return re.sub(r"^([\w.]+)\([^,()]*", r"\1(…", label)


def _nbytes(value: Any, depth: int = 0) -> int:
    """About how much memory ``value`` holds (pandas and numpy exactly, others roughly)."""
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(index=True).sum())
    if isinstance(value, pd.Series | pd.Index):
        return int(value.memory_usage(index=True))
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    size = sys.getsizeof(value, 64)
    if depth < 2:
        items: Any = ()
        if isinstance(value, list | tuple | set):
            items = value
        elif isinstance(value, dict):
            items = value.values()
        elif hasattr(value, "__dict__"):
            items = vars(value).values()
        size += sum(_nbytes(v, depth + 1) for v in items)
    return size


@dataclass
class KeptRun:
    """The finished partitions of one run that did not finish, by partition index."""

    label: str
    at: float
    digests: list[str]
    results: dict[int, Any] = field(default_factory=dict)
    spilled: dict[int, str] = field(default_factory=dict)
    nbytes: int = 0

    def values(self) -> dict[int, Any]:
        """Every kept result, spilled ones read back."""
        out = dict(self.results)
        for index, path in self.spilled.items():
            with open(path, "rb") as f:
                out[index] = disk.loads(f.read())
        return out

    def drop(self) -> None:
        for path in self.spilled.values():
            with contextlib.suppress(OSError):
                os.unlink(path)


class KeptStore:
    """The kernel's kept runs, one per label (the latest), within a memory budget."""

    def __init__(self) -> None:
        self.runs: dict[str, KeptRun] = {}
        self._lock = threading.Lock()
        self._spill_dir: str | None = None

    def _spill_to(self) -> str:
        if self._spill_dir is None:
            self._spill_dir = tempfile.mkdtemp(prefix="jupyter_par-kept-")  # 0700
            atexit.register(shutil.rmtree, self._spill_dir, True)
        return self._spill_dir

    def keep(self, run: KeptRun) -> None:
        """Keep ``run`` (replacing the label's earlier one), spilling beyond the budget."""
        with self._lock:
            self.forget(run.label, locked=True)
            while len(self.runs) >= MAX_KEPT_RUNS:
                self.forget(next(iter(self.runs)), locked=True)
            budget = available_memory()[0] * MEMORY_SHARE - sum(
                r.nbytes for r in self.runs.values())
            for index in sorted(run.results):
                size = _nbytes(run.results[index])
                if size <= budget:
                    budget -= size
                    run.nbytes += size
                    continue
                with contextlib.suppress(OSError):
                    fd, path = tempfile.mkstemp(dir=self._spill_to(), suffix=".part")
                    with os.fdopen(fd, "wb") as f:
                        f.write(disk.dumps(run.results[index]))
                    run.spilled[index] = path
                    del run.results[index]
            self.runs[run.label] = run

    def get(self, label: str) -> KeptRun | None:
        return self.runs.get(label)

    def clear(self) -> None:
        """Drop every kept run."""
        with self._lock:
            for label in list(self.runs):
                self.forget(label, locked=True)

    def forget(self, label: str, *, locked: bool = False) -> None:
        """Drop the kept partitions of ``label`` (its run has now succeeded)."""
        if not locked:
            with self._lock:
                self.forget(label, locked=True)
            return
        old = self.runs.pop(label, None)
        if old is not None:
            old.drop()


#: The one store of this kernel.
STORE = KeptStore()


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


class Keeper:
    """One run's side of resuming: what it reuses, what it keeps, what it says.

    Parameters
    ----------
    parts
        The plan's partitions; only a sequence (known in advance) can be matched.
    label
        The run's label (``apply(score, axis=1)``, ``%%parallel df``): kept runs are
        found by it (without the function's name: see :func:`run_key`).
    resume, cache
        The ``resume`` and ``cache`` options.
    output
        Where its one-line messages go (standard output by default).
    """

    def __init__(self, parts: Any, label: str, *, resume: bool = False,
                 cache: str | None = None, output: TextIO | None = None) -> None:
        self.label = label
        self.key = run_key(label)
        self.known = isinstance(parts, Sequence)
        self.all_parts = parts
        self.reused: dict[int, Any] = {}
        self.finished: dict[int, Any] = {}
        self.digests: list[str | None] | None = None
        self.disk = disk.DiskCache(cache) if cache is not None and self.known else None
        self.output = output
        if cache is not None and not self.known and not resume:
            self._say(f"cache={cache!r} keeps the partitions of an input cut in advance (a "
                      "DataFrame, Series or list), not of one read as it goes; nothing is cached")
        if self.disk is not None:
            self.digests = self._digests()
            if all(self.digests):
                self.disk.begin(self.key, list(self.digests))  # type: ignore[arg-type]
        if resume:
            self._resume()

    # -- before the run ---------------------------------------------------------------
    def _digests(self) -> list[str | None]:
        if self.digests is None:
            self.digests = [digest(p.data) for p in self.all_parts]
        return self.digests

    def _say(self, text: str) -> None:
        stream = self.output or sys.stdout
        stream.write(f"jupyter_par: {text}\n")

    def _resume(self) -> None:
        if not self.known:
            self._say("resume needs an input cut in advance (a DataFrame, Series or list), "
                      "not one read as it goes; computing everything")
            return
        total = len(self.all_parts)
        if self.disk is not None:
            self._resume_from_disk(total)
            return
        kept = STORE.get(self.key)
        if kept is None:
            self._say(f"nothing kept to resume for {self.label}; computing all {total} "
                      "partition(s)")
            return
        digests = self._digests()
        when = f"the run at {_clock(kept.at)}"
        if len(kept.digests) != total:
            self._say(f"{when} cut its input into {len(kept.digests)} partition(s), this one "
                      f"into {total}: a different cut, so nothing is reused; computing all "
                      f"{total}")
            return
        differ = [i for i, (a, b) in enumerate(zip(kept.digests, digests, strict=True))
                  if b is None or a != b]
        if differ:
            self._say(f"the input is not the data {when} had (partition {differ[0]} differs"
                      f"{f' and {len(differ) - 1} more' if len(differ) > 1 else ''}), so "
                      f"nothing is reused; computing all {total} partition(s)")
            return
        self.reused = kept.values()
        self._say(f"reused {len(self.reused)} of {total} partitions from {when}; computing "
                  f"{total - len(self.reused)}")

    def _resume_from_disk(self, total: int) -> None:
        assert self.disk is not None
        digests = self._digests()
        for index, key in enumerate(digests):
            if key is None:
                continue
            found, value = self.disk.get(self.key, total, index, key)
            if found:
                self.reused[index] = value
        where = f"the cache {self.disk.path}"
        if self.reused:
            manifest = self.disk.manifest(self.key) or {}
            at = manifest.get("at")
            when = f" (run at {_clock(at)})" if isinstance(at, int | float) else ""
            self._say(f"reused {len(self.reused)} of {total} partitions from {where}{when}; "
                      f"computing {total - len(self.reused)}")
            return
        self._say(f"{where} holds no finished partitions of this data cut this way for "
                  f"{self.label}; computing all {total} partition(s)")

    @property
    def parts(self) -> Any:
        """The partitions still to compute."""
        if not self.reused:
            return self.all_parts
        return [p for p in self.all_parts if p.index not in self.reused]

    # -- while it runs --------------------------------------------------------------
    def record(self, index: int, value: Any) -> None:
        """A partition finished (the engine calls this)."""
        if not self.known:
            return  # a stream: keeping its results would defeat reading it as it goes
        self.finished[index] = value
        if self.disk is not None and self.digests is not None:
            key = self.digests[index]
            if key is not None:
                self.disk.put(self.key, len(self.all_parts), index, key, value)

    # -- after it ---------------------------------------------------------------------
    def succeeded(self) -> None:
        """Nothing to keep: the label's earlier kept run is no longer needed."""
        STORE.forget(self.key)

    def failed(self, exc: BaseException) -> None:
        """Keep what finished and tell, in ``exc``, how to reuse it."""
        results = {**self.reused, **self.finished}
        if not self.known or not results:
            return
        try:
            digests = self._digests()
        except Exception:  # noqa: BLE001 - the run's own failure is what to show
            return
        if not all(digests):
            return  # data that cannot be digested cannot be matched on resume
        STORE.keep(KeptRun(self.key, time.time(), list(digests),  # type: ignore[arg-type]
                           results))
        total = len(self.all_parts)
        line = (f"jupyter_par: {len(results)} of {total} partitions finished and are kept; "
                f"{RESUME_HINT} ({total - len(results)} left)")
        add_note(exc, line)
        shown = getattr(exc, "_render_traceback_", None)
        if callable(shown) and not isinstance(exc, SyntaxError):
            # A one-line interrupt replaces IPython's rendering, notes included.
            with contextlib.suppress(AttributeError):
                exc._render_traceback_ = lambda: [*shown(), line]  # type: ignore[attr-defined]
