"""Arrow-backed pandas columns through a shared-memory segment, as one Arrow IPC stream.

pandas pickles an Arrow-backed array (``str`` where pyarrow is installed, ``ArrowDtype``)
as its Arrow buffers: no per-string loop, but the bytes are still copied into the pickle,
through the pipe and out again on the other side. Written into the partition's segment as
an Arrow IPC stream, the columns cost the sender one copy and the receiver none: pyarrow
reads a stream held in a buffer without copying, so the arrays sit on the mapped pages.
The IPC format also writes only a slice's own bytes (a partition of a big column does not
carry the whole column) and covers every Arrow type (nested, dictionary, extension).

pyarrow is never imported to look at a column: a column is Arrow-backed only where pandas
has imported pyarrow already.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class ArrowColumn:
    """Stands, in a :class:`~jupyter_par.wire.shared_memory.Packed` handle, for column
    ``field`` of the segment's Arrow stream; ``kind`` and ``state`` rebuild the pandas
    array around it as unpickling it would (its dtype and other attributes)."""

    field: int
    kind: type
    state: dict[str, Any]


def chunked(column: pd.Series) -> Any | None:
    """The pyarrow ChunkedArray behind an Arrow-backed column, or ``None``."""
    if "pyarrow" not in sys.modules:
        return None
    values = getattr(column.array, "_pa_array", None)
    pa = sys.modules["pyarrow"]
    if not isinstance(values, pa.ChunkedArray) or not hasattr(column.array, "__setstate__"):
        return None
    return values


def nbytes(column: pd.Series) -> int:
    """The bytes a column's Arrow data takes (its slice's own), 0 if not Arrow-backed."""
    values = chunked(column)
    return 0 if values is None else int(values.nbytes)


def placeholder(column: pd.Series, field: int) -> ArrowColumn:
    """What stands for ``column`` in the handle: its array's state but the data."""
    state = {k: v for k, v in column.array.__dict__.items() if k != "_pa_array"}
    if "_cache" in state:
        state["_cache"] = {}  # cached properties are recomputed, as after unpickling
    return ArrowColumn(field, type(column.array), state)


def stream(columns: list[Any]) -> Any:
    """The ChunkedArrays ``columns`` as one Arrow IPC stream (a ``pyarrow.Buffer``)."""
    import pyarrow as pa

    table = pa.Table.from_arrays(columns, names=[str(i) for i in range(len(columns))])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read(buffer: Any, offset: int, size: int) -> list[Any]:
    """The ChunkedArrays of the stream at ``buffer[offset:offset + size]``, on its pages
    (the arrays hold an export of ``buffer``, so a mapping stays open while they live)."""
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.py_buffer(buffer).slice(offset, size)).read_all()
    return list(table.columns)


def rebuild(column: ArrowColumn, arrays: list[Any]) -> Any:
    """The pandas array ``column`` stood for, around its data from the stream."""
    array = column.kind.__new__(column.kind)
    array.__setstate__({**column.state, "_pa_array": arrays[column.field]})
    return array
