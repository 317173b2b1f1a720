"""Items cut into partitions as they are read, for results that stream back (``jp.imap``).

An iterable may be endless or larger than memory, so nothing reads it ahead: the engine
pulls the next partition only when a worker is free and the consumer keeps asking.
Without a ``chunksize`` the partitions start at one item and grow (at most doubling)
towards about :data:`TARGET_SECONDS` of work each, as measured on the partitions that
came back, so slow items come back one by one and a million fast ones do not pay one
round trip each.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .operations import ItemMap
from .partition import Partition

#: The work a partition aims at, in seconds, when the chunk size is left to adapt.
TARGET_SECONDS = 0.1
#: The most items in one adaptive partition (what a partition holds stays small).
MAX_CHUNK = 10_000


@dataclass(frozen=True)
class TimedItemMap:
    """``[func(x) for x in items]`` with the seconds it took, for the chunk size."""

    func: Callable[..., Any]

    def __call__(self, part: tuple[int, list[Any]]) -> tuple[float, list[Any]]:
        started = time.perf_counter()
        out = ItemMap(self.func)(part)
        return time.perf_counter() - started, out


class Chunker:
    """The partitions of ``items``, cut lazily; :meth:`observe` tunes the next ones."""

    def __init__(self, items: Iterable[Any], chunksize: int | None = None) -> None:
        self.items = iter(items)
        self.fixed = chunksize
        self.size = chunksize or 1
        self.per_item: float | None = None

    def observe(self, seconds: float, items: int) -> None:
        """A partition of ``items`` took ``seconds``: aim the next ones at the target."""
        if self.fixed or items == 0:
            return
        rate = seconds / items
        self.per_item = rate if self.per_item is None else 0.5 * (self.per_item + rate)

    def _next_size(self) -> int:
        if self.fixed:
            return self.fixed
        if self.per_item is None:
            wanted = self.size  # nothing measured yet: one item, then more as results come
        else:
            wanted = round(TARGET_SECONDS / self.per_item) if self.per_item > 0 else MAX_CHUNK
        self.size = max(1, min(wanted, 2 * self.size, MAX_CHUNK))
        return self.size

    def __iter__(self) -> Iterator[Partition]:
        start = 0
        for index in itertools.count():
            chunk = list(itertools.islice(self.items, self._next_size()))
            if not chunk:
                return
            end = start + len(chunk)
            yield Partition(index, (start, chunk), len(chunk), f"items {start}-{end - 1}")
            start = end
