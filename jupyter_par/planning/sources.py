"""Inputs that are not one in-memory frame: many files, chunked readers, task lists.

- **Files** (:func:`files`, or a glob string given to ``map_partitions``): one file
  per partition. Only the path travels; the worker reads the file itself, so the
  kernel never holds the data and nothing large goes through a pipe. The frame the
  function receives carries its file in ``frame.attrs["path"]``.
- **Chunked readers** (``pd.read_csv(path, chunksize=N)``, ``read_table``,
  ``read_json(lines=True, chunksize=N)``): one chunk per partition, pulled by the
  engine only when a worker is free (see :func:`jupyter_par.planning.partition.iter_chunks`),
  so at most ``jobs`` chunks are in flight whatever the file size.
- **Task lists** (a list of dicts, one per job) need nothing special: ``jp.map`` runs
  one function call per item, results in input order; ``backend="threads"`` with many
  more threads than cores suits I/O-bound tasks.
- :class:`Fold` turns results arriving in partition order into one value
  (``reduce=operator.add``), so a long stream's results are not all held at once.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import UsageError
from .partition import Partition

#: How each file suffix is read when ``files(..., read="auto")``.
READERS: dict[str, Callable[..., Any]] = {
    ".csv": pd.read_csv,
    ".tsv": functools.partial(pd.read_csv, sep="\t"),
    ".txt": pd.read_table,
    ".json": pd.read_json,
    ".jsonl": functools.partial(pd.read_json, lines=True),
    ".ndjson": functools.partial(pd.read_json, lines=True),
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
    ".feather": pd.read_feather,
    ".pkl": pd.read_pickle,
    ".pickle": pd.read_pickle,
}
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")


def reader_for(path: str) -> Callable[..., Any]:
    """The pandas reader for ``path``'s suffix (compressed files by their inner suffix)."""
    stem = path.lower()
    for ending in _COMPRESSIONS:
        if stem.endswith(ending):
            stem = stem[: -len(ending)]
            break
    suffix = os.path.splitext(stem)[1]
    try:
        return READERS[suffix]
    except KeyError:
        msg = (f"no reader for {os.path.basename(path)!r} (suffix {suffix or 'none'!r}); "
               f"known: {', '.join(READERS)}. Pass read=your_function "
               "(jp.files(pattern, read=...)), or read=None to receive the path itself")
        raise UsageError(msg) from None


@dataclass(frozen=True)
class ReadFile:
    """Read the partition's file in the worker, then run the operation on the frame.

    The worker opens the file itself, wherever it runs: on a cluster the path must
    exist on every worker's machine. A relative path is taken from the kernel's
    working directory (``base``), not the worker's.
    """

    op: Any
    read: Callable[..., Any] | None
    read_kwargs: Mapping[str, Any] = field(default_factory=dict)
    base: str | None = None

    def __call__(self, path: str) -> Any:
        if self.read is None:
            return self.op(path)
        full = os.path.join(self.base, path) if self.base else path
        try:
            data = self.read(full, **self.read_kwargs)
        except FileNotFoundError as exc:
            if os.path.exists(full):
                raise  # the file is there: something else is missing
            import socket

            msg = (f"{exc.strerror or 'No such file'} on {socket.gethostname()}: the worker "
                   "reads each file itself, so the path must exist on every worker's machine "
                   "(storage all of them mount at the same path); or read the file in the "
                   "kernel with a chunked reader, pd.read_csv(path, chunksize=N)")
            raise FileNotFoundError(exc.errno or 2, msg, full) from None
        if isinstance(data, pd.DataFrame | pd.Series):
            data.attrs["path"] = path
        return self.op(data)


@dataclass(frozen=True)
class FileSet:
    """Files to process one per partition, and how to read each.

    Made by :func:`files`; give it (or the pattern itself) to ``jp.map_partitions``.
    """

    pattern: str
    paths: tuple[str, ...]
    read: Callable[..., Any] | str | None = "auto"
    read_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def partitions(self) -> list[Partition]:
        """One partition per file, in sorted path order; sizes count files."""
        return [Partition(i, path, 1, f"file {path}") for i, path in enumerate(self.paths)]

    def reading(self, op: Any) -> Any:
        """``op`` preceded by reading the partition's file (in the worker)."""
        read = self.read
        if read == "auto":
            readers = {reader_for(p) for p in self.paths}
            if len(readers) > 1:
                msg = (f"{self.pattern!r} matches files of several kinds; pass "
                       "read=your_function or a narrower pattern such as '*.csv'")
                raise UsageError(msg)
            read = readers.pop()
        return ReadFile(op, read, dict(self.read_kwargs), os.getcwd())


def files(pattern: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
          read: Callable[..., Any] | str | None = "auto", **read_kwargs: Any) -> FileSet:
    """The files matching ``pattern``, to process one per partition.

    Parameters
    ----------
    pattern
        A glob (``"logs/*.csv"``, ``"data/**/*.parquet"``), a single path, or a list
        of paths. Matches are sorted, so results come back in file-name order.
    read
        ``"auto"`` picks the pandas reader from the suffix (``.csv``, ``.tsv``,
        ``.json``, ``.jsonl``, ``.parquet``, ``.feather``, ``.pkl``, compressed too);
        a callable ``read(path, **read_kwargs)`` reads any other way; ``None`` hands
        the function the path itself (images, archives, your own parser).
    **read_kwargs
        Passed to the reader, e.g. ``sep=";"`` or ``usecols=[...]``.

    Examples
    --------
    >>> jp.map_partitions(jp.files("logs/*.csv", usecols=["status"]),
    ...                   lambda df: df.attrs["path"], jobs=4)   # doctest: +SKIP
    """
    if isinstance(pattern, str | os.PathLike):
        text = os.fspath(pattern)
        paths = sorted(glob.glob(os.path.expanduser(text), recursive=True))
        paths = [p for p in paths if os.path.isfile(p)]
    elif isinstance(pattern, Sequence):
        text = f"{len(pattern)} paths"
        paths = [os.fspath(p) for p in pattern]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            msg = f"{len(missing)} of the files do not exist, e.g. {missing[0]!r}"
            raise UsageError(msg)
    else:
        msg = f"files needs a glob pattern or a list of paths, got {type(pattern).__name__}"
        raise UsageError(msg)
    if not paths:
        where = os.path.abspath(os.path.dirname(text) or ".")
        msg = (f"no file matches {text!r} (looked in {where}); check the pattern and the "
               "working directory")
        raise UsageError(msg)
    if not (read is None or read == "auto" or callable(read)):
        msg = f"read must be 'auto', a function or None, got {read!r}"
        raise UsageError(msg)
    return FileSet(text, tuple(paths), read, read_kwargs)


class Fold:
    """Fold results into one value in partition order: ``reduce(acc, result)``.

    The engine calls it with each result as soon as every earlier partition's result
    has come, then forgets the result. As :func:`functools.reduce`, the first result
    starts the fold; with no partitions ``value`` stays ``None``.
    """

    def __init__(self, reduce: Callable[[Any, Any], Any]) -> None:
        self.reduce = reduce
        self.value: Any = None
        self.count = 0

    def __call__(self, result: Any) -> None:
        self.value = result if self.count == 0 else self.reduce(self.value, result)
        self.count += 1

