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
from collections.abc import Iterable, Iterator
from dataclasses import replace

from ..errors import UsageError
from . import overlap as _overlap
from .cross_row_words import CROSS_ROW_METHODS, WHY, shown
from .expressions import NONE, Expressions, Finding, Val

__all__ = ["CROSS_ROW_METHODS", "Finding", "analyse", "check", "cross_row_uses", "message"]


class Analysis(Expressions):
    """Walk the body's statements in order, collecting the cross-row uses that matter."""

    # -- statements ------------------------------------------------------------------
    def _rooted_at_target(self, node: ast.AST) -> bool:
        while isinstance(node, ast.Subscript | ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id == self.target \
            and node.id not in self.shadowed

    def _bind(self, target: ast.AST, value: Val, found: list[Finding]) -> None:
        """An assignment's target: TARGET is written (refuse), a local is followed."""
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._bind(element, NONE if value.role == "part" else value, found)
            return
        if isinstance(target, ast.Starred):
            self._bind(target.value, NONE, found)
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

    def _collect_target(self, target: ast.AST) -> tuple[Val, list[Finding]]:
        """The keys and receivers of an assignment target (``df.loc[mask, "y"]``)."""
        saved, self.found = self.found, []
        node = target
        while isinstance(node, ast.Subscript | ast.Attribute):
            if isinstance(node, ast.Subscript):
                self._value(node.slice)
            node = node.value
        found, self.found = self.found, saved
        return NONE, found

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
            self._bind(node.target, NONE, found)
            for item in [*node.body, *node.orelse]:
                self._statement(item)
        elif shown(node):
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
        trailing = statements.pop() if isinstance(last, ast.Expr) and not shown(last) \
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
    analysis = Analysis(source, target, kind, tuple(by), overlap)
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
            f"({WHY[finding.category]}{used})")
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
