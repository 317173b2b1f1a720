"""Cut pandas objects and other inputs into partitions, and put results back together.

Partitions are contiguous and numbered in input order, so concatenating their results
in that order gives back what a serial run produces. Groups are never split: a
partition boundary only ever falls between two groups.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UsageError

#: Default number of partitions per worker: enough that a slow partition does not
#: leave the other workers idle at the end, few enough that per-partition cost stays low.
PARTITIONS_PER_WORKER = 4


@dataclass(frozen=True)
class Partition:
    """One unit of work: a slice of the input and where it came from."""

    index: int
    data: Any
    size: int
    span: str = ""
    #: Positions of the partition's rows in the input, where they are not one slice.
    rows: Any = None

    def __repr__(self) -> str:
        return f"Partition({self.index}, size={self.size}, {self.span})"


class LazyPartition(Partition):
    """A partition whose data is taken out of the input when first read.

    Its size and span are known at once (the progress total, the failure messages);
    ``cut(index)`` returns ``(data, rows)`` and runs once, when the engine reads
    ``data`` to hand the partition out, so the first partitions are running while the
    later ones are still being cut.
    """

    def __init__(self, index: int, size: int, span: str,
                 cut: Callable[[int], tuple[Any, Any]]) -> None:
        object.__setattr__(self, "_cut", cut)
        object.__setattr__(self, "_made", None)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "span", span)

    def _data_and_rows(self) -> tuple[Any, Any]:
        made = self._made
        if made is None:
            made = self._cut(self.index)
            object.__setattr__(self, "_made", made)
        return made

    @property  # type: ignore[override]
    def data(self) -> Any:
        return self._data_and_rows()[0]

    @property  # type: ignore[override]
    def rows(self) -> Any:
        return self._data_and_rows()[1]

    @property
    def is_cut(self) -> bool:
        """Whether the data was taken out already."""
        return self._made is not None


def partition_count(n_items: int, jobs: int, partitions: int | None) -> int:
    """How many partitions to cut ``n_items`` into for ``jobs`` workers."""
    if partitions is not None:
        if partitions < 1:
            msg = f"partitions must be at least 1, got {partitions}"
            raise UsageError(msg)
        return max(1, min(partitions, n_items)) if n_items else 1
    return max(1, min(n_items, jobs * PARTITIONS_PER_WORKER))


def _bounds(n_items: int, n_parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n_items, n_parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a or n_items == 0]


def split_rows(obj: pd.DataFrame | pd.Series, n_parts: int) -> list[Partition]:
    """Contiguous row slices of a DataFrame or Series."""
    return [
        Partition(i, obj.iloc[a:b], b - a, f"rows {a}-{b - 1}" if b > a else "no rows")
        for i, (a, b) in enumerate(_bounds(len(obj), n_parts))
    ]


def split_columns(df: pd.DataFrame, n_parts: int) -> list[Partition]:
    """Contiguous column slices of a DataFrame; each column counts as one unit."""
    return [
        Partition(i, df.iloc[:, a:b], b - a, f"columns {a}-{b - 1}")
        for i, (a, b) in enumerate(_bounds(df.shape[1], n_parts))
    ]


def split_sequence(items: Sequence[Any], n_parts: int) -> list[Partition]:
    """Contiguous slices of a list or tuple (a list of tasks, file names, ...)."""
    return [
        Partition(i, list(items[a:b]), b - a, f"items {a}-{b - 1}")
        for i, (a, b) in enumerate(_bounds(len(items), n_parts))
    ]


def split_indexed_items(items: Sequence[Any], n_parts: int) -> list[Partition]:
    """Like :func:`split_sequence`, each slice paired with its start: ``(start, items)``."""
    return [
        Partition(i, (a, list(items[a:b])), b - a, f"items {a}-{b - 1}")
        for i, (a, b) in enumerate(_bounds(len(items), n_parts))
    ]


def iter_chunks(chunks: Iterable[Any]) -> Iterator[Partition]:
    """One partition per item of a lazy iterable (a chunked reader, a generator)."""
    for i, chunk in enumerate(chunks):
        size = len(chunk) if hasattr(chunk, "__len__") else 1
        yield Partition(i, chunk, size, f"chunk {i}")


def is_chunked_reader(obj: Any) -> bool:
    """True for pandas' chunked readers (``read_csv(..., chunksize=N)`` and friends)."""
    readers = []
    for path in ("pandas.io.parsers.readers", "pandas.io.json._json"):
        try:
            module = __import__(path, fromlist=["_"])
        except ImportError:
            continue
        readers += [
            getattr(module, name)
            for name in ("TextFileReader", "JsonReader")
            if hasattr(module, name)
        ]
    return isinstance(obj, tuple(readers))


def combine(results: list[Any], *, axis: int = 0, concat_lists: bool = False,
            infer: str = "columns") -> Any:
    """Put partition results back together in partition order.

    pandas objects are concatenated (along ``axis``); lists are joined when
    ``concat_lists`` (the input was a list and each partition returned a list);
    anything else becomes a list with one item per partition. ``infer`` says how
    pandas would have inferred a frame's dtypes serially: ``"columns"`` one column at
    a time (a frame built from columns), ``"block"`` as ``DataFrame.apply`` does.
    """
    if results and all(isinstance(r, pd.DataFrame | pd.Series) for r in results):
        if len(results) == 1:
            return results[0]
        return _concat_rows(results, infer) if axis == 0 else pd.concat(results, axis=axis)
    if concat_lists and all(isinstance(r, list) for r in results):
        return [item for r in results for item in r]
    return list(results)


def _concat_rows(results: list[Any], infer: str = "columns") -> Any:
    """``pd.concat`` of row pieces, with the dtypes a serial run would have given.

    Each piece inferred its dtypes from its own rows only: a piece of missing values
    alone becomes float or object where the others hold strings, tz-aware stamps or
    nullable integers. Where pieces disagree, the pieces that hold data decide (they
    saw what pandas would have seen); if even they disagree, the values are inferred
    again over all rows, as pandas does after ``apply``.
    """
    nonempty = [r for r in results if len(r)]
    if nonempty and all(_same_columns(r, nonempty[0]) for r in results):
        results = nonempty  # empty pieces carry a placeholder dtype, not the data's
    combined = pd.concat(results)
    if len(results) < 2 or not all(_same_columns(r, results[0]) for r in results):
        return combined
    if isinstance(combined, pd.Series):
        if len({r.dtype for r in results}) == 1:
            return combined
        settled = _settled(combined, results)
        return infer_series(combined) if settled is None else settled
    disagree = [i for i in range(combined.shape[1])
                if len({r.dtypes.iloc[i] for r in results}) > 1]
    if not disagree:
        return combined
    if infer == "block":
        # As DataFrame.apply infers its result: the whole frame as one object block,
        # every column at once (pandas keeps them all object unless one converts).
        block = pd.DataFrame(combined.to_numpy(dtype=object), index=combined.index,
                             columns=combined.columns, dtype=object)
        return block.infer_objects()
    columns = [combined.iloc[:, i] for i in range(combined.shape[1])]
    unsettled = []
    for i in disagree:
        settled = _settled(columns[i], [r.iloc[:, i] for r in results])
        if settled is None:
            unsettled.append(i)
        else:
            columns[i] = settled
    for i in unsettled:
        columns[i] = infer_series(columns[i])
    # Assembled from Series, as setting an object column would infer str again.
    rebuilt = pd.concat(columns, axis=1)
    rebuilt.columns = combined.columns
    return rebuilt


def _settled(column: pd.Series, pieces: list[pd.Series]) -> pd.Series | None:
    """``column`` in the one dtype its pieces that hold data agree on, else ``None``."""
    voters = {p.dtype for p in pieces if p.notna().any()}
    if len(voters) != 1:
        return None
    try:
        settled = column.astype(voters.pop())
    except (TypeError, ValueError):
        return None
    # A cast that invents values (NaT as an integer, NaN as True) is no answer.
    return settled if settled.isna().equals(column.isna()) else None


def _same_columns(a: Any, b: Any) -> bool:
    if isinstance(a, pd.Series) or isinstance(b, pd.Series):
        return isinstance(a, pd.Series) and isinstance(b, pd.Series)
    return a.columns.equals(b.columns)


def infer_series(series: pd.Series) -> pd.Series:
    """The Series pandas would build from these values (as ``apply`` and ``map`` do)."""
    return pd.Series(series.astype(object).tolist(), index=series.index, name=series.name)
