"""The file secret stores (credd.secrets.files) on real files, through SecretStore."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import keyring.backend
import pytest

from credd.errors import SecretStoreError, SecretStoreLocked, UsageError
from credd.secrets import files as filestore
from credd.secrets.store import SecretStore

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY_ID = "AKIAFILESTORETEST001"
SECRET = "fileStoreSecretKey/0123456789abcdefABCDE"
PASSPHRASE = b"correct horse battery staple"


def make_encrypted(passphrase: bytes = PASSPHRASE) -> Path:
    path = filestore.store_path(filestore.ENCRYPTED)
    filestore.EncryptedFileKeyring(path).create_with(passphrase)
    return path


def credential_dir(tmp_path: Path, passphrase: bytes) -> Path:
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    (creds / filestore.CREDENTIAL_NAME).write_bytes(passphrase + b"\n")
    return creds


def test_default_is_the_keyring_and_unknown_choices_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert filestore.selected() == ("keyring", "default")
    monkeypatch.setenv("CREDD_SECRET_STORE", "sqlite")
    with pytest.raises(UsageError, match="unknown secret store 'sqlite'"):
        filestore.selected()
    with pytest.raises(UsageError):
        SecretStore().check()
    monkeypatch.delenv("CREDD_SECRET_STORE")
    path = filestore.select_store("plaintext-file")
    assert filestore.selected() == ("plaintext-file", str(path))
    monkeypatch.setenv("CREDD_SECRET_STORE", "keyring")  # the variable wins over the record
    assert filestore.selected() == ("keyring", "CREDD_SECRET_STORE")


def test_file_stores_are_never_picked_by_keyring_itself() -> None:
    viable = list(keyring.backend.get_all_keyring())
    assert not any(isinstance(b, filestore.FileKeyring) for b in viable)


def test_encrypted_store_round_trip_through_secret_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_encrypted()
    monkeypatch.setenv("CREDD_SECRET_STORE", "encrypted-file")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credential_dir(tmp_path, PASSPHRASE)))
    store = SecretStore(allow_prompt=False)
    store.check()
    assert store.backend_name() == "credd.secrets.files.EncryptedFileKeyring"
    store.set_long_term_keys("work", KEY_ID, SECRET)
    store.set_totp_seed("work", SEED.lower())
    # another process-like instance sees what this one wrote (the file is reread every call)
    other = SecretStore(allow_prompt=False)
    keys = other.get_long_term_keys("work")
    assert keys is not None and keys.secret_access_key == SECRET
    assert other.get_totp_seed("work") == SEED
    assert other.delete_totp_seed("work") is True
    assert other.delete_totp_seed("work") is False
    assert store.get_totp_seed("work") is None

    raw = path.read_bytes()
    for secret in (SEED, SECRET, KEY_ID, "long-term-keys", "work"):
        assert secret.encode() not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    header = json.loads(raw)
    assert header["cipher"] == "AES-256-GCM" and header["kdf"]["name"] == "scrypt"
    assert SEED not in repr(store) and "passphrase" not in repr(store)


def test_wrong_passphrase_and_altered_file_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_encrypted()
    monkeypatch.setenv("CREDD_SECRET_STORE", "encrypted-file")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credential_dir(tmp_path, b"not it at all")))
    store = SecretStore(allow_prompt=False)
    with pytest.raises(SecretStoreLocked, match="wrong passphrase") as err:
        store.get_totp_seed("work")
    assert err.value.code == "secret_store_locked" and err.value.exit_code == 6
    with pytest.raises(SecretStoreLocked, match="wrong passphrase"):  # remembered, not re-read
        store.check()

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credential_dir(tmp_path, PASSPHRASE)))
    SecretStore(allow_prompt=False).set_totp_seed("work", SEED)
    data = json.loads(path.read_bytes())
    data["kdf"]["r"] = 9  # the header is authenticated too
    path.write_text(json.dumps(data))
    with pytest.raises(SecretStoreLocked, match="altered"):
        SecretStore(allow_prompt=False).check()
    path.write_text("not json")
    with pytest.raises(SecretStoreError, match="not a credd encrypted secret store"):
        SecretStore(allow_prompt=False).check()


def test_missing_store_and_missing_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDD_SECRET_STORE", "encrypted-file")
    with pytest.raises(SecretStoreError, match="does not exist") as err:
        SecretStore(allow_prompt=False).check()
    assert "credd store init encrypted-file" in (err.value.hint or "")
    make_encrypted()
    with pytest.raises(SecretStoreLocked, match="no passphrase was given") as locked:
        SecretStore(allow_prompt=True).check()  # stdin is not a terminal under pytest
    assert "--passphrase-fd" in (locked.value.hint or "")


def test_passphrase_from_a_file_descriptor_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    make_encrypted()
    r, w = os.pipe()
    os.write(w, PASSPHRASE + b"\n")
    os.close(w)
    monkeypatch.setenv("CREDD_SECRET_STORE", "encrypted-file")
    monkeypatch.setenv("CREDD_PASSPHRASE_FD", str(r))
    store = SecretStore(allow_prompt=False)
    store.set_totp_seed("p", SEED)
    assert store.get_totp_seed("p") == SEED
    assert "CREDD_PASSPHRASE_FD" not in os.environ  # children do not try the descriptor
    with pytest.raises(OSError):
        os.fstat(r)  # closed after reading


def test_a_descriptor_that_never_ends_is_an_error_not_a_hang() -> None:
    r, w = os.pipe()
    try:
        os.write(w, b"partial")
        with pytest.raises(SecretStoreLocked, match="no end of file"):
            filestore.read_fd(r, timeout=0.2)
    finally:
        os.close(w)
    with pytest.raises(UsageError, match="not a file descriptor"):
        filestore.passphrase_source({"CREDD_PASSPHRASE_FD": "three"})


def test_plaintext_store_warns_and_is_private(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = filestore.store_path(filestore.PLAINTEXT)
    filestore.PlaintextFileKeyring(path).create()
    monkeypatch.setenv("CREDD_SECRET_STORE", "plaintext-file")
    with caplog.at_level(logging.WARNING, logger="credd.secrets.files"):
        store = SecretStore()
        store.set_long_term_keys("w", KEY_ID, SECRET)
    assert "UNENCRYPTED" in caplog.text and str(path) in caplog.text
    assert SECRET not in caplog.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)  # loosened by someone: tightened again on the next read
    keys = SecretStore().get_long_term_keys("w")
    assert keys is not None and keys.access_key_id == KEY_ID
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(UsageError, match="already exists"):
        filestore.PlaintextFileKeyring(path).create()


def test_concurrent_writers_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_encrypted()
    monkeypatch.setenv("CREDD_SECRET_STORE", "encrypted-file")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credential_dir(tmp_path, PASSPHRASE)))
    stores = [SecretStore(allow_prompt=False) for _ in range(4)]
    for s in stores:
        s.check()
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(5):
                stores[i].set_session(f"s{i}-{j}", {"n": j})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        for j in range(5):
            assert stores[0].get_session(f"s{i}-{j}") == {"n": j}
    leftovers = [p.name for p in filestore.data_dir().iterdir() if p.name.startswith(".")]
    assert leftovers == []
