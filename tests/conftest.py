"""Shared test set-up.

The level of a test is its folder: ``tests/unit/`` (one process, pure logic and in-process
servers), ``tests/integration/`` (real processes: the daemon, the sandbox, gnome-keyring,
OpenBao, the AWS CLI) and ``tests/sandbox/`` (the sandbox's own tests). Every test under
``integration/``, and any other test that uses a real-process fixture, gets the ``integration``
marker here, so ``make unit`` (``-m "not integration"``) runs without starting any of them.

Every test runs with a scrubbed environment: no ``AWS_*`` or ``CREDD_*`` variables, and
``HOME``/``XDG_*`` pointing into the test's own temp dir, so nothing touches the real AWS files.
Area fixtures live in ``tests/fixtures/<area>.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.keyring",
    "tests.fixtures.files",
    "tests.fixtures.transport",
    "tests.fixtures.daemon",
    "tests.fixtures.vault",
]


#: fixtures that start (or share) a real process
REAL_PROCESSES = frozenset(
    {
        "daemons",
        "sandbox",
        "sandbox_clean",
        "keyring_env",
        "secret_service",
        "openbao",
        "vault_engine",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.parent.name
        if folder == "integration" or REAL_PROCESSES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Scrub AWS/credd variables; give the test a private HOME and XDG dirs."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "CREDD_", "XDG_", "BOTO_")) or name in {
            "HOME",
            "DBUS_SESSION_BUS_ADDRESS",  # never reach the developer's real keyring
            "PYTHON_KEYRING_BACKEND",
        }:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield home
