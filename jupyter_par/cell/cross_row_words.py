"""The words of pandas, numpy and Python that mean "other rows" to the cross-row check.

:mod:`.meaning` walks a ``%%parallel`` body; these tables say which methods, functions
and attributes, used on TARGET (or a column or row selection of it), give one
partition's answer instead of the serial run's, grouped by why (the group names the
reason in the refusal). Kept apart so the vocabulary can grow without touching the walk.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from types import MappingProxyType

#: Methods whose result for a row depends on other rows, grouped by why. Called on
#: TARGET, a column or a row selection of it, each gives one partition's answer.
CROSS_ROW_METHODS: Mapping[str, frozenset[str]] = MappingProxyType({
    # reductions: one value from all the rows (a scalar, or one per column).
    "reduction": frozenset({
        "sum", "prod", "product", "mean", "median", "std", "var", "sem", "skew", "kurt",
        "kurtosis", "min", "max", "any", "all", "count", "idxmax", "idxmin", "argmax",
        "argmin", "quantile", "describe", "info", "corr", "cov", "corrwith", "autocorr",
        "dot", "agg", "aggregate", "first_valid_index", "last_valid_index", "pivot_table",
    }),
    # cumulative and window: a row's value needs the rows before (or after) it, and
    # those may be in another partition.
    "window": frozenset({
        "cumsum", "cumprod", "cummax", "cummin", "shift", "diff", "pct_change", "rolling",
        "expanding", "ewm", "resample", "ffill", "bfill", "pad", "backfill",
        "interpolate", "asof",
    }),
    # positional: rows picked by position; positions restart in every partition.
    "positional": frozenset({"head", "tail", "take", "sample", "first", "last", "pop",
                             "index"}),
    # order-dependent: a row's result depends on where it ranks among all the rows.
    "order": frozenset({
        "sort_values", "sort_index", "rank", "nlargest", "nsmallest", "argsort",
        "searchsorted", "sort", "reverse",
    }),
    # dedup: whether a value is repeated, or which values exist, needs every row.
    "dedup": frozenset({
        "drop_duplicates", "duplicated", "unique", "nunique", "value_counts", "mode",
        "factorize",
    }),
    # groupby without a covering --by: a group's rows are spread over partitions
    # (with --by keys that the groupby's keys include, each group is whole).
    "groupby": frozenset({"groupby"}),
})
"""See the comments: reductions, cumulative/window, positional, order-dependent, dedup,
groupby. ``apply``/``transform``, ``isin``/``map`` and ``fillna(method=...)`` are decided
by their arguments (:meth:`jupyter_par.cell.expressions.Expressions._method`)."""

#: Functions (builtins, or numpy/pandas/statistics/scipy functions by their last name)
#: that are cross-row when given TARGET or a column or selection of it.
CROSS_ROW_FUNCTIONS: Mapping[str, frozenset[str]] = MappingProxyType({
    "reduction": frozenset({
        "len", "sum", "max", "min", "any", "all", "mean", "median", "std", "var", "amax",
        "amin", "nanmean", "nansum", "nanmedian", "nanstd", "nanvar", "nanmax", "nanmin",
        "ptp", "percentile", "quantile", "nanpercentile", "nanquantile", "average", "prod",
        "count_nonzero", "histogram", "corrcoef", "cov", "norm", "fsum", "stdev",
        "pstdev", "variance", "pvariance", "quantiles", "crosstab", "zscore", "qcut",
    }),
    "window": frozenset({"cumsum", "cumprod", "nancumsum", "nancumprod", "diff", "gradient",
                         "ediff1d", "convolve", "correlate"}),
    "order": frozenset({"sorted", "reversed", "sort", "argsort", "argmax", "argmin",
                        "rankdata"}),
    "dedup": frozenset({"unique", "set", "frozenset", "factorize", "value_counts",
                        "Categorical", "get_dummies"}),
})

#: Properties of TARGET (or a column) that describe all of its rows.
CROSS_ROW_ATTRIBUTES = {
    "shape": "reduction", "size": "reduction", "empty": "reduction", "hasnans": "reduction",
    "is_unique": "dedup", "is_monotonic_increasing": "order",
    "is_monotonic_decreasing": "order",
}
#: Attributes that are not rows of TARGET (metadata, the transposed frame).
NOT_ROWS = frozenset({"columns", "dtypes", "ndim", "attrs", "flags", "T", "axes", "nbytes"})
#: A Series' own metadata; on a DataFrame ``df.name`` is a column.
SERIES_META = frozenset({"name", "names", "dtype"})
ACCESSORS = frozenset({"str", "dt", "cat", "sparse", "list", "struct"})
INDEXERS = frozenset({"loc", "iloc", "at", "iat"})
#: Row containers indexed by position (``df.index[0]``, ``df.x.values[:3]``).
POSITIONAL = frozenset({"index", "values", "array", "to_numpy", "tolist", "to_list"})
#: Functions that take ``len(df)`` as a size only: one value per row, row by row.
SIZED = frozenset({"zeros", "ones", "full", "empty", "rand", "randn", "random", "normal",
                    "uniform", "integers", "standard_normal", "random_sample", "choice",
                    "poisson", "binomial", "exponential"})
#: List methods that are cross-row on a list TARGET but mean something row-local (or
#: nothing) on pandas objects: ``df.pop("x")`` takes a column.
LIST_ONLY = frozenset({"index", "sort", "reverse", "pop"})
#: Methods that call their function with the whole partition (or column), not a row.
GETS_PART = frozenset({"assign", "pipe", "where", "mask", "transform"})
#: Methods that, given ``axis=1``/``"columns"`` first, work within each row.
AXIS_FIRST = CROSS_ROW_METHODS["reduction"] | {"cumsum", "cumprod", "cummax", "cummin",
                                                "rank", "nunique", "mode"}
#: Calls whose only effect is output: it is shown under each partition's label, so
#: ``print(len(df))`` says what it says of that partition and changes no result.
SHOWN = frozenset({"print", "display"})


def shown(node: ast.stmt) -> bool:
    """Whether the statement is ``print(...)`` or ``display(...)``."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(
        node.value.func, ast.Name) and node.value.func.id in SHOWN


WHY = {
    "reduction": "a reduction over its rows",
    "window": "a row's value needs rows that may be in another partition",
    "positional": "positions restart in every partition",
    "order": "it orders or ranks one partition's rows only",
    "dedup": "duplicates and values in other partitions are not seen",
    "groupby": "each group's rows are spread over partitions",
    "columns": "the function gets whole columns of one partition",
    "lookup": "it looks values up in one partition's rows only",
}

