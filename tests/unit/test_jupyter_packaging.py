"""`pip install --user 'credd[jupyter]'` is the whole install: the wheel carries the config file
that enables the server extension, and the extension point names the app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "jupyter-config/jupyter_server_config.d/credd.json"


def test_the_wheel_installs_the_file_that_enables_the_extension() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data_files = project["tool"]["setuptools"]["data-files"]
    # pip puts data files under the install prefix: ~/.local/etc/jupyter/... for --user,
    # which jupyter_core puts on the config path (site.getuserbase()/etc/jupyter)
    assert CONFIG in data_files["etc/jupyter/jupyter_server_config.d"]
    enabled = json.loads((ROOT / CONFIG).read_text())
    assert enabled == {"ServerApp": {"jpserver_extensions": {"credd.jupyter": True}}}
    extras = project["project"]["optional-dependencies"]
    assert any(dep.startswith("jupyter_server>=2") for dep in extras["jupyter"])


def test_the_extension_point_is_the_credd_app() -> None:
    from credd.jupyter import _jupyter_server_extension_points
    from credd.jupyter.app import CreddApp

    assert _jupyter_server_extension_points() == [{"module": "credd.jupyter", "app": CreddApp}]
    assert CreddApp.name == "credd"
    config = {name for name, trait in CreddApp.class_traits(config=True).items()}
    assert {"start_daemon", "stop_daemon", "socket", "passphrase_file",
            "passphrase_command"} <= config  # fmt: skip
