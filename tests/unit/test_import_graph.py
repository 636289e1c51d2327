"""No import cycles in ``credd`` or ``credd_sandbox`` (issue 10).

The graph is built from the source (AST), not by importing: one edge per module-level import of
another module of the two packages, including imports inside module-level ``try``/``if`` blocks,
excluding ``if TYPE_CHECKING:`` blocks (never run) and imports inside functions (run late, on
purpose, to keep start-up cheap). ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module, else to ``pkg``. Importing a submodule also runs its packages' ``__init__``: that is an
edge too, except from a module inside that package (a package's ``__init__`` may import its own
submodules; they are then already on their way in)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("credd", "credd_sandbox")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def is_type_checking(test: ast.expr) -> bool:
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
    return name == "TYPE_CHECKING"


def top_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: the body, and inside module-level blocks."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            if not is_type_checking(node.test):
                found += top_level_imports(node.body)
            found += top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                found += top_level_imports(block)
            for handler in node.handlers:
                found += top_level_imports(handler.body)
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            found += top_level_imports(node.body)
    return found


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def packages_of(module: str) -> list[str]:
    """``credd.server.endpoint`` -> ``["credd", "credd.server"]``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in top_level_imports(tree.body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = resolve(name, node, path.name == "__init__.py")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in mods else base)
            for target in (t for t in targets if t in mods):
                edges[name] |= {p for p in packages_of(target) if not inside(name, p)}
                edges[name] |= {target} - {name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or ``None`` (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(edges):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(edges[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(edges[nxt])))
    return None


def test_the_module_import_graph_is_acyclic() -> None:
    edges = graph()
    assert len(edges) > 50 and "credd.clock" in edges["credd.models"]  # the graph was really read
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle_and_names_it() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_type_checking_and_function_imports_are_not_edges() -> None:
    tree = ast.parse(
        "import os\nif TYPE_CHECKING:\n    import credd.sdk\n"
        "try:\n    import credd.errors\nexcept ImportError:\n    pass\n"
        "def f():\n    import credd.manager\n"
    )
    names = [a.name for node in top_level_imports(tree.body) for a in node.names]
    assert names == ["os", "credd.errors"]
