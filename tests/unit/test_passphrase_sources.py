"""The encrypted store's passphrase from a file (CREDD_PASSPHRASE_FILE) or a command
(CREDD_PASSPHRASE_COMMAND): the unattended sources a hosted notebook can use (issue 13)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from credd.errors import SecretStoreLocked, UsageError
from credd.secrets import files as filestore
from credd.secrets.store import SecretStore

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSPHRASE = b"a passphrase for the notebook store"


def make_store() -> Path:
    path = filestore.store_path(filestore.ENCRYPTED)
    filestore.EncryptedFileKeyring(path).create_with(PASSPHRASE)
    return path


def secret_file(tmp_path: Path, mode: int = 0o600, data: bytes = PASSPHRASE + b"\n") -> Path:
    path = tmp_path / "passphrase"
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_a_passphrase_file_unlocks_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store()
    monkeypatch.setenv("CREDD_SECRET_STORE", "encrypted-file")
    monkeypatch.setenv("CREDD_PASSPHRASE_FILE", str(secret_file(tmp_path)))
    store = SecretStore(allow_prompt=False)
    store.set_totp_seed("p", SEED)
    assert SecretStore(allow_prompt=False).get_totp_seed("p") == SEED


def test_a_passphrase_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = secret_file(tmp_path, mode=0o644)
    with pytest.raises(SecretStoreLocked, match="can be read by others") as err:
        filestore.read_file(path)
    assert "chmod 600" in (err.value.hint or "")
    with pytest.raises(SecretStoreLocked, match="cannot read"):
        filestore.read_file(tmp_path / "missing")
    link = tmp_path / "link"
    link.symlink_to(secret_file(tmp_path))
    with pytest.raises(SecretStoreLocked, match="cannot read"):
        filestore.read_file(link)  # O_NOFOLLOW: a link could point anywhere
    with pytest.raises(SecretStoreLocked, match="empty"):
        filestore.read_file(secret_file(tmp_path, data=b"\n"))


def test_a_passphrase_command_unlocks_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store()
    path = secret_file(tmp_path)
    monkeypatch.setenv("CREDD_SECRET_STORE", "encrypted-file")
    monkeypatch.setenv("CREDD_PASSPHRASE_COMMAND", f"cat '{path}'")
    store = SecretStore(allow_prompt=False)
    store.set_totp_seed("p", SEED)
    assert store.get_totp_seed("p") == SEED


def test_a_failing_or_hanging_command_is_a_clear_error() -> None:
    with pytest.raises(SecretStoreLocked, match="exited with status 3: no vault here"):
        filestore.run_command(
            f"{sys.executable} -c \"import sys; sys.stderr.write('no vault here\\\\n'); "
            'sys.exit(3)"'
        )
    with pytest.raises(SecretStoreLocked, match=r"did not finish within 0\.5s"):
        filestore.run_command("sleep 30", timeout=0.5)
    with pytest.raises(SecretStoreLocked, match="cannot run"):
        filestore.run_command("/nonexistent/vault-cli get credd")
    with pytest.raises(UsageError, match="cannot be split"):
        filestore.run_command("cat 'unclosed")


def test_order_of_sources(tmp_path: Path) -> None:
    path = secret_file(tmp_path)
    env = {"CREDD_PASSPHRASE_FILE": str(path), "CREDD_PASSPHRASE_COMMAND": "false"}
    found = filestore.passphrase_source(env)
    assert found is not None and found[0].startswith("CREDD_PASSPHRASE_FILE")
    assert found[1]() == PASSPHRASE
    found = filestore.passphrase_source({"CREDD_PASSPHRASE_COMMAND": "echo hello-there"})
    assert found is not None and found[1]() == b"hello-there"
    r, w = os.pipe()
    os.close(w)
    try:
        found = filestore.passphrase_source({"CREDD_PASSPHRASE_FD": str(r), **env})
        assert found is not None and found[0] == f"file descriptor {r}"
    finally:
        os.close(r)
    assert filestore.passphrase_source({"CREDD_PASSPHRASE_COMMAND": "  "}) is None
    assert filestore.passphrase_source({}) is None


def test_the_locked_store_names_every_source(monkeypatch: pytest.MonkeyPatch) -> None:
    make_store()
    monkeypatch.setenv("CREDD_SECRET_STORE", "encrypted-file")
    with pytest.raises(SecretStoreLocked, match="no passphrase was given") as err:
        SecretStore(allow_prompt=False).check()
    hint = err.value.hint or ""
    assert "CREDD_PASSPHRASE_FILE" in hint and "CREDD_PASSPHRASE_COMMAND" in hint
