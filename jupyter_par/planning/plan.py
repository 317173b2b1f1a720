"""What one parallel call does: its partitions, the work on each, how results combine.

Every face (the API, the magic, the panel) builds a :class:`Plan`; :mod:`jupyter_par.run.pipeline`
executes it. Builders for pandas' own calls are in :mod:`.builders`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .partition import Partition


@dataclass
class Plan:
    """What one parallel call does: its partitions, the work on each, how results combine.

    ``serial`` set means the call runs in the caller, as pandas itself (an empty input,
    or a form whose meaning partitions would change); ``serial_reason`` says why, as a
    warning, when the user could have expected workers.
    """

    parts: Sequence[Partition] | Iterable[Partition]
    op: Any
    combine: Callable[[list[Any]], Any]
    label: str
    unit: str = "rows"
    serial: Callable[[], Any] | None = None
    serial_reason: str | None = None
    #: What cutting ``parts`` took the caller before the run (in the breakdown's split).
    split_seconds: float = 0.0
    #: Rows may be cut anywhere: ``op`` is row-local and ``combine`` gives the same value
    #: however the rows of the partitions (pandas objects) are cut into contiguous pieces.
    #: The in-kernel fallback's sample runs such pieces once and keeps their results.
    cuttable: bool = False
    #: Columns may be cut anywhere (a column-wise apply: ``op`` is column-local, and the
    #: results of any contiguous column pieces combine to the same value); the sample
    #: then runs single columns, not the whole first partition.
    columns_cuttable: bool = False
    #: Called with the first result that comes back; raises (a UsageError) when the
    #: results cannot be combined, which stops the run at once (a refusal costs nothing).
    check_first: Callable[[Any], None] | None = None
    #: How the call finishes in the kernel when the in-kernel fallback keeps it there
    #: (a :class:`~.group_live.KernelFinish`: pandas' own call, the sample's values
    #: replayed, the rest called there), instead of running the rest as partitions and
    #: assembling them; also what the verdict counts as the assembly after workers.
    kernel_finish: Any = None

    @classmethod
    def in_caller(cls, call: Callable[[], Any], label: str, reason: str | None = None) -> Plan:
        """A plan that runs ``call`` in the caller, as pandas would."""
        return cls([], None, list, label, serial=call, serial_reason=reason)
