"""Does a ``%%parallel`` body mean, run per partition, what it means serially?

The body runs once per partition with TARGET's name bound to that partition. Code that
works row by row (arithmetic between columns, ``.str``, ``np.log``, filters, ``apply``
with ``axis=1``) gives, stacked, what a serial run gives. An operation whose result for
one row depends on other rows of TARGET (a mean, a cumulative sum, ``head``, a rank,
``drop_duplicates``, a groupby whose groups span partitions) silently gives each
partition's own answer instead. :func:`check` finds such uses in the body's syntax
tree, before any worker starts, and raises one :class:`UsageError` line naming the
expression, its cell line and what to do.

What it follows: TARGET's name; its columns, selections and row-local transformations
(``df.x``, ``df[df.x > 0]``, ``df.x.astype(int)``); local names assigned from those
(``d = df[df.x > 0]``); and local names assigned from a cross-row expression
(``m = df.x.mean()``), which are refused where they are used. It does not see into
notebook functions the body calls (``clean(df)`` is trusted: its code is not in the
cell), and it checks row partitions only (``--axis columns`` is not checked).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from ..errors import UsageError
from . import overlap as _overlap

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
by their arguments (:meth:`_Analysis._method`)."""

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
_CROSS_ROW_ATTRIBUTES = {
    "shape": "reduction", "size": "reduction", "empty": "reduction", "hasnans": "reduction",
    "is_unique": "dedup", "is_monotonic_increasing": "order",
    "is_monotonic_decreasing": "order",
}
#: Attributes that are not rows of TARGET (metadata, the transposed frame).
_NOT_ROWS = frozenset({"columns", "dtypes", "ndim", "attrs", "flags", "T", "axes", "nbytes"})
#: A Series' own metadata; on a DataFrame ``df.name`` is a column.
_SERIES_META = frozenset({"name", "names", "dtype"})
_ACCESSORS = frozenset({"str", "dt", "cat", "sparse", "list", "struct"})
_INDEXERS = frozenset({"loc", "iloc", "at", "iat"})
#: Row containers indexed by position (``df.index[0]``, ``df.x.values[:3]``).
_POSITIONAL = frozenset({"index", "values", "array", "to_numpy", "tolist", "to_list"})
#: Functions that take ``len(df)`` as a size only: one value per row, row by row.
_SIZED = frozenset({"zeros", "ones", "full", "empty", "rand", "randn", "random", "normal",
                    "uniform", "integers", "standard_normal", "random_sample", "choice",
                    "poisson", "binomial", "exponential"})
#: List methods that are cross-row on a list TARGET but mean something row-local (or
#: nothing) on pandas objects: ``df.pop("x")`` takes a column.
_LIST_ONLY = frozenset({"index", "sort", "reverse", "pop"})
#: Methods that call their function with the whole partition (or column), not a row.
_GETS_PART = frozenset({"assign", "pipe", "where", "mask", "transform"})
#: Methods that, given ``axis=1``/``"columns"`` first, work within each row.
_AXIS_FIRST = CROSS_ROW_METHODS["reduction"] | {"cumsum", "cumprod", "cummax", "cummin",
                                                "rank", "nunique", "mode"}
#: Calls whose only effect is output: it is shown under each partition's label, so
#: ``print(len(df))`` says what it says of that partition and changes no result.
_SHOWN = frozenset({"print", "display"})


def _shown(node: ast.stmt) -> bool:
    """Whether the statement is ``print(...)`` or ``display(...)``."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(
        node.value.func, ast.Name) and node.value.func.id in _SHOWN


_WHY = {
    "reduction": "a reduction over its rows",
    "window": "a row's value needs rows that may be in another partition",
    "positional": "positions restart in every partition",
    "order": "it orders or ranks one partition's rows only",
    "dedup": "duplicates and values in other partitions are not seen",
    "groupby": "each group's rows are spread over partitions",
    "columns": "the function gets whole columns of one partition",
    "lookup": "it looks values up in one partition's rows only",
}


@dataclass(frozen=True)
class Finding:
    """One cross-row use: where it is, what it is, and why it is one."""

    line: int
    expression: str
    category: str
    hint: str  # a name to suggest for the value computed before the cell
    keys: tuple[str, ...] = ()  # a groupby's keys, for the --by advice
    via: tuple[str, int] | None = None  # (local name, line) where it is used
    in_expression: bool = False  # in the trailing expression: --reduce acknowledges it
    before: str = ""  # what to compute before the cell, when not ``expression`` itself


@dataclass(frozen=True)
class _Val:
    """What an expression is, as far as rows of TARGET go.

    ``role``: ``"part"`` rows of the partition (row-aligned), ``"accessor"`` its
    ``.str``/``.dt`` accessor, ``"indexer"`` ``.loc``/``.iloc``, ``"groups"`` a groupby
    whose groups are whole, ``"holds"`` a literal list/tuple holding parts, ``None``
    anything else. ``kind``: ``"frame"``, ``"series"``, ``"items"`` or ``"any"``.
    """

    role: str | None = None
    kind: str = "any"
    indexer: str = ""


_NONE = _Val()


def _constant(node: ast.AST | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _full_slice(node: ast.AST) -> bool:
    return isinstance(node, ast.Slice) and node.lower is None and node.upper is None \
        and node.step is None


def _selected(kind: str, key: ast.AST) -> str:
    """What ``frame[key]`` is: a column, rows or columns (a frame), or either."""
    if kind != "frame":
        return kind
    if isinstance(_constant(key), str):
        return "series"
    masks = ast.List | ast.Compare | ast.BoolOp | ast.UnaryOp | ast.BinOp
    return "frame" if isinstance(key, masks) else "any"


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


class _Analysis:
    """Walk the body's statements in order, collecting the cross-row uses that matter."""

    def __init__(self, source: str, target: str, kind: str, by: tuple[str, ...],
                 overlap: int | None = None) -> None:
        self.source = source
        self.target = target
        self.kind = kind
        self.by = set(by)
        self.parts: dict[str, str] = {}  # local name -> kind, rows of the partition
        self.tainted: dict[str, Finding] = {}  # local name -> the cross-row use it holds
        self.shadowed: set[str] = set()  # parameters of the function being walked
        self.found: list[Finding] = []  # findings of the expression being evaluated
        self.refused: list[Finding] = []
        self.parents: dict[int, ast.AST] = {}
        self.sizing = False  # inside np.zeros(...) and the like: len(df) is a size
        # Windows computed with overlap rows (see .overlap): rows before / after, the
        # --overlap rows, whether one may look ahead, and what makes a reach unknown.
        self.overlap = overlap
        self.before = self.after = 0
        self.flagged = self.flagged_ahead = False
        self.repeated = 0  # inside a loop, a comprehension or a function: runs again
        self.rows_changed = False  # TARGET rebound or changed in place: rows may differ

    # -- findings --------------------------------------------------------------------
    def _text(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        return " ".join(text.split())

    def _hint(self, receiver: ast.AST | None, what: str) -> str:
        column = None
        if isinstance(receiver, ast.Attribute):
            column = receiver.attr
        elif isinstance(receiver, ast.Subscript) and isinstance(_constant(receiver.slice), str):
            column = _constant(receiver.slice)
        base = column if column and str(column).isidentifier() else self.target
        return re.sub(r"\W", "_", f"{base}_{what}")

    def _find(self, node: ast.AST, category: str, receiver: ast.AST | None, what: str,
              keys: tuple[str, ...] = ()) -> None:
        if category in ("window", "groupby"):
            node = self._whole_call(node)  # df.x.rolling(3).mean(), not df.x.rolling(3)
        self.found.append(Finding(node.lineno, self._text(node), category,
                                  self._hint(receiver, what), keys))

    def _whole_call(self, node: ast.AST) -> ast.AST:
        """The chain up to the next call: ``df.groupby("g").x.transform("mean")``."""
        current = node
        while True:
            parent = self.parents.get(id(current))
            if isinstance(parent, ast.Attribute | ast.Subscript) and parent.value is current:
                current = parent
            elif isinstance(parent, ast.Call) and parent.func is current and current is not node:
                return parent
            else:
                return node

    def _collect(self, node: ast.AST | None) -> tuple[_Val, list[Finding]]:
        """Evaluate one expression; return its value and the cross-row uses in it."""
        saved, self.found = self.found, []
        try:
            value = self._value(node) if node is not None else _NONE
            return value, self.found
        finally:
            self.found = saved + self.found

    # -- expressions -----------------------------------------------------------------
    def _value(self, node: ast.AST) -> _Val:
        if isinstance(node, ast.Name):
            if node.id in self.shadowed:
                return _NONE
            if node.id == self.target:
                return _Val("part", self.kind)
            if node.id in self.parts:
                return _Val("part", self.parts[node.id])
            if node.id in self.tainted:
                self.found.append(replace(self.tainted[node.id], via=(node.id, node.lineno)))
            return _NONE
        if isinstance(node, ast.Attribute):
            return self._attribute(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Lambda):
            self._in_function(node.args, [node.body])
            return _NONE
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            return self._comprehension(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            values = [self._value(e) for e in node.elts]
            return _Val("holds") if any(v.role in ("part", "holds") for v in values) else _NONE
        if isinstance(node, ast.Starred):
            return self._value(node.value)
        if isinstance(node, ast.NamedExpr):
            value, found = self._collect(node.value)
            self._bind(node.target, value, found)
            return value
        values = [self._value(child) for child in ast.iter_child_nodes(node)
                  if isinstance(child, ast.expr)]
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp | ast.Compare | ast.IfExp):
            part = next((v for v in values if v.role == "part"), None)
            if part is not None:
                return _Val("part", part.kind)
        return _NONE

    def _attribute(self, node: ast.Attribute) -> _Val:
        base = self._value(node.value)
        if base.role in ("groups", "window"):
            return base
        if base.role == "accessor":
            return _Val("part", "series")
        if base.role != "part":
            return _NONE
        attr = node.attr
        if attr in _CROSS_ROW_ATTRIBUTES and not (self.sizing and attr in ("shape", "size")):
            self._find(node, _CROSS_ROW_ATTRIBUTES[attr], node.value, attr)
            return _NONE
        if attr in _NOT_ROWS or (base.kind != "frame" and attr in _SERIES_META):
            return _NONE
        if attr in _ACCESSORS:
            return _Val("accessor", "series")
        if attr in _INDEXERS:
            return _Val("indexer", base.kind, attr)
        if attr in _POSITIONAL:
            return _Val("part", "items")  # df.index[0] is the partition's first label
        return _Val("part", "series" if base.kind == "frame" else base.kind)

    def _subscript(self, node: ast.Subscript) -> _Val:
        key = node.slice
        if isinstance(node.value, ast.Attribute) and node.value.attr == "shape" and \
                _constant(key) == 1:
            self._value(node.value.value)  # df.shape[1]: the columns, the same everywhere
            return _NONE
        base = self._value(node.value)
        if isinstance(key, ast.Lambda) and base.role in ("part", "indexer"):
            self._lambda(key, base.kind)  # df.loc[lambda d: ...]: d is the partition
        else:
            self._value(key)
        if base.role in ("groups", "window"):
            return base
        if base.role == "indexer":
            rows = key.elts[0] if isinstance(key, ast.Tuple) and key.elts else key
            columns = key.elts[1] if isinstance(key, ast.Tuple) and len(key.elts) > 1 else None
            if base.indexer in ("iloc", "iat") and not _full_slice(rows):
                self._find(node, "positional", None, "rows")
                return _NONE
            return _Val("part", base.kind if columns is None else _selected(base.kind, columns))
        if base.role != "part":
            return _NONE
        if isinstance(key, ast.Slice) or (base.kind == "items" and isinstance(
                _constant(key), int)):
            self._find(node, "positional", None, "rows")
            return _NONE
        return _Val("part", _selected(base.kind, key))

    def _call(self, node: ast.Call) -> _Val:
        func = node.func
        if isinstance(func, ast.Attribute):
            base = self._value(func.value)
            gets_part = base.role == "part" and func.attr in _GETS_PART
            args = self._sized_arguments(node, func.attr, base.kind if gets_part else None)
            if base.role == "part":
                return self._method(node, func, base, args)
            if base.role == "accessor":
                if func.attr == "cat" and not node.args and _keyword(node, "others") is None:
                    self._find(node, "reduction", func.value.value if isinstance(
                        func.value, ast.Attribute) else None, "joined")
                    return _NONE
                return _Val("part", "series")
            if base.role == "groups":
                return base
            if base.role == "window":  # df.b.rolling(3).mean(): one value per row
                return _Val("part", base.kind)
            return self._function(node, func.attr, args)
        self._value(func)
        name = func.id if isinstance(func, ast.Name) else ""
        args = self._sized_arguments(node, name)
        if isinstance(func, ast.Name) and func.id in self.shadowed | set(self.parts):
            name = ""
        return self._function(node, name, args)

    def _sized_arguments(self, node: ast.Call, name: str,
                         part_kind: str | None = None) -> list[_Val]:
        saved, self.sizing = self.sizing, name in _SIZED or (self.sizing and name == "len")
        try:
            return self._arguments(node, part_kind)
        finally:
            self.sizing = saved

    def _arguments(self, node: ast.Call, part_kind: str | None = None) -> list[_Val]:
        """The arguments' values; with ``part_kind``, a lambda among them gets the
        partition itself (``df.assign(z=lambda d: d.x - d.x.mean())``)."""
        return [self._lambda(a, part_kind) if part_kind and isinstance(a, ast.Lambda)
                else self._value(a) for a in [*node.args, *(k.value for k in node.keywords)]]

    def _lambda(self, node: ast.Lambda, part_kind: str) -> _Val:
        self._in_function(node.args, [node.body], part_kind)
        return _NONE

    def _function(self, node: ast.Call, name: str, args: list[_Val]) -> _Val:
        """``len(df)``, ``np.mean(df.x)``: cross-row when given rows of TARGET."""
        parts = [i for i, a in enumerate(args[:len(node.args)]) if a.role == "part"]
        if not parts and not any(a.role in ("part", "holds") for a in args):
            return _NONE
        if self.sizing and name == "len":
            return _NONE  # np.zeros(len(df)): one value per row
        if parts and not self._along_row(node, name, functions=True):
            for category, names in CROSS_ROW_FUNCTIONS.items():
                if name in names:
                    self._find(node, category, node.args[parts[0]], name)
                    return _NONE
            bins = node.args[1] if len(node.args) > 1 else _keyword(node, "bins")
            if name == "cut" and (bins is None or isinstance(_constant(bins), int)):
                self._find(node, "reduction", node.args[parts[0]], "bins")
                return _NONE
        return _Val("part")  # np.log(df.x), pd.to_datetime(df.x), clean(df): row by row

    def _along_row(self, node: ast.Call, name: str, functions: bool = False) -> bool:
        """Whether ``axis=1``/``"columns"`` makes the call work within each row."""
        axis = _keyword(node, "axis")
        if axis is None and not functions:
            if name in _AXIS_FIRST and node.args:
                axis = node.args[0]
            elif name == "apply" and len(node.args) > 1:
                axis = node.args[1]
        return _constant(axis) in (1, "columns")

    def _method(self, node: ast.Call, func: ast.Attribute, base: _Val,
                args: list[_Val]) -> _Val:
        name, receiver = func.attr, func.value
        inplace = _keyword(node, "inplace")
        if isinstance(inplace, ast.Constant) and inplace.value and self._rooted_at_target(
                receiver):
            self.rows_changed = True
        if name == "groupby":
            keys = self._group_keys(node)
            if self.by and keys is not None and self.by <= set(keys):
                return _Val("groups", base.kind)
            self._find(node, "groupby", receiver, "grouped", tuple(keys or ()))
            return _NONE
        if self._along_row(node, name):
            return _Val("part", "any")
        if name in ("shift", "tshift") and _keyword(node, "freq") is not None:
            return _Val("part", base.kind)  # moves the index, not the values
        if name == "astype" and "category" in map(_constant, [*node.args, *(
                k.value for k in node.keywords)]):
            self._find(node, "dedup", receiver, "categories")
            return _NONE
        if name == "fillna" and _constant(_keyword(node, "method")) is not None:
            self._find(node, "window", receiver, "filled")
            return _NONE
        if name in ("apply", "aggregate", "agg", "transform") and node.args:
            named = _constant(node.args[0])
            for category, names in CROSS_ROW_METHODS.items():
                if isinstance(named, str) and named in names:
                    self._find(node, category, receiver, named)
                    return _NONE
            if name == "apply" and base.kind == "frame":
                self._find(node, "columns", receiver, "applied")
                return _NONE
        if name in ("isin", "map") and args and args[0].role in ("part", "holds"):
            self._find(node, "lookup", receiver, name)
            return _NONE
        if name == "dot" and base.kind == "frame":
            return _Val("part", "any")  # df[["a", "b"]].dot(weights): one value per row
        if name in _LIST_ONLY and base.kind in ("frame", "series"):
            return _Val("part", base.kind)  # df.pop("x") takes a column, not a row
        if name in ("query", "eval") and node.args and isinstance(_constant(node.args[0]), str):
            self._query(node, _constant(node.args[0]))
        if name in _overlap.BOUNDED and not self.by and self._bounded(node, name, receiver):
            return _Val("window" if name == "rolling" else "part", base.kind)
        for category, names in CROSS_ROW_METHODS.items():
            if name in names:
                self._find(node, category, receiver, name)
                return _NONE
        if name in ("apply", "agg", "aggregate", "transform", "pipe"):
            return _Val("part", "any")
        if name in _POSITIONAL:
            return _Val("part", "items")
        return _Val("part", "frame" if name == "to_frame" else base.kind)

    def _bounded(self, node: ast.Call, name: str, receiver: ast.AST) -> bool:
        """Whether this window is computed with overlap rows (its reach added up)."""
        reach = _overlap.literal_reach(node, name)
        if reach is not None and not self.repeated and not self.rows_changed \
                and _overlap.plain_rows(receiver, self.target):
            self.before += reach[0]
            self.after += reach[1]
            return True
        if self.overlap is None:
            return False
        self.flagged = True  # --overlap N covers what the syntax does not say
        self.flagged_ahead |= _overlap.may_look_ahead(node, name)
        return True

    def reach(self) -> tuple[int, int]:
        """Rows of overlap before and after each partition that the body's windows need."""
        extra = self.overlap or 0
        return (self.before + (extra if self.flagged else 0),
                self.after + (extra if self.flagged_ahead else 0))

    def _query(self, node: ast.Call, text: str) -> None:
        """``df.query("x > x.mean()")``: the query's bare names are TARGET's columns."""
        try:
            tree = ast.parse(text.replace("@", "_local_"), mode="eval")
        except SyntaxError:
            return
        columns = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                   and not n.id.startswith("_local_")}
        inner = _Analysis(text, self.target, "series", tuple(self.by))
        inner.parts = dict.fromkeys(columns, "series")
        inner.parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        inner._value(tree.body)
        call = self._text(node)
        for finding in inner.found:
            self.found.append(replace(
                finding, line=node.lineno, expression=f"{finding.expression} in {call}",
                hint=f"{self.target}_query", before=call))

    def _group_keys(self, node: ast.Call) -> list[str] | None:
        """A groupby's keys as column names, or ``None`` if they are not plain names."""
        key = node.args[0] if node.args else (_keyword(node, "by") or _keyword(node, "level"))
        items = key.elts if isinstance(key, ast.List | ast.Tuple) else [key]
        names = []
        for item in items:
            if isinstance(_constant(item), str):
                names.append(_constant(item))
            elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) \
                    and item.value.id == self.target:
                names.append(item.attr)
            elif isinstance(item, ast.Subscript) and isinstance(item.value, ast.Name) \
                    and item.value.id == self.target and isinstance(_constant(item.slice), str):
                names.append(_constant(item.slice))
            else:
                return None
        return names

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp |
                       ast.DictComp) -> _Val:
        saved = set(self.shadowed)
        over_rows = False
        self.repeated += 1
        for generator in node.generators:
            over_rows |= self._value(generator.iter).role == "part"
            self.shadowed |= {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
            for condition in generator.ifs:
                self._value(condition)
        for element in ([node.key, node.value] if isinstance(node, ast.DictComp) else
                        [node.elt]):
            self._value(element)
        self.shadowed = saved
        self.repeated -= 1
        return _Val("part", "items") if over_rows else _NONE

    def _in_function(self, args: ast.arguments, body: Iterable[ast.AST],
                     part_kind: str | None = None) -> None:
        """A def or lambda: its parameters are not TARGET, even when named like it
        (except a first one given the partition itself, with ``part_kind``)."""
        saved = (set(self.shadowed), dict(self.parts), dict(self.tainted))
        self.repeated += 1
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs,
                  *filter(None, [args.vararg, args.kwarg])]
        for default in [*args.defaults, *filter(None, args.kw_defaults)]:
            self._value(default)
        self.shadowed |= {a.arg for a in params}
        if part_kind and params:
            self.shadowed.discard(params[0].arg)
            self.parts[params[0].arg] = part_kind
        for item in body:
            if isinstance(item, ast.stmt):
                self._statement(item)
            else:
                self._value(item)
        self.shadowed, self.parts, self.tainted = saved
        self.repeated -= 1

    # -- statements ------------------------------------------------------------------
    def _rooted_at_target(self, node: ast.AST) -> bool:
        while isinstance(node, ast.Subscript | ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id == self.target \
            and node.id not in self.shadowed

    def _bind(self, target: ast.AST, value: _Val, found: list[Finding]) -> None:
        """An assignment's target: TARGET is written (refuse), a local is followed."""
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._bind(element, _NONE if value.role == "part" else value, found)
            return
        if isinstance(target, ast.Starred):
            self._bind(target.value, _NONE, found)
            return
        if self._rooted_at_target(target):
            _, inside = self._collect_target(target)
            self.refused += found + inside
            if isinstance(target, ast.Name):
                self.rows_changed = True  # df = df[...]: later windows see other rows
            return
        root = target
        while isinstance(root, ast.Subscript | ast.Attribute):
            root = root.value
        _, inside = self._collect_target(target)
        if not isinstance(root, ast.Name):
            self.refused += found + inside
            return
        name = root.id
        if found or inside:
            self.tainted[name] = (found + inside)[0]
            self.parts.pop(name, None)
        elif root is target:  # a plain rebinding: forget what the name held
            self.tainted.pop(name, None)
            if value.role == "part":
                self.parts[name] = value.kind
            else:
                self.parts.pop(name, None)

    def _collect_target(self, target: ast.AST) -> tuple[_Val, list[Finding]]:
        """The keys and receivers of an assignment target (``df.loc[mask, "y"]``)."""
        saved, self.found = self.found, []
        node = target
        while isinstance(node, ast.Subscript | ast.Attribute):
            if isinstance(node, ast.Subscript):
                self._value(node.slice)
            node = node.value
        found, self.found = self.found, saved
        return _NONE, found

    def _statement(self, node: ast.stmt) -> None:
        loop = isinstance(node, ast.For | ast.AsyncFor | ast.While)
        self.repeated += loop
        try:
            self._statement_kind(node)
        finally:
            self.repeated -= loop

    def _statement_kind(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign):
            value, found = self._collect(node.value)
            self.found = []
            for target in node.targets:
                self._bind(target, value, found)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            value, found = self._collect(node.value)
            self.found = []
            if isinstance(node, ast.AugAssign):
                _, also = self._collect(node.target)
                found = found + also
                self.found = []
            if node.value is not None:
                self._bind(node.target, value, found)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self._refuse(node.decorator_list)
            self._in_function(node.args, node.body)
            self._forget(node.name)
        elif isinstance(node, ast.ClassDef):
            self._refuse([*node.decorator_list, *node.bases])
            for item in node.body:
                self._statement(item)
            self._forget(node.name)
        elif isinstance(node, ast.For | ast.AsyncFor):
            value, found = self._collect(node.iter)
            self.found = []
            self._bind(node.target, _NONE, found)
            for item in [*node.body, *node.orelse]:
                self._statement(item)
        elif _shown(node):
            self._collect(node.value)  # output, shown under each partition's own label
            self.found = []
        elif isinstance(node, ast.Assert):
            # A check can only raise: it changes no result. One that fails on a partition
            # stops the run with its message; one over a partition's rows that holds on
            # every partition (all(...), a type check) held serially too.
            self._collect(node.test)
            self.found = []
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                self._forget((alias.asname or alias.name).split(".")[0])
        else:
            # if/while tests, with, return, expression statements, raise...: the value
            # is used as it is, so a cross-row use in it is refused here.
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self._statement(child)
                elif isinstance(child, ast.expr):
                    self._refuse([child])
                elif isinstance(child, ast.withitem | ast.excepthandler | ast.match_case):
                    self._statement_parts(child)

    def _statement_parts(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self._statement(child)
            elif isinstance(child, ast.expr):
                self._refuse([child])

    def _refuse(self, nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            _, found = self._collect(node)
            self.found = []
            self.refused += found

    def _forget(self, name: str) -> None:
        self.parts.pop(name, None)
        self.tainted.pop(name, None)

    def run(self, tree: ast.Module) -> list[Finding]:
        self.parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        statements = list(tree.body)
        last = statements[-1] if statements else None
        trailing = statements.pop() if isinstance(last, ast.Expr) and not _shown(last) \
            else None
        for statement in statements:
            self._statement(statement)
        if trailing is not None:
            _, found = self._collect(trailing.value)
            self.found = []
            self.refused += [replace(f, in_expression=True) for f in found]
        return self.refused


def analyse(body: str, target: str, *, kind: str = "frame", by: Iterable[str] = (),
            overlap: int | None = None) -> tuple[list[Finding], tuple[int, int]]:
    """The body's cross-row uses, and the rows before / after each partition that its
    bounded windows need (see :mod:`.overlap`; ``overlap`` is ``--overlap N``)."""
    source = "\n" + body
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], (0, 0)  # compile_body reports it with its line
    analysis = _Analysis(source, target, kind, tuple(by), overlap)
    found = analysis.run(tree)
    return found, analysis.reach()


def cross_row_uses(body: str, target: str, *, kind: str = "frame",
                   by: Iterable[str] = ()) -> list[Finding]:
    """Every use in ``body`` of an operation that needs other rows of ``target``.

    ``kind`` is what TARGET is (``"frame"``, ``"series"``, ``"items"``, ``"any"``);
    ``by`` the ``--by`` keys, under which a groupby including them is whole. Line
    numbers are the cell's (the magic line is line 1). Windows with literal sizes
    (``rolling(50)``, ``shift(2)``) are not among them: they run with overlap rows.
    """
    return analyse(body, target, kind=kind, by=by)[0]


def message(finding: Finding, target: str, by: Iterable[str] = ()) -> str:
    """The one line that says what is wrong and what to do."""
    where = f"cell line {finding.line}: {finding.expression}"
    used = ""
    if finding.via is not None and finding.via[1] != finding.line:
        used = f"; {finding.via[0]} carries it to line {finding.via[1]}"
    head = (f"{where} sees one partition of {target}, not all of it "
            f"({_WHY[finding.category]}{used})")
    before = (f"compute it before the cell ({finding.hint} = "
              f"{finding.before or finding.expression}) and use that name in the body")
    if finding.category == "groupby":
        keys = ",".join(finding.keys) or "KEYS"
        todo = [f"add --by {keys} so each group is whole in one partition", before]
    else:
        todo = [before]
    if finding.category == "window" and not tuple(by) and any(f".{name}(" in finding.expression
                                            for name in _overlap.BOUNDED):
        todo.append("pass --overlap N if its windows reach at most N rows")
    if finding.in_expression:
        todo.append("combine the partitions' values with --reduce FUNC")
    return (f"{head}; {', or '.join(todo)}, or pass --per-partition if you mean each "
            "partition's own")


def check(body: str, target: str, *, kind: str = "frame", by: Iterable[str] = (),
          reduce: bool = False, overlap: int | None = None) -> tuple[int, int]:
    """Raise a one-line :class:`UsageError` for the body's first cross-row use; return
    the rows of overlap (before, after) each partition needs for the body's windows.

    ``reduce`` (``--reduce`` was given) acknowledges those in the trailing expression:
    the user combines the partitions' values on purpose. ``overlap`` is ``--overlap N``.
    """
    by = tuple(by)
    found, reach = analyse(body, target, kind=kind, by=by, overlap=overlap)
    for finding in _unacknowledged(found, reduce):
        raise UsageError(message(finding, target, by))
    if reduce and any(reach):
        msg = (f"--reduce combines the partitions' values, but the body's windows run each "
               f"partition with {reach[0] + reach[1]} rows of overlap that would count twice; "
               "compute the windows before the cell, or drop --reduce")
        raise UsageError(msg)
    return reach


def _unacknowledged(findings: list[Finding], reduce: bool) -> Iterator[Finding]:
    for finding in sorted(findings, key=lambda f: f.line):
        if not (reduce and finding.in_expression):
            yield finding
