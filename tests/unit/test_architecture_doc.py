"""docs/architecture.md matches the tree: every package it names exists, every package is named.

The "Packages" table lists each package of ``credd`` (and the ``credd_sandbox`` sibling); the
foundation table lists each top-level module of ``credd``. A package or module added, moved or
removed without its line in the doc fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _first_cells(section: str) -> list[str]:
    """The backticked name in the first cell of each table row."""
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def _packages_in_tree() -> set[str]:
    found = set()
    for top in ("credd", "credd_sandbox"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix()
            if rel.count("/") <= 1:  # credd/<pkg> and credd_sandbox itself
                found.add(rel + "/")
    found.discard("credd/")
    return found


def test_every_package_in_the_tree_is_in_the_doc_and_back() -> None:
    named = set(_first_cells(_section("Packages"))) - {"__init__.py"}
    named = {n for n in named if n.endswith("/")}
    in_tree = _packages_in_tree()
    assert named - in_tree == set(), "named in docs/architecture.md but not in the tree"
    assert in_tree - named == set(), "packages missing from docs/architecture.md's Packages table"


def test_every_top_level_module_is_in_the_doc_and_back() -> None:
    section = _section("Packages")
    named = {n for n in _first_cells(section) if n.endswith(".py")}
    in_tree = {p.name for p in (ROOT / "credd").glob("*.py")}
    assert named - in_tree == set(), "named in docs/architecture.md but not in credd/"
    assert in_tree - named == set(), "top-level modules missing from docs/architecture.md"


def test_the_packages_table_gives_each_package_one_line() -> None:
    rows = [
        line
        for line in _section("Packages").splitlines()
        if line.startswith("| `") and line.split("`")[1].endswith("/")
    ]
    names = [row.split("`")[1] for row in rows]
    assert len(names) == len(set(names))
    for row in rows:
        job = row.split("|")[2].strip()
        assert job, f"no job given for {row.split('`')[1]}"
