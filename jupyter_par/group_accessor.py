"""``.par`` on pandas' GroupBy objects: ``df.groupby("g").par.transform(f)``.

pandas has a public accessor API for DataFrame, Series and Index, not for GroupBy. This
registers ``par`` on ``DataFrameGroupBy`` and ``SeriesGroupBy`` (from their public import
path, ``pandas.api.typing``) the way pandas' own ``CachedAccessor`` does: a descriptor on
the class that builds the accessor on first use and caches it on the instance.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import api


class GroupByParallel:
    """Parallel versions of a GroupBy's calls; pandas' own signatures plus jupyter_par's
    options (``jobs``, ``backend``, ``partitions``, ``progress``, ...)."""

    def __init__(self, grouped: Any) -> None:
        self._grouped = grouped

    def apply(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Parallel ``GroupBy.apply``."""
        return api.group_call(self._grouped, "apply", func, *args, **kwargs)

    def transform(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Parallel ``GroupBy.transform``."""
        return api.group_call(self._grouped, "transform", func, *args, **kwargs)

    def aggregate(self, func: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Parallel ``GroupBy.aggregate``: functions, lists, dicts, named aggregation."""
        return api.group_call(self._grouped, "aggregate", func, *args, **kwargs)

    agg = aggregate

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        msg = (f"jupyter_par runs apply, transform, agg / aggregate and filter of a GroupBy "
               f"in parallel, not {name!r}: call the GroupBy's own .{name}(...) (pandas' "
               f"vectorised code), or .par.apply(lambda g: g.{name}(...)) for a function per group")
        from .errors import UsageError

        raise UsageError(msg)

    def filter(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Parallel ``GroupBy.filter``."""
        return api.group_call(self._grouped, "filter", func, *args, **kwargs)


class _CachedAccessor:
    """As pandas' ``CachedAccessor``: the class gets the accessor type, an instance a
    cached accessor object."""

    def __init__(self, name: str, accessor: type) -> None:
        self._name, self._accessor = name, accessor

    def __get__(self, obj: Any, cls: type) -> Any:
        if obj is None:
            return self._accessor
        value = self._accessor(obj)
        object.__setattr__(obj, self._name, value)
        return value


def register() -> None:
    """Put ``.par`` on pandas' two GroupBy classes (once)."""
    for cls in (pd.api.typing.DataFrameGroupBy, pd.api.typing.SeriesGroupBy):
        if not isinstance(cls.__dict__.get("par"), _CachedAccessor):
            cls.par = _CachedAccessor("par", GroupByParallel)  # type: ignore[attr-defined]


register()
