"""The layout is the architecture (docs/architecture.md): no import circles, imports only down the layers,
modules of a readable size. Read from the sources (ast): every import that runs counts, function-level ones
too; only imports under `if TYPE_CHECKING:` (never executed) are left out."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "enricher"
MAX_LINES = 410  # "about 400": the guide, with a few lines of slack for a docstring
# Rule tables: long by nature (one row per line shape, classification rule or document field), read row by row.
RULE_TABLES = {"enricher.core.parsing.shapes", "enricher.core.classify.rules", "enricher.core.fields"}
# What each layer may import, besides itself (by package prefix). The shared modules at the top
# (config, errors, telemetry) sit beside the layers.
SHARED = ("enricher.errors", "enricher.telemetry", "enricher.accel")
ALLOWED = {
    "enricher.core": ("enricher.core", "enricher.errors", "enricher.accel"),
    "enricher.edges": ("enricher.edges", "enricher.core", "enricher.config", *SHARED),
    "enricher.service": ("enricher.service", "enricher.edges", "enricher.core", "enricher.config", *SHARED),
    "enricher.accel": ("enricher.accel", "enricher.core", "enricher.errors"),
}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        if "_compiled" in path.parts:
            continue
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = path
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere in its body."""

    def resolve(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for stmt in block.body
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                if t.startswith("enricher"):
                    dep = resolve(t)
                    if dep and dep != name and dep != "enricher":
                        graph[name].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    assert _cycles(_imports(_modules())) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_go_down_the_layers() -> None:
    """The core imports no edge, service or CLI; edges no service or CLI; nothing imports the CLI."""
    wrong = []
    for module, deps in _imports(_modules()).items():
        layer = next((p for p in ALLOWED if module == p or module.startswith(p + ".")), None)
        for dep in deps:
            # Entry points (`python -m …`) are the CLI's too.
            in_cli = module == "enricher.cli" or module.startswith("enricher.cli.") or module.endswith(".__main__")
            if dep == "enricher.cli" or dep.startswith("enricher.cli."):
                if not in_cli:
                    wrong.append(f"{module} -> {dep}")
            elif layer is not None and not any(dep == a or dep.startswith(a + ".") for a in ALLOWED[layer]):
                wrong.append(f"{module} -> {dep}")
    assert wrong == []


def test_modules_stay_readable() -> None:
    """No module over ~400 lines except the rule tables."""
    long = {
        name: n
        for name, path in _modules().items()
        if name not in RULE_TABLES and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
