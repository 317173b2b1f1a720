"""The in-kernel fallback's sample for a column-wise apply: single columns, not a partition.

A column-wise ``DataFrame.apply`` may not cut its rows (the function sees whole columns),
but its columns may be cut anywhere: each column is one call, and the results of any
contiguous pieces combine to pandas' value. The whole first partition (two columns of
sixteen, or sixty of a thousand) in the kernel was work no worker shared, about
``1 / partitions`` of the run serial (issue 28); here the sample is the first column,
then pieces twice as wide until one takes a measurable time (or the first partition is
spent), each run once and kept, as :class:`~jupyter_par.run.fallback.Sample` does for rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import pandas as pd

from ..planning.partition import Partition
from ..wire.shared_memory import shared_bytes
from .fallback import MEASURABLE_SECONDS, Sample
from .moving import _pickle_per_row, _pickle_seconds


def _span(start: int, end: int) -> str:
    return f"columns {start}-{end - 1}"


class ColumnSample(Sample):
    """:class:`Sample` in columns of the first partition (``first`` a DataFrame)."""

    @property
    def units_done(self) -> int:
        return self.taken

    def _columns(self) -> int:
        return self.size.first.shape[1]

    def pieces(self) -> Iterator[Partition]:
        """One column, then pieces twice as wide, until the faster reading is measurable."""
        if self.size.partitions < 2:  # the first partition is the run: nothing to decide
            return
        total = self.size.first_part.size * self.size.scale  # columns of the whole input
        width, seconds, results = 1, 0.0, []
        while self.taken < self._columns():
            start, end = self.taken, min(self._columns(), self.taken + width)
            before = len(self.clock.calls)
            self.taken, self.count = end, self.count + 1
            yield Partition(self.count - 1, self.size.first.iloc[:, start:end], end - start,
                            _span(start, end))
            if len(self.clock.calls) == before:
                return  # it failed: nothing is decided here (the run reports it)
            spent, _, result = self.clock.calls[-1]
            seconds += spent
            results.append(result)
            if seconds >= MEASURABLE_SECONDS:
                break
            width *= 2
        if self.taken >= total:
            return  # the sample was the whole input: nothing is left to decide
        scale = total / self.taken
        out_seconds, out_numeric = 0.0, 0.0
        for result in results:
            if isinstance(result, pd.DataFrame | pd.Series) and len(result):
                per_row, _ = _pickle_per_row(result)
                out_seconds += per_row * len(result)
                out_numeric += shared_bytes(result)
            else:
                out_seconds += _pickle_seconds(result)[0]
        self.verdict = self._verdict(seconds * scale, self.size.pickled_seconds,
                                     out_seconds * scale, out_numeric * scale)

    def rest(self, parts: Sequence[Partition]) -> list[Partition]:
        """The first partition's columns left, then the other partitions, numbered on."""
        first, done = parts[0], self.count
        rest: list[Partition] = []
        if self.taken < self._columns():
            rest.append(Partition(done, self.size.first.iloc[:, self.taken:],
                                  first.size - self.taken, _span(self.taken, self._columns())))
        start = done + len(rest)  # (extend grows ``rest`` as it goes)
        rest.extend(replace(p, index=start + i) for i, p in enumerate(parts[1:]))
        return rest
