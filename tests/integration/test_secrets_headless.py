"""Headless: no D-Bus session at all. A clear error first; then the encrypted file store (and
the plain-text opt-in) end to end with the real daemon, the real CLI and the sandbox."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from credd.client import Client
from credd.errors import CreddError
from credd.secrets import files as filestore
from tests.fixtures.daemon import Daemon, DaemonFactory, remember

pytestmark = pytest.mark.integration

PASSPHRASE = "a long headless passphrase"
WRONG = "the wrong one entirely"
NOWHERE = {
    "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/credd-test-bus",
    "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
}


def credd(
    env: dict[str, str],
    *args: str,
    stdin: str | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """The real CLI (``credd ...``) in a subprocess; never waits on a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "credd.cli", *args],
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        pass_fds=pass_fds,
    )


def passphrase_fd(text: str = PASSPHRASE) -> int:
    remember(text)
    r, w = os.pipe()
    os.write(w, text.encode() + b"\n")
    os.close(w)
    return r


class FdDaemon(Daemon):
    """The fixture's daemon, started with an inherited descriptor holding the passphrase."""

    def __init__(self, base: Daemon, fd: int) -> None:
        super().__init__(base.home, base.env, base.log, base.args)
        self.fd = fd

    def start(self) -> FdDaemon:
        out = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self._out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "credd.cli", "daemon", "--log-level", "DEBUG"],
            env={**self.env, "CREDD_PASSPHRASE_FD": str(self.fd)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(self.fd,),
        )
        os.close(self.fd)
        client = Client(self.socket, timeout=2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                client.status()
                return self
            except CreddError:
                time.sleep(0.05)
        raise AssertionError("daemon did not come up")


def totp_profile(daemons: DaemonFactory, name: str) -> tuple[str, str, str]:
    """A sandbox IAM user with an MFA device; returns (key id, secret, seed); config written."""
    user, device = daemons.sandbox.new_user_with_mfa(name)
    remember(user.secret_access_key, device.seed)
    daemons.write_config(
        f"[profile {name}]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"mfa_serial = {device.serial}\n"
    )
    return user.access_key_id, user.secret_access_key, device.seed


def store_secrets(env: dict[str, str], name: str, key: str, secret: str, seed: str) -> None:
    fd = passphrase_fd()
    done = credd(
        {**env, "CREDD_PASSPHRASE_FD": str(fd)},
        "keys", "set", name, "--stdin", stdin=f"{key}\n{secret}\n", pass_fds=(fd,),
    )  # fmt: skip
    os.close(fd)
    assert done.returncode == 0, done.stderr
    assert "EncryptedFileKeyring" in done.stdout or "PlaintextFileKeyring" in done.stdout
    fd = passphrase_fd()
    done = credd(
        {**env, "CREDD_PASSPHRASE_FD": str(fd)},
        "totp", "set", name, "--stdin", stdin=seed + "\n", pass_fds=(fd,),
    )  # fmt: skip
    os.close(fd)
    assert done.returncode == 0, done.stderr


def test_headless_clear_error_then_encrypted_store_end_to_end(
    daemons: DaemonFactory, tmp_path: Path
) -> None:
    env = daemons.env(**NOWHERE)
    # 1. no Secret Service: a fast, clear error that names the documented choice
    done = credd(env, "secrets", "check")
    assert done.returncode == 6, done.stderr
    assert "Secret Service" in done.stderr or "D-Bus" in done.stderr
    assert "credd store init encrypted-file" in done.stderr
    assert not filestore.store_path(filestore.ENCRYPTED).exists()  # nothing chosen for us

    # 2. the person chooses the encrypted file store; the passphrase comes on a descriptor
    fd = passphrase_fd()
    done = credd(env, "store", "init", "encrypted-file", "--passphrase-fd", str(fd),
                 pass_fds=(fd,))  # fmt: skip
    os.close(fd)
    assert done.returncode == 0, done.stderr
    path = filestore.store_path(filestore.ENCRYPTED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    key, secret, seed = totp_profile(daemons, "headless")
    store_secrets(env, "headless", key, secret, seed)
    raw = path.read_bytes()
    for plain in (seed, secret, key):
        assert plain.encode() not in raw, "a secret is readable in the encrypted store"

    # 3. the daemon, passphrase from a systemd credential, serves the TOTP profile
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "credd-passphrase").write_text(PASSPHRASE + "\n")
    d = daemons.start(**NOWHERE, CREDENTIALS_DIRECTORY=str(creds))
    p = d.wait_state("headless", "fresh")
    assert p["mfa_source"] == "totp"
    assert d.get("headless")["AccessKeyId"].startswith("ASIA")
    assert "encrypted secret store" in d.log.read_text() and "unlocked" in d.log.read_text()
    d.stop()

    # 4. the same with --passphrase-fd (CREDD_PASSPHRASE_FD) instead; another user, so that
    #    no MFA code is reused (the sandbox, like AWS, refuses a code twice)
    key, secret, seed = totp_profile(daemons, "headless")
    store_secrets(env, "headless", key, secret, seed)
    fd_daemon = FdDaemon(Daemon(d.home, daemons.env(**NOWHERE), d.log, ()), passphrase_fd())
    daemons.daemons.append(fd_daemon)
    fd_daemon.start()
    assert fd_daemon.wait_state("headless", "fresh")["mfa_source"] == "totp"
    fd_daemon.stop()


def test_wrong_or_missing_passphrase_is_a_clear_error_never_a_hang(
    daemons: DaemonFactory, tmp_path: Path
) -> None:
    env = daemons.env(**NOWHERE, CREDD_SECRET_STORE="encrypted-file")
    fd = passphrase_fd()
    done = credd(env, "store", "init", "encrypted-file", "--passphrase-fd", str(fd),
                 pass_fds=(fd,))  # fmt: skip
    os.close(fd)
    assert done.returncode == 0, done.stderr
    key, secret, seed = totp_profile(daemons, "locked")
    store_secrets(env, "locked", key, secret, seed)

    # the CLI: no passphrase source and no terminal -> exit 6 at once, says how to give one
    done = credd(env, "secrets", "check")
    assert done.returncode == 6 and "no passphrase was given" in done.stderr
    fd = passphrase_fd(WRONG)
    done = credd({**env, "CREDD_PASSPHRASE_FD": str(fd)}, "secrets", "check", pass_fds=(fd,))
    os.close(fd)
    assert done.returncode == 6 and "wrong passphrase" in done.stderr

    # the daemon: a wrong systemd credential -> it still answers, and says why it cannot serve
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "credd-passphrase").write_text(WRONG + "\n")
    d = daemons.start(**NOWHERE, CREDD_SECRET_STORE="encrypted-file",
                      CREDENTIALS_DIRECTORY=str(creds))  # fmt: skip
    p = d.wait_state("locked", "error", "needs_mfa", "needs_person")
    assert p["state"] != "fresh"
    log = d.log.read_text()
    assert "wrong passphrase" in log
    assert PASSPHRASE not in log and WRONG not in log
    got = d.run("get", "locked")
    assert got.returncode != 0


def test_plaintext_opt_in_works_and_warns(daemons: DaemonFactory) -> None:
    env = daemons.env(**NOWHERE)
    done = credd(env, "store", "init", "plaintext-file")
    assert done.returncode == 0, done.stderr
    assert "NOT encrypted" in done.stderr
    path = filestore.store_path(filestore.PLAINTEXT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key, secret, seed = totp_profile(daemons, "plain")
    store_secrets(env, "plain", key, secret, seed)
    done = credd(env, "secrets", "check")
    assert done.returncode == 0 and "UNENCRYPTED" in done.stderr
    d = daemons.start(**NOWHERE)
    assert d.wait_state("plain", "fresh")["mfa_source"] == "totp"
    assert "UNENCRYPTED" in d.log.read_text()
    done = credd(env, "store", "show")
    assert "plaintext-file" in done.stdout
