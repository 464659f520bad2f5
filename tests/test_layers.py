"""The import structure: no circles, and imports only point down the layers.

Layers, bottom to top (a module may import its own layer and the ones below):
foundation (errors, config, storage, scoring primitives, metric names) -> data ->
validate -> agent -> rl -> eval -> registry -> serve -> stages -> pipeline -> cli.

Every import counts, also the ones inside functions (they run too); imports under
`if TYPE_CHECKING:` do not.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("miva", "miva.errors", "miva.config", "miva.storage", "miva.scoring", "miva.metric_names"),
    ("miva.data",),
    ("miva.validate",),
    ("miva.agent",),
    ("miva.rl",),
    ("miva.eval",),
    ("miva.registry",),
    ("miva.serve",),
    ("miva.stages",),
    ("miva.pipeline",),
    ("miva.cli",),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    skip: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(ast.walk(node))
    return skip


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name imported from a package resolves to
    its submodule when there is one)."""
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            if node in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` uses the submodule; `from mod import name` uses mod.
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
                ]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                while parts and ".".join(parts) not in known:
                    parts.pop()
                resolved = ".".join(parts)
                if parts and resolved != name:
                    graph[name].add(resolved)  # the longest project module the name is in
    return graph


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            hit = module == prefix or module.startswith(prefix + ".")
            if hit and len(prefix) > best_len and not (prefix == "miva" and module != "miva"):
                best, best_len = index, len(prefix)
    return best


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.append(w)
                if w == v:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer_of(m) < 0] == []


def test_no_import_circles():
    graph = import_graph()
    assert circles(graph) == [], "modules that import each other in a loop"


def test_imports_point_down_the_layers():
    graph = import_graph()
    upward = sorted(
        f"{source} (layer {LAYERS[layer_of(source)][0]}) imports {target} "
        f"(layer {LAYERS[layer_of(target)][0]})"
        for source, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(source)
    )
    assert upward == []


def test_the_checker_finds_a_circle_and_an_upward_import():
    graph = {"miva.data.a": {"miva.data.b"}, "miva.data.b": {"miva.data.a", "miva.rl.x"}}
    assert circles(graph) == [["miva.data.a", "miva.data.b"]]
    assert layer_of("miva.rl.x") > layer_of("miva.data.b")
    assert layer_of("miva.scoring.text") == layer_of("miva.config") == 0
