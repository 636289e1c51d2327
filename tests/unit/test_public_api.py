"""``credd``'s public API: the names, that each is the real object, that each is documented, and
that ``import credd`` stays as cheap as it was (each name is imported on first use, PEP 562)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import credd

ROOT = Path(__file__).resolve().parents[2]

PUBLIC = [
    "AwsError",
    "Client",
    "ConfigError",
    "CreddError",
    "Credentials",
    "CredentialsFileError",
    "DaemonUnavailable",
    "LifetimeUnavailable",
    "LoginRequired",
    "MfaError",
    "NeedsMfa",
    "NeedsPerson",
    "NotReady",
    "ProfileNotFound",
    "ProfileNotManaged",
    "RequestError",
    "SecretStoreError",
    "VaultError",
    "__version__",
    "aiobotocore_session",
    "boto3_session",
]


def test_all_is_pinned() -> None:
    assert credd.__all__ == PUBLIC  # a change here is a change of the public API: docs + CHANGELOG


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "__version__"])
def test_each_public_name_is_the_object_of_its_module(name: str) -> None:
    import credd.client
    import credd.errors
    import credd.models

    homes = [credd.client, credd.errors, credd.models]
    assert [getattr(credd, name)] == [getattr(m, name) for m in homes if hasattr(m, name)]
    assert name in dir(credd)


def test_every_error_is_a_credd_error_and_unknown_names_are_attribute_errors() -> None:
    classes = [getattr(credd, n) for n in PUBLIC if n[0].isupper()]
    errors = [c for c in classes if issubclass(c, Exception)]
    assert len(errors) == 16 and all(issubclass(e, credd.CreddError) for e in errors)
    assert issubclass(credd.NeedsMfa, credd.NeedsPerson)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        credd.nope  # noqa: B018
    from credd import clock  # a submodule still imports as one

    assert clock.__name__ == "credd.clock"


def test_star_import_gives_the_public_names() -> None:
    space: dict[str, object] = {}
    exec("from credd import *", space)  # noqa: S102
    assert set(PUBLIC) <= set(space)


def test_every_public_name_is_documented() -> None:
    doc = (ROOT / "docs" / "python.md").read_text()
    missing = [name for name in PUBLIC if f"`{name}" not in doc and f"credd.{name}" not in doc]
    assert missing == []


def imported_by(code: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\nbefore = set(sys.modules)\n" + code +
         "\nprint(repr(sorted(set(sys.modules) - before)))\n"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return set(ast.literal_eval(proc.stdout.splitlines()[-1]))


def test_importing_credd_imports_nothing_else() -> None:
    assert imported_by("import credd\nassert credd.__version__") == {"credd"}


def test_the_client_names_cost_what_credd_client_costs() -> None:
    added = imported_by(
        "import credd\ncredd.Client, credd.boto3_session, credd.aiobotocore_session"
    )
    assert added <= {"credd", "credd.client", "_socket"}, added
