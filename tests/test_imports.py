"""The package's modules import each other in one direction only: no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_schemaguard

PACKAGE = Path(pytest_schemaguard.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Modules of the package that ``path`` imports, at any depth of the file (imports inside
    functions count too: a lazy import still makes a circle of responsibilities)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] == "pytest_schemaguard"}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path, name) if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_in_the_package() -> None:
    graph = _graph()
    assert "pytest_schemaguard.plugin" in graph
    assert _cycles(graph) == []


def test_arrows_point_one_way_plugin_families_framework_core() -> None:
    graph = _graph()
    families = {
        "pytest_schemaguard.migrations.items",
        "pytest_schemaguard.parity.items",
        "pytest_schemaguard.legacy.items",
    }
    assert families <= set(graph)
    reach: dict[str, set[str]] = {}

    def reachable(module: str) -> set[str]:
        if module not in reach:
            reach[module] = set()
            for target in graph[module]:
                reach[module] |= {target, *reachable(target)}
        return reach[module]

    assert not reachable("pytest_schemaguard.framework") & {
        *families,
        "pytest_schemaguard.plugin",
    }
    for family in families:
        assert "pytest_schemaguard.plugin" not in reachable(family), family
    assert families <= reachable("pytest_schemaguard.plugin")


def test_pytest_loads_only_the_plugin_module() -> None:
    from pytest_schemaguard.config import read_toml

    pyproject = read_toml(PACKAGE.parent / "pyproject.toml")
    entry_points = pyproject["project"]["entry-points"]["pytest11"]
    assert entry_points == {"schemaguard": "pytest_schemaguard.plugin"}
