"""The committed build of the JupyterLab front end (credd/jupyter/labextension) matches its
sources, is what the wheel installs where JupyterLab looks, and never opens a window itself."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "credd" / "jupyter" / "labextension"
SOURCES = ROOT / "jupyter" / "labextension"


def _stamp_module() -> object:
    spec = importlib.util.spec_from_file_location(
        "labext_stamp", ROOT / "scripts" / "labext_stamp.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("labext_stamp", module)
    spec.loader.exec_module(module)
    return module


def test_the_committed_build_is_of_the_current_sources() -> None:
    stamp = _stamp_module().stamp  # type: ignore[attr-defined]
    recorded = (BUILT / "source.sha256").read_text().strip()
    assert stamp() == recorded, (
        "jupyter/labextension changed since the committed build: run `make labextension` "
        "and commit credd/jupyter/labextension"
    )


def test_the_build_is_complete_and_installed_where_jupyterlab_looks() -> None:
    meta = json.loads((BUILT / "package.json").read_text())
    assert meta["name"] == "credd-jupyterlab"
    assert (BUILT / meta["jupyterlab"]["_build"]["load"]).is_file()
    assert json.loads((BUILT / "install.json").read_text())["packageName"] == "credd"
    pyproject = (ROOT / "pyproject.toml").read_text()
    target = "share/jupyter/labextensions/credd-jupyterlab"
    assert f'"{target}/static" = ["credd/jupyter/labextension/static/*"]' in pyproject
    for name in ("package.json", "install.json"):
        assert f'"credd/jupyter/labextension/{name}"' in pyproject


def test_the_front_end_opens_no_window_and_calls_only_the_server_extension() -> None:
    code = {p.name: p.read_text() for p in (SOURCES / "src").glob("*.ts")}
    built = "\n".join(p.read_text() for p in (BUILT / "static").glob("*.js"))
    for text in [*code.values(), built]:
        assert "window.open" not in text and "location.assign" not in text
    # every request goes through ServerConnection (the server's token and XSRF) to /credd/api
    assert not [name for name, text in code.items() if re.search(r"\bfetch\(", text)]
    assert "URLExt.join(settings.baseUrl, 'credd', 'api', path)" in code["api.ts"]


@pytest.mark.integration
def test_a_user_install_puts_the_front_end_where_jupyterlab_finds_it(tmp_path: Path) -> None:
    """The wheel's data files laid out as ``pip install --user`` does (under ~/.local): the
    real ``jupyter labextension list`` of a fresh home finds the front end, enabled and OK."""
    import glob
    import os
    import shutil
    import subprocess

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    home = tmp_path / "home"
    for dest, patterns in project["tool"]["setuptools"]["data-files"].items():
        target = home / ".local" / dest
        target.mkdir(parents=True, exist_ok=True)
        for pattern in patterns:
            for found in glob.glob(str(ROOT / pattern)):
                shutil.copy(found, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "XDG_"))}
    env.update(HOME=str(home), PYTHONUSERBASE=str(home / ".local"))
    jupyter = Path(sys.executable).parent / "jupyter"
    done = subprocess.run(
        [str(jupyter), "labextension", "list"], env=env, capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )  # fmt: skip
    listing = done.stdout + done.stderr
    assert done.returncode == 0, listing
    where = str(home / ".local" / "share" / "jupyter" / "labextensions")
    assert where in listing, listing
    line = next(s for s in listing.splitlines() if "credd-jupyterlab" in s)
    assert "v0.1.0" in line and "enabled" in line and "OK" in line and "(python, credd)" in line
