"""The ``.par`` accessor: ``df.par.apply(f, axis=1)``, ``series.par.map(f)``.

Registered through pandas' public accessor API when jupyter_par is imported.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import api


@pd.api.extensions.register_dataframe_accessor("par")
class DataFrameParallel:
    """Parallel versions of DataFrame methods; keywords as in :func:`jupyter_par.apply`."""

    def __init__(self, obj: pd.DataFrame) -> None:
        self._obj = obj

    def apply(self, func: Any, axis: Any = 0, **kwargs: Any) -> Any:
        """Parallel ``DataFrame.apply``."""
        return api.apply(self._obj, func, axis=axis, **kwargs)

    def map(self, func: Any, na_action: Any = None, **kwargs: Any) -> Any:
        """Parallel ``DataFrame.map`` (element-wise)."""
        return api.frame_map(self._obj, func, na_action, **kwargs)

    def map_partitions(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """``func(partition, *args, **kwargs)`` over row partitions, concatenated."""
        return api.map_partitions(self._obj, func, *args, **kwargs)

    def groupby_apply(self, by: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Parallel ``DataFrame.groupby(by).apply(func)``."""
        return api.groupby_apply(self._obj, by, func, *args, **kwargs)


@pd.api.extensions.register_series_accessor("par")
class SeriesParallel:
    """Parallel versions of Series methods; keywords as in :func:`jupyter_par.map`."""

    def __init__(self, obj: pd.Series) -> None:
        self._obj = obj

    def map(self, func: Any, **kwargs: Any) -> Any:
        """Parallel ``Series.map``."""
        return api.map(self._obj, func, **kwargs)

    def apply(self, func: Any, **kwargs: Any) -> Any:
        """Parallel ``Series.apply``."""
        return api.apply(self._obj, func, **kwargs)

    def map_partitions(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """``func(partition, *args, **kwargs)`` over row partitions, concatenated."""
        return api.map_partitions(self._obj, func, *args, **kwargs)
