"""The shape of the `ccnn` package (docs/design.md): imports point one way, modules stay small, and the
CLI only parses arguments and calls the library."""
import ast
import importlib
from pathlib import Path

import ccnn

PACKAGE = Path(ccnn.__file__).resolve().parent
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """{dotted name: file} of every module of the ccnn package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, package: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The ccnn modules an import statement in `module` loads, wherever it stands (lazy imports in
    functions count too). `from pkg import name` counts as the module that defines `name`."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source not in MODULES:
        return []
    targets = []
    for alias in node.names:
        if f"{source}.{alias.name}" in MODULES:
            targets.append(f"{source}.{alias.name}")
            continue
        defined_in = getattr(getattr(importlib.import_module(source), alias.name, None), "__module__", None)
        targets.append(defined_in if defined_in in MODULES else source)
    return targets


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """The ccnn modules that the code `source` of `module` imports."""
    package = module if is_package else module.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            edges.update(_resolve(module, package, node))
    return edges - {module}


def import_graph() -> dict[str, set[str]]:
    return {name: imports_of(path.read_text(), name, path.name == "__init__.py")
            for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_are_seen_in_functions_relative_and_through_lazy_packages():
    source = """
import ccnn.metrics
from . import report
from .data import load_dataset          # ccnn.data re-exports it lazily from ccnn.data.loaders
def f():
    from ..model import CCNN           # from ccnn.data.x: two levels up
"""
    assert imports_of(source, "ccnn.data.x") == {"ccnn.metrics", "ccnn.data", "ccnn.model"}
    assert imports_of(source, "ccnn.experiment") >= {"ccnn.report", "ccnn.data.loaders"}


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers_point_one_way():
    """(python -m ccnn ->) CLI -> experiments/demo -> trainer/predict -> model, losses, data ->
    ccnn_ext: no module imports one of a higher layer."""
    layers = [{"ccnn.__main__"}, {"ccnn.cli"}, {"ccnn.benchmark"}, {"ccnn.demo", "ccnn.seeds"}, {"ccnn.experiment"}, {"ccnn.trainer", "ccnn.predict"}]
    graph = import_graph()
    for i, layer in enumerate(layers):
        higher = set().union(*layers[:i])
        for module in layer:
            assert not graph[module] & higher, f"{module} imports {graph[module] & higher}"
    upper = set().union(*layers)
    for module in set(MODULES) - upper:
        assert not graph[module] & upper, f"{module} imports {graph[module] & upper}"


def test_modules_stay_small_or_say_why():
    for name, path in MODULES.items():
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert lines <= MAX_LINES or f"over {MAX_LINES} lines" in doc.lower(), \
            f"{name}: {lines} lines and no reason at its top"


def test_cli_commands_only_parse_and_call():
    """Every cmd_* of the CLI is short and straight-line (calls, assignments and prints): a loop
    or a long body is work that belongs in the library."""
    tree = ast.parse(MODULES["ccnn.cli"].read_text())
    commands = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("cmd_")]
    names = ("synth", "preprocess", "cache", "train", "eval", "predict", "compare", "demo", "benchmark")
    assert {f.name for f in commands} == {f"cmd_{c}" for c in names}
    for f in commands:
        assert f.end_lineno - f.lineno < 20, f"{f.name} is {f.end_lineno - f.lineno + 1} lines"
        assert not [n for n in ast.walk(f) if isinstance(n, (ast.For, ast.While))], f"{f.name} loops"
