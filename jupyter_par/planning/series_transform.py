"""``SeriesGroupBy.transform(func)``'s loop in a worker, without pandas' assembly.

pandas' ``_transform_general`` is, for a Series::

    for name, group in grouper.get_iterator(obj):     # the loop over the groups
        group.name = name
        results.append(Series(func(group), index=group.index))
    concat(results), then the rows put back in input order

A worker needs the loop's pieces, in group order (the caller concatenates every
partition's and places the rows itself, see ``group_replay._series_transform``); the
concatenation and reordering of its own partition, which pandas does next, would be
thrown away. So where this pandas' loop is the one above (known by its source), the
worker walks it as pandas does and stops there: about a third of a cheap function's
time per group. Elsewhere it runs pandas' own ``transform`` and keeps its pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from .group_assembly import known_loop
from .group_source import function_kwargs

#: ``SeriesGroupBy._transform_general``, by its source (sha256, first 16 hex digits),
#: -> whether its iterator takes ``axis`` (pandas 2).
_LOOPS = {"8362e20bd4153e20": False,  # pandas 3.1
          "2ff0254551211853": True}  # pandas 2.3
_WITH_AXIS = known_loop(getattr(pd.core.groupby, "SeriesGroupBy", None),
                        "_transform_general", _LOOPS)


def supported() -> bool:
    """Whether this pandas' loop is the one :func:`pieces` walks."""
    return _WITH_AXIS is not None


def pieces(grouped: Any, func: Callable[..., Any], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> list[pd.Series]:
    """``Series(func(group), index=group.index)`` of each group, in group order, as
    pandas' ``transform`` makes them (the same calls, names and arguments)."""
    kwargs = function_kwargs(kwargs)
    klass = type(grouped.obj)
    extra = {"axis": grouped.axis} if _WITH_AXIS else {}
    made = []
    for name, group in grouped._grouper.get_iterator(grouped._obj_with_exclusions, **extra):
        object.__setattr__(group, "name", name)  # as pandas does
        made.append(klass(func(group, *args, **kwargs), index=group.index))
    return made
