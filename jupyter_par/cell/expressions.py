"""What each expression of a ``%%parallel`` body is, as far as TARGET's rows go.

The expression half of the cross-row check (:mod:`.meaning` walks the statements):
it follows TARGET, its columns and row-local selections, and notes each use of an
operation that needs other rows (a :class:`Finding`), with the overlap a bounded
window would need.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from . import overlap as _overlap
from .cross_row_words import (
    ACCESSORS,
    AXIS_FIRST,
    CROSS_ROW_ATTRIBUTES,
    CROSS_ROW_FUNCTIONS,
    CROSS_ROW_METHODS,
    GETS_PART,
    INDEXERS,
    LIST_ONLY,
    NOT_ROWS,
    POSITIONAL,
    SERIES_META,
    SIZED,
)


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
class Val:
    """What an expression is, as far as rows of TARGET go.

    ``role``: ``"part"`` rows of the partition (row-aligned), ``"accessor"`` its
    ``.str``/``.dt`` accessor, ``"indexer"`` ``.loc``/``.iloc``, ``"groups"`` a groupby
    whose groups are whole, ``"holds"`` a literal list/tuple holding parts, ``None``
    anything else. ``kind``: ``"frame"``, ``"series"``, ``"items"`` or ``"any"``.
    """

    role: str | None = None
    kind: str = "any"
    indexer: str = ""


NONE = Val()


def constant(node: ast.AST | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def full_slice(node: ast.AST) -> bool:
    return isinstance(node, ast.Slice) and node.lower is None and node.upper is None \
        and node.step is None


def selected(kind: str, key: ast.AST) -> str:
    """What ``frame[key]`` is: a column, rows or columns (a frame), or either."""
    if kind != "frame":
        return kind
    if isinstance(constant(key), str):
        return "series"
    masks = ast.List | ast.Compare | ast.BoolOp | ast.UnaryOp | ast.BinOp
    return "frame" if isinstance(key, masks) else "any"


def keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)



class Expressions:
    """The state of one walk over a body, and the evaluation of its expressions
    (:class:`jupyter_par.cell.meaning.Analysis` adds the statements)."""

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
        elif isinstance(receiver, ast.Subscript) and isinstance(constant(receiver.slice), str):
            column = constant(receiver.slice)
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

    def _collect(self, node: ast.AST | None) -> tuple[Val, list[Finding]]:
        """Evaluate one expression; return its value and the cross-row uses in it."""
        saved, self.found = self.found, []
        try:
            value = self._value(node) if node is not None else NONE
            return value, self.found
        finally:
            self.found = saved + self.found

    # -- expressions -----------------------------------------------------------------
    def _value(self, node: ast.AST) -> Val:
        if isinstance(node, ast.Name):
            if node.id in self.shadowed:
                return NONE
            if node.id == self.target:
                return Val("part", self.kind)
            if node.id in self.parts:
                return Val("part", self.parts[node.id])
            if node.id in self.tainted:
                self.found.append(replace(self.tainted[node.id], via=(node.id, node.lineno)))
            return NONE
        if isinstance(node, ast.Attribute):
            return self._attribute(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Lambda):
            self._in_function(node.args, [node.body])
            return NONE
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            return self._comprehension(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            values = [self._value(e) for e in node.elts]
            return Val("holds") if any(v.role in ("part", "holds") for v in values) else NONE
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
                return Val("part", part.kind)
        return NONE

    def _attribute(self, node: ast.Attribute) -> Val:
        base = self._value(node.value)
        if base.role in ("groups", "window"):
            return base
        if base.role == "accessor":
            return Val("part", "series")
        if base.role != "part":
            return NONE
        attr = node.attr
        if attr in CROSS_ROW_ATTRIBUTES and not (self.sizing and attr in ("shape", "size")):
            self._find(node, CROSS_ROW_ATTRIBUTES[attr], node.value, attr)
            return NONE
        if attr in NOT_ROWS or (base.kind != "frame" and attr in SERIES_META):
            return NONE
        if attr in ACCESSORS:
            return Val("accessor", "series")
        if attr in INDEXERS:
            return Val("indexer", base.kind, attr)
        if attr in POSITIONAL:
            return Val("part", "items")  # df.index[0] is the partition's first label
        return Val("part", "series" if base.kind == "frame" else base.kind)

    def _subscript(self, node: ast.Subscript) -> Val:
        key = node.slice
        if isinstance(node.value, ast.Attribute) and node.value.attr == "shape" and \
                constant(key) == 1:
            self._value(node.value.value)  # df.shape[1]: the columns, the same everywhere
            return NONE
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
            if base.indexer in ("iloc", "iat") and not full_slice(rows):
                self._find(node, "positional", None, "rows")
                return NONE
            return Val("part", base.kind if columns is None else selected(base.kind, columns))
        if base.role != "part":
            return NONE
        if isinstance(key, ast.Slice) or (base.kind == "items" and isinstance(
                constant(key), int)):
            self._find(node, "positional", None, "rows")
            return NONE
        return Val("part", selected(base.kind, key))

    def _call(self, node: ast.Call) -> Val:
        func = node.func
        if isinstance(func, ast.Attribute):
            base = self._value(func.value)
            gets_part = base.role == "part" and func.attr in GETS_PART
            args = self._sized_arguments(node, func.attr, base.kind if gets_part else None)
            if base.role == "part":
                return self._method(node, func, base, args)
            if base.role == "accessor":
                if func.attr == "cat" and not node.args and keyword(node, "others") is None:
                    self._find(node, "reduction", func.value.value if isinstance(
                        func.value, ast.Attribute) else None, "joined")
                    return NONE
                return Val("part", "series")
            if base.role == "groups":
                return base
            if base.role == "window":  # df.b.rolling(3).mean(): one value per row
                return Val("part", base.kind)
            return self._function(node, func.attr, args)
        self._value(func)
        name = func.id if isinstance(func, ast.Name) else ""
        args = self._sized_arguments(node, name)
        if isinstance(func, ast.Name) and func.id in self.shadowed | set(self.parts):
            name = ""
        return self._function(node, name, args)

    def _sized_arguments(self, node: ast.Call, name: str,
                         part_kind: str | None = None) -> list[Val]:
        saved, self.sizing = self.sizing, name in SIZED or (self.sizing and name == "len")
        try:
            return self._arguments(node, part_kind)
        finally:
            self.sizing = saved

    def _arguments(self, node: ast.Call, part_kind: str | None = None) -> list[Val]:
        """The arguments' values; with ``part_kind``, a lambda among them gets the
        partition itself (``df.assign(z=lambda d: d.x - d.x.mean())``)."""
        return [self._lambda(a, part_kind) if part_kind and isinstance(a, ast.Lambda)
                else self._value(a) for a in [*node.args, *(k.value for k in node.keywords)]]

    def _lambda(self, node: ast.Lambda, part_kind: str) -> Val:
        self._in_function(node.args, [node.body], part_kind)
        return NONE

    def _function(self, node: ast.Call, name: str, args: list[Val]) -> Val:
        """``len(df)``, ``np.mean(df.x)``: cross-row when given rows of TARGET."""
        parts = [i for i, a in enumerate(args[:len(node.args)]) if a.role == "part"]
        if not parts and not any(a.role in ("part", "holds") for a in args):
            return NONE
        if self.sizing and name == "len":
            return NONE  # np.zeros(len(df)): one value per row
        if parts and not self._along_row(node, name, functions=True):
            for category, names in CROSS_ROW_FUNCTIONS.items():
                if name in names:
                    self._find(node, category, node.args[parts[0]], name)
                    return NONE
            bins = node.args[1] if len(node.args) > 1 else keyword(node, "bins")
            if name == "cut" and (bins is None or isinstance(constant(bins), int)):
                self._find(node, "reduction", node.args[parts[0]], "bins")
                return NONE
        return Val("part")  # np.log(df.x), pd.to_datetime(df.x), clean(df): row by row

    def _along_row(self, node: ast.Call, name: str, functions: bool = False) -> bool:
        """Whether ``axis=1``/``"columns"`` makes the call work within each row."""
        axis = keyword(node, "axis")
        if axis is None and not functions:
            if name in AXIS_FIRST and node.args:
                axis = node.args[0]
            elif name == "apply" and len(node.args) > 1:
                axis = node.args[1]
        return constant(axis) in (1, "columns")

    def _method(self, node: ast.Call, func: ast.Attribute, base: Val,
                args: list[Val]) -> Val:
        name, receiver = func.attr, func.value
        inplace = keyword(node, "inplace")
        if isinstance(inplace, ast.Constant) and inplace.value and self._rooted_at_target(
                receiver):
            self.rows_changed = True
        if name == "groupby":
            keys = self._group_keys(node)
            if self.by and keys is not None and self.by <= set(keys):
                return Val("groups", base.kind)
            self._find(node, "groupby", receiver, "grouped", tuple(keys or ()))
            return NONE
        if self._along_row(node, name):
            return Val("part", "any")
        if name in ("shift", "tshift") and keyword(node, "freq") is not None:
            return Val("part", base.kind)  # moves the index, not the values
        if name == "astype" and "category" in map(constant, [*node.args, *(
                k.value for k in node.keywords)]):
            self._find(node, "dedup", receiver, "categories")
            return NONE
        if name == "fillna" and constant(keyword(node, "method")) is not None:
            self._find(node, "window", receiver, "filled")
            return NONE
        if name in ("apply", "aggregate", "agg", "transform") and node.args:
            named = constant(node.args[0])
            for category, names in CROSS_ROW_METHODS.items():
                if isinstance(named, str) and named in names:
                    self._find(node, category, receiver, named)
                    return NONE
            if name == "apply" and base.kind == "frame":
                self._find(node, "columns", receiver, "applied")
                return NONE
        if name in ("isin", "map") and args and args[0].role in ("part", "holds"):
            self._find(node, "lookup", receiver, name)
            return NONE
        if name == "dot" and base.kind == "frame":
            return Val("part", "any")  # df[["a", "b"]].dot(weights): one value per row
        if name in LIST_ONLY and base.kind in ("frame", "series"):
            return Val("part", base.kind)  # df.pop("x") takes a column, not a row
        if name in ("query", "eval") and node.args and isinstance(constant(node.args[0]), str):
            self._query(node, constant(node.args[0]))
        if name in _overlap.BOUNDED and not self.by and self._bounded(node, name, receiver):
            return Val("window" if name == "rolling" else "part", base.kind)
        for category, names in CROSS_ROW_METHODS.items():
            if name in names:
                self._find(node, category, receiver, name)
                return NONE
        if name in ("apply", "agg", "aggregate", "transform", "pipe"):
            return Val("part", "any")
        if name in POSITIONAL:
            return Val("part", "items")
        return Val("part", "frame" if name == "to_frame" else base.kind)

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
        inner = Expressions(text, self.target, "series", tuple(self.by))
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
        key = node.args[0] if node.args else (keyword(node, "by") or keyword(node, "level"))
        items = key.elts if isinstance(key, ast.List | ast.Tuple) else [key]
        names = []
        for item in items:
            if isinstance(constant(item), str):
                names.append(constant(item))
            elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) \
                    and item.value.id == self.target:
                names.append(item.attr)
            elif isinstance(item, ast.Subscript) and isinstance(item.value, ast.Name) \
                    and item.value.id == self.target and isinstance(constant(item.slice), str):
                names.append(constant(item.slice))
            else:
                return None
        return names

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp |
                       ast.DictComp) -> Val:
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
        return Val("part", "items") if over_rows else NONE

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

