#!/usr/bin/env python3
"""The fingerprint of the JupyterLab extension's sources (jupyter/labextension), written next to
the committed build as credd/jupyter/labextension/source.sha256 by `make labextension`.
tests/test_jupyterlab_assets.py recomputes it, so a change to the TypeScript or CSS without a
rebuild fails the tests instead of shipping stale assets."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "jupyter" / "labextension"
FILES = ("package.json", "package-lock.json", "tsconfig.json", "install.json")
DIRS = ("src", "style")


def source_files(base: Path = SOURCES) -> list[Path]:
    found = [base / name for name in FILES]
    for folder in DIRS:
        found += [p for p in (base / folder).rglob("*") if p.is_file()]
    return sorted(found)


def stamp(base: Path = SOURCES) -> str:
    digest = hashlib.sha256()
    for path in source_files(base):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


if __name__ == "__main__":
    sys.stdout.write(stamp() + "\n")
