"""credd.secrets.store against a real gnome-keyring Secret Service (tests/fixtures/keyring.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
import pytest

from credd.errors import SecretStoreError, SecretStoreLocked, UsageError
from credd.secrets.store import SecretStore, normalise_totp_seed
from tests.fixtures.keyring import KeyringEnv, SecretService, private_bus, secret_service_backend

REPO = Path(__file__).resolve().parents[2]
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def secret_tool_lookup(ss: SecretService, service: str, username: str) -> str | None:
    """Read an entry with libsecret's secret-tool: an independent client of the same service."""
    proc = subprocess.run(
        ["secret-tool", "lookup", "service", service, "username", username],
        env={**os.environ, **ss.env}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return proc.stdout if proc.returncode == 0 else None


# -- round trips on the real Secret Service ---------------------------------------------------


def test_long_term_keys_round_trip(keyring_env: KeyringEnv) -> None:
    store = keyring_env.store()
    assert store.get_long_term_keys("work") is None
    store.set_long_term_keys("work", KEY_ID, SECRET)

    creds = store.get_long_term_keys("work")
    assert creds is not None
    assert (creds.access_key_id, creds.secret_access_key) == (KEY_ID, SECRET)
    assert creds.session_token is None and creds.expiration is None
    raw = secret_tool_lookup(keyring_env.secret_service, store.service, "long-term-keys:work")
    assert raw is not None
    assert json.loads(raw) == {"Version": 1, "AccessKeyId": KEY_ID, "SecretAccessKey": SECRET}

    assert store.delete_long_term_keys("work") is True
    assert store.get_long_term_keys("work") is None
    assert store.delete_long_term_keys("work") is False


def test_set_replaces_and_entries_are_per_profile_and_service(keyring_env: KeyringEnv) -> None:
    store = keyring_env.store()
    other_service = keyring_env.store(service=store.service + "-other")
    store.set_long_term_keys("a", KEY_ID, SECRET)
    store.set_long_term_keys("a", "AKIAZZZZZZZZZZZZZZZZ", SECRET[::-1])
    store.set_long_term_keys("b", KEY_ID, SECRET)

    a = store.get_long_term_keys("a")
    assert a is not None and a.access_key_id == "AKIAZZZZZZZZZZZZZZZZ"
    assert other_service.get_long_term_keys("a") is None
    assert len(keyring_env.secret_service.items(store.service)) == 2


def test_totp_seed_round_trip_normalises(keyring_env: KeyringEnv) -> None:
    store = keyring_env.store()
    assert store.get_totp_seed("work") is None
    store.set_totp_seed("work", "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp")
    assert store.get_totp_seed("work") == SEED
    raw = secret_tool_lookup(keyring_env.secret_service, store.service, "totp-seed:work")
    assert raw == SEED
    assert store.delete_totp_seed("work") is True
    assert store.get_totp_seed("work") is None
    assert store.delete_totp_seed("work") is False


def test_session_blob_round_trip(keyring_env: KeyringEnv) -> None:
    store = keyring_env.store()
    data: dict[str, Any] = {"AccessKeyId": "ASIAEXAMPLE", "Expiration": "2030-01-01T00:00:00Z"}
    assert store.get_session("work") is None
    store.set_session("work", data)
    assert store.get_session("work") == data
    with pytest.raises(UsageError):
        store.set_session("work", {"when": object()})
    assert store.get_session("work") == data  # a bad write lost nothing
    assert store.delete_session("work") is True
    assert store.get_session("work") is None


def test_default_backend_comes_from_the_environment(keyring_env: KeyringEnv) -> None:
    store = SecretStore()  # service "credd", backend from PYTHON_KEYRING_BACKEND
    assert store.backend_name() == "keyring.backends.SecretService.Keyring"
    store.check()
    store.set_totp_seed("p", SEED)
    assert SecretStore().get_totp_seed("p") == SEED
    attrs = keyring_env.secret_service.items("credd")
    assert [a["username"] for a in attrs] == ["totp-seed:p"]


def test_corrupt_entry_is_a_clear_error(keyring_env: KeyringEnv) -> None:
    store = keyring_env.store()
    secret_service_backend().set_password(store.service, "long-term-keys:x", "not json")
    secret_service_backend().set_password(store.service, "session:x", '{"AccessKeyId": "only"}')
    with pytest.raises(SecretStoreError, match="not valid JSON") as err:
        store.get_long_term_keys("x")
    assert "credd keys set x" in str(err.value.hint)
    assert store.get_session("x") == {"AccessKeyId": "only"}
    secret_service_backend().set_password(
        store.service, "long-term-keys:y", '{"AccessKeyId": "AKIA"}'
    )
    with pytest.raises(SecretStoreError, match="incomplete"):
        store.get_long_term_keys("y")


# -- validation (nothing stored on bad input) ----------------------------------------------


@pytest.mark.parametrize(
    ("key_id", "secret", "message"),
    [
        ("AKIA123", SECRET, "access key id is not valid"),
        ("AKIA IOSFODNN7EXAMPLE", SECRET, "access key id is not valid"),
        ("ASIAIOSFODNN7EXAMPLE", SECRET, "temporary"),
        (KEY_ID, "", "empty"),
        (KEY_ID, "wJalrXUtnFEMI K7MDENG", "not valid"),
        (KEY_ID, "wJalrXUtnFEMI\tK7MDENG", "not valid"),
        (KEY_ID, "x" * 257, "not valid"),
        (KEY_ID, KEY_ID, "is the access key id"),
    ],
)
def test_bad_keys_are_rejected(
    keyring_env: KeyringEnv, key_id: str, secret: str, message: str
) -> None:
    store = keyring_env.store()
    with pytest.raises(UsageError, match=message) as err:
        store.set_long_term_keys("p", key_id, secret)
    assert err.value.hint
    if secret.strip():
        assert secret not in str(err.value)
    assert keyring_env.secret_service.items(store.service) == []


@pytest.mark.parametrize("name", ["", "a\nb", "x\x00", "n" * 257])
def test_bad_names_are_rejected(keyring_env: KeyringEnv, name: str) -> None:
    store = keyring_env.store()
    with pytest.raises(UsageError, match="invalid"):
        store.set_totp_seed(name, SEED)
    with pytest.raises(UsageError):
        store.get_session(name)


@pytest.mark.parametrize(
    "given",
    [
        SEED,
        SEED.lower(),
        "JBSW-Y3DP-EHPK-3PXP-JBSW-Y3DP-EHPK-3PXP",
        SEED + "\n",
        f"otpauth://totp/Amazon%20Web%20Services:alice@123456789012?secret={SEED}&issuer=AWS",
        f"OTPAUTH://TOTP/x?issuer=AWS&Secret={SEED.lower()}&algorithm=sha1&digits=6&period=30",
    ],
)
def test_seed_forms_accepted(given: str) -> None:
    seed = normalise_totp_seed(given)
    assert seed == SEED
    assert pyotp.TOTP(seed).at(1_700_000_000) == pyotp.TOTP(SEED).at(1_700_000_000)


def test_unpadded_seed_of_any_valid_length() -> None:
    seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY"  # 26 chars: decodes only with padding added
    assert normalise_totp_seed(seed) == seed
    assert len(pyotp.TOTP(seed).now()) == 6


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("123456", "one-time code"),
        ("", "not valid base32"),
        ("JBSWY3DPEHPK3PX1JBSWY3DP", "not valid base32"),
        ("JBSWY3DPEHPK3PX", "too short"),
        ("JBSWY3DPEHPK3PXPJ", "length is wrong"),
        (f"otpauth://hotp/x?secret={SEED}&counter=1", "not supported"),
        (f"otpauth://totp/x?secret={SEED}&algorithm=SHA256", "algorithm=SHA1"),
        (f"otpauth://totp/x?secret={SEED}&digits=8", "digits=6"),
        (f"otpauth://totp/x?secret={SEED}&period=60", "period=30"),
        ("otpauth://totp/x?issuer=AWS", "no secret"),
        ("otpauth://totp/x?secret=", "no secret"),
        ("https://example.com/?secret=" + SEED, "not valid base32"),
    ],
)
def test_bad_seeds_rejected(keyring_env: KeyringEnv, given: str, message: str) -> None:
    store = keyring_env.store()
    with pytest.raises(UsageError, match=message) as err:
        store.set_totp_seed("p", given)
    assert err.value.hint
    assert SEED not in str(err.value) and SEED.lower() not in str(err.value)
    assert keyring_env.secret_service.items(store.service) == []


# -- a locked keyring ------------------------------------------------------------------------


@pytest.mark.parametrize("allow_prompt", [True, False])
def test_locked_keyring_raises_locked_and_loses_nothing(
    keyring_env: KeyringEnv, allow_prompt: bool
) -> None:
    ss = keyring_env.secret_service
    store = keyring_env.store(allow_prompt=allow_prompt, timeout=10)
    store.set_long_term_keys("p", KEY_ID, SECRET)
    ss.lock()
    assert ss.is_locked()
    calls: list[Callable[[], object]] = [
        store.check,
        lambda: store.get_long_term_keys("p"),
        lambda: store.set_long_term_keys("p", KEY_ID, SECRET[::-1]),
        lambda: store.delete_long_term_keys("p"),
        lambda: store.get_totp_seed("p"),
        lambda: store.set_totp_seed("p", SEED),
        lambda: store.delete_totp_seed("p"),
        lambda: store.get_session("p"),
        lambda: store.set_session("p", {"a": 1}),
        lambda: store.delete_session("p"),
    ]
    for call in calls:
        with pytest.raises(SecretStoreLocked) as err:
            call()
        assert err.value.code == "secret_store_locked"
        assert "unlock your keyring" in str(err.value.hint)
        assert SECRET not in str(err.value)
    ss.unlock()
    creds = store.get_long_term_keys("p")
    assert creds is not None and creds.secret_access_key == SECRET


# -- a Secret Service that never answers -----------------------------------------------------

SQUATTER = """
import sys
from jeepney import DBus
from jeepney.io.blocking import open_dbus_connection
conn = open_dbus_connection(bus=sys.argv[1])
print(conn.send_and_get_reply(DBus().RequestName("org.freedesktop.secrets")).body[0], flush=True)
sys.stdin.read()  # owns the name, never reads the bus: every call to it waits
"""


def test_unanswering_secret_service_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with private_bus(tmp_path) as bus:
        squatter = subprocess.Popen(
            [sys.executable, "-c", SQUATTER, bus.address],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=bus.env, text=True,
        )  # fmt: skip
        try:
            assert squatter.stdout is not None
            assert squatter.stdout.readline().strip() == "1"  # primary owner
            monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
            store = SecretStore(secret_service_backend(), timeout=0.3)
            with pytest.raises(SecretStoreError, match=r"did not answer within 0\.3s") as err:
                store.set_long_term_keys("p", KEY_ID, SECRET)
            assert not isinstance(err.value, SecretStoreLocked)
            assert SECRET not in str(err.value)
            # the abandoned call is still blocked: the next one fails at once, no new thread
            with pytest.raises(SecretStoreError, match="still busy"):
                store.get_totp_seed("p")
        finally:
            assert squatter.stdin is not None and squatter.stdout is not None
            squatter.stdin.close()
            squatter.stdout.close()
            squatter.wait(timeout=10)


# -- no keyring at all -----------------------------------------------------------------------

PROBE = """
import json
from credd.errors import CreddError
from credd.secrets.store import SecretStore
store = SecretStore(timeout=10)
out = {}
try:
    out["backend"] = store.backend_name()
    store.check()
    out["ok"] = True
except CreddError as e:
    out.update(code=e.code, message=e.message, hint=e.hint, exit=e.exit_code)
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    ("env", "backend", "message"),
    [
        ({"DBUS_SESSION_BUS_ADDRESS": "unix:path={tmp}/no-bus"}, "fail.Keyring", "no usable"),
        (
            {"DBUS_SESSION_BUS_ADDRESS": "unix:path={tmp}/no-bus",
             "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring"},
            None, "cannot reach the D-Bus session bus",
        ),
        (
            {"PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring"},
            None, "DBUS_SESSION_BUS_ADDRESS is unset",
        ),
        ({"PYTHON_KEYRING_BACKEND": "no.such.Backend"}, None, "is not usable"),
        ({"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}, "fail.Keyring", "no usable"),
        ({"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}, "null.Keyring", "no usable"),
    ],
)  # fmt: skip
def test_no_keyring_is_a_clear_error(
    tmp_path: Path, env: dict[str, str], backend: str | None, message: str
) -> None:
    child_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND")
    }
    child_env.update({k: v.format(tmp=tmp_path) for k, v in env.items()})
    child_env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env=child_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out.get("backend", "").endswith(backend) if backend else "backend" not in out
    assert out["code"] == "secret_store_unavailable"
    assert out["exit"] == 6
    assert message in out["message"]
    assert "gnome-keyring" in out["hint"] and "docs/secrets.md" in out["hint"]


def test_secret_service_backend_without_a_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SecretStore(secret_service_backend())  # chosen while a bus was up; the bus is gone now
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/gone")
    with pytest.raises(SecretStoreError, match="cannot reach the D-Bus session bus") as err:
        store.get_totp_seed("p")
    assert "DBUS_SESSION_BUS_ADDRESS" in str(err.value.hint)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    with pytest.raises(SecretStoreError, match="no Secret Service is reachable"):
        store.set_totp_seed("p", SEED)


def test_fail_backend_in_process() -> None:
    from keyring.backends import fail

    store = SecretStore(fail.Keyring())  # type: ignore[no-untyped-call]
    assert store.backend_name() == "keyring.backends.fail.Keyring"
    for call in (store.check, lambda: store.set_totp_seed("p", SEED)):
        with pytest.raises(SecretStoreError, match="no usable keyring backend") as err:
            call()
        assert not isinstance(err.value, SecretStoreLocked)


# -- secrets stay secret ---------------------------------------------------------------------


def test_backend_errors_are_scrubbed_of_secrets() -> None:
    from keyring.backend import KeyringBackend

    class Leaky(KeyringBackend):
        """A backend whose errors quote the value (pure logic: tests the scrubbing)."""

        priority = 1

        def get_password(self, service: str, username: str) -> str | None:
            return None

        def set_password(self, service: str, username: str, password: str) -> None:
            raise RuntimeError(f"could not store {password!r} for {username}")

        def delete_password(self, service: str, username: str) -> None:
            raise RuntimeError("nope")

    store = SecretStore(Leaky())  # type: ignore[no-untyped-call]
    with pytest.raises(SecretStoreError) as err:
        store.set_totp_seed("p", SEED)
    assert SEED not in str(err.value)
    assert "RuntimeError" in str(err.value) and "totp-seed:p" in str(err.value)
    assert err.value.__cause__ is None and err.value.__context__ is None
    with pytest.raises(SecretStoreError) as err:
        store.set_long_term_keys("p", KEY_ID, SECRET)
    assert SECRET not in str(err.value) and "***" in str(err.value)


def test_nothing_secret_in_logs_or_reprs(
    keyring_env: KeyringEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = keyring_env.store()
    store.set_long_term_keys("p", KEY_ID, SECRET)
    store.set_totp_seed("p", SEED)
    store.set_session("p", {"SessionToken": SECRET[::-1]})
    creds = store.get_long_term_keys("p")
    texts = [caplog.text, repr(store), repr(creds), str(creds)]
    assert "long-term-keys:p" in caplog.text  # it does log, and without the values
    for text in texts:
        for secret in (SECRET, SEED, SECRET[::-1]):
            assert secret not in text


def test_imports_are_cheap_and_constructor_validates() -> None:
    code = (
        "import sys, credd.secrets.store, credd.cli.secrets; credd.secrets.store.SecretStore(); "
        "print(sorted({'keyring', 'secretstorage', 'jeepney', 'pyotp', 'botocore', 'boto3'}"
        " & {m.split('.')[0] for m in sys.modules}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.stdout.strip() == "[]", proc.stderr
    with pytest.raises(UsageError):
        SecretStore(timeout=0)
    with pytest.raises(UsageError):
        SecretStore(service="")
