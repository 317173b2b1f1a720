"""The shape of the code: layers, no cycle, and each decision made in one function.

The layer table is the package's own docstring (``jupyter_par/__init__.py``): the test
reads it, so the documentation and the rule cannot drift apart.
"""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

import jupyter_par as jp

PACKAGE = pathlib.Path(jp.__file__).parent
BACKEND_NAMES = {"processes", "threads", "inline", "dask"}


def _module_name(path: pathlib.Path) -> str:
    parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text()) for name, path in _modules().items()}


def import_graph() -> dict[str, set[str]]:
    """Every jupyter_par module and the jupyter_par modules it imports (lazily or not)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base) \
                    if node.level else (node.module or "")
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    found.add(candidate if candidate in modules else target)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def layer_table() -> dict[str, int]:
    """``{"jupyter_par.run": 4, "jupyter_par.errors": 11, ...}`` from the package docstring."""
    table: dict[str, int] = {}
    for line in (jp.__doc__ or "").splitlines():
        match = re.match(r"\s+layer\s+(\d+)\s+\w+\s+(.*)$", line)
        if not match:
            continue
        number, rest = int(match[1]), match[2]
        for word in rest.split():
            if word.endswith("/"):  # a subpackage; what follows is its description
                table[f"jupyter_par.{word[:-1]}"] = number
                break
            table["jupyter_par" if word == "__init__" else f"jupyter_par.{word}"] = number
    return table


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """The layer of ``module`` or of the subpackage holding it (the package itself is only
    ``jupyter_par/__init__.py``: a new module at the root must join the table)."""
    if module in table:
        return table[module]
    while "." in module.rpartition(".")[0]:
        module = module.rpartition(".")[0]
        if module in table:
            return table[module]
    return None


def upward_imports(graph: dict[str, set[str]], table: dict[str, int]) -> list[str]:
    found = []
    for module, imported in sorted(graph.items()):
        here = layer_of(module, table)
        for other in sorted(imported):
            there = layer_of(other, table)
            if here is not None and there is not None and there < here:
                found.append(f"{module} (layer {here}) imports {other} (layer {there})")
    return found


def _functions_containing(tree: ast.Module, wanted: type[ast.AST],
                          test: object) -> list[tuple[str, int]]:
    """(enclosing function or '<module>', line) of each ``wanted`` node passing ``test``."""
    hits: list[tuple[str, int]] = []

    def walk(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, wanted) and test(child):  # type: ignore[operator]
                hits.append((where, child.lineno))
            is_def = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            walk(child, child.name if is_def else where)

    walk(tree, "<module>")
    return hits


def _calls(name: str):
    def test(node: ast.Call) -> bool:
        func = node.func
        return (isinstance(func, ast.Name) and func.id == name) or \
            (isinstance(func, ast.Attribute) and func.attr == name)
    return test


def _reads(attribute: str):
    return lambda node: node.attr == attribute


def where_used(check, wanted=ast.Call, skip=()) -> set[tuple[str, str]]:
    """{(module, function)} where ``check`` holds, outside the modules in ``skip``."""
    found = set()
    for module, tree in _trees().items():
        if any(module == s or module.startswith(f"{s}.") for s in skip):
            continue
        found |= {(module, func) for func, _ in _functions_containing(tree, wanted, check)}
    return found


# -- the checks ---------------------------------------------------------------------------------
def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert "jupyter_par.run.pipeline" in graph["jupyter_par.api"]
    assert cycles(graph) == []


def test_the_layer_table_covers_every_module():
    table = layer_table()
    assert table["jupyter_par.run"] == 4 and table["jupyter_par.errors"] == 11
    assert [m for m in _modules() if layer_of(m, table) is None] == []


def test_the_upward_import_finder_finds_one():
    table = {"jupyter_par.a": 1, "jupyter_par.b": 2}
    assert upward_imports({"jupyter_par.b": {"jupyter_par.a"}}, table) == [
        "jupyter_par.b (layer 2) imports jupyter_par.a (layer 1)"]
    assert upward_imports({"jupyter_par.a": {"jupyter_par.b"}}, table) == []


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports(import_graph(), layer_table()) == []


def test_the_backend_is_chosen_in_one_function():
    """Nesting, one job and the fallback are decided by choose_backend alone."""
    choice = "jupyter_par.run.backend_choice"
    for flag in ("one_worker_inline", "local_fallback", "nested_backend"):
        assert where_used(_reads(flag), ast.Attribute, skip=["jupyter_par.backends"]) - {
            ("jupyter_par.worker.task", "<module>")} == {(choice, "choose_backend")}, flag
    assert where_used(_calls("in_task"), skip=["jupyter_par.worker"]) == {
        (choice, "choose_backend")}
    # The backend class is looked up by name only there (and in the registry).
    assert where_used(_calls("backend_class"), skip=["jupyter_par.backends"]) == {
        (choice, "choose_backend"), (choice, "cls")}


def test_the_front_end_is_chosen_in_one_function():
    chooser = {("jupyter_par.progress.chooser", "choose_frontend")}
    for helper in ("in_kernel", "driven_by_vscode_or_colab"):
        assert where_used(_calls(helper)) == chooser, helper
    ipywidgets_probe = where_used(
        lambda n: _calls("find_spec")(n) and any(
            isinstance(a, ast.Constant) and a.value == "ipywidgets" for a in n.args))
    assert ipywidgets_probe == chooser
    assert where_used(_calls("choose_frontend")) <= {
        ("jupyter_par.progress.chooser", "sinks_for"),
        ("jupyter_par.widgets.progress_view", "__init__")}


def test_defaults_are_read_only_by_the_options():
    assert where_used(_calls("current_defaults")) <= {
        ("jupyter_par.run.options", "set_defaults"), ("jupyter_par.run.options", "resolve"),
        ("jupyter_par.run.options", "reset_defaults")}


def test_no_module_outside_backends_compares_a_backend_name():
    offenders = []
    for module, tree in _trees().items():
        if module.startswith("jupyter_par.backends"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                constants = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                if BACKEND_NAMES & {c for c in constants if isinstance(c, str)}:
                    offenders.append(f"{module}:{node.lineno}")
    assert offenders == []


def test_hidden_frames_are_defined_once():
    """Only shown_errors decides which frames users do not see."""
    users = where_used(lambda n: n.id == "PACKAGE_DIR" and isinstance(n.ctx, ast.Load),
                       ast.Name)
    assert {m for m, _ in users} == {"jupyter_par.shown_errors"}


def test_the_operation_is_shipped_only_by_the_engine():
    assert where_used(_calls("begin_run"), skip=["jupyter_par.backends"]) == {
        ("jupyter_par.run.engine", "steps")}
    assert where_used(_calls("begin_run")) & {
        ("jupyter_par.backends.processes", "submit"),
        ("jupyter_par.backends.dask", "submit")} == set()


def test_engine_pipeline_and_api_never_import_jupyter_code():
    code = ("import sys, jupyter_par, jupyter_par.run.pipeline, jupyter_par.run.engine, "
            "jupyter_par.planning.builders, jupyter_par.planning.groups\n"
            "print([m for m in ('IPython', 'ipywidgets', 'ipykernel') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
