"""Sessions survive restarts, end to end: the real daemon, sandbox STS and gnome-keyring.

``kill -9`` then a restart asks nobody and calls STS for nothing that is not due; SIGHUP with a
changed config manages the new profile, drops the removed one (file section and saved session)
and leaves the others alone; a locked keyring at restart costs a warning and fresh sessions.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.fixtures.daemon import Daemon, DaemonFactory, remember

pytestmark = pytest.mark.integration
KEPT = ("state", "expires_at", "key_id", "last_refresh_at", "file_profile")


def block(name: str, *extra: str) -> str:
    lines = [f"[profile {name}]", "region = us-east-1", "services = sandbox", "credd = true"]
    return "\n".join([*lines, *extra]) + "\n"


def totp_user(daemons: DaemonFactory, profile: str, *, seed: bool = True) -> tuple[Any, Any]:
    user, device = daemons.sandbox.new_user_with_mfa(profile)
    remember(user.secret_access_key, device.seed)
    daemons.store.set_long_term_keys(profile, user.access_key_id, user.secret_access_key)
    if seed:
        daemons.store.set_totp_seed(profile, device.seed)
    return user, device


def role_block(daemons: DaemonFactory, name: str, user: Any, source: str, **kw: Any) -> str:
    role = daemons.sandbox.admin.create_role(f"{name}-{user.name}", trusted=[user.arn], **kw)
    return block(name, f"role_arn = {role.arn}", f"source_profile = {source}")


def sts_calls(daemons: DaemonFactory) -> tuple[int, int]:
    admin = daemons.sandbox.admin
    return admin.calls("GetSessionToken"), admin.calls("AssumeRole")


def view(d: Daemon) -> dict[str, dict[str, Any]]:
    return {p["name"]: {k: p[k] for k in KEPT} for p in d.status()["profiles"]}


def kill_9(daemons: DaemonFactory, d: Daemon) -> int:
    """SIGKILL: nothing is flushed, nothing cleaned up (the socket file stays behind).

    Returns the log's size: the next daemon appends to the same log file.
    """
    assert d.proc is not None
    d.proc.send_signal(signal.SIGKILL)
    assert d.proc.wait(timeout=10) == -signal.SIGKILL
    d._out.close()
    daemons.daemons.remove(d)  # the factory's clean-shutdown checks are for the live ones
    return d.log.stat().st_size


def log_after(d: Daemon, offset: int) -> str:
    return d.log.read_bytes()[offset:].decode()


def test_kill_9_and_restart_asks_nobody_and_calls_sts_for_nothing(
    daemons: DaemonFactory,
) -> None:
    user, _ = totp_user(daemons, "user")
    _desk, desk_device = totp_user(daemons, "desk", seed=False)
    daemons.write_config(
        block("user", "credd_session_duration = 4h")
        + role_block(daemons, "admin", user, "user", mfa_required=True)
        + block("desk", "credd_mfa_source = person")
    )
    d1 = daemons.start()
    d1.wait_state("admin", "fresh")
    d1.wait_state("desk", "needs_mfa")
    done = d1.run("mfa", "desk", pyotp.TOTP(desk_device.seed).now())
    assert done.returncode == 0, done.stderr
    before = view(d1)
    assert {p["state"] for p in before.values()} == {"fresh"}
    served = {name: d1.get(name) for name in before}
    calls = sts_calls(daemons)
    assert calls == (2, 1)

    offset = kill_9(daemons, d1)
    assert d1.socket.exists()  # left behind by SIGKILL
    d2 = daemons.start()
    assert view(d2) == before  # already at the first status: restored before serving
    for name, creds in served.items():
        again = d2.get(name)
        assert again["AccessKeyId"] == creds["AccessKeyId"]
        assert again["Expiration"] == creds["Expiration"]
    assert sts_calls(daemons) == calls  # no MFA code asked of anyone, no STS call
    # what was restored is the real thing: the role's session still works against STS
    role = served["admin"]
    sts = daemons.sandbox.client("sts", role["AccessKeyId"], role["SecretAccessKey"],
                                 role["SessionToken"])  # fmt: skip
    assert ":assumed-role/admin-" in sts.get_caller_identity()["Arn"]
    persistence = d2.status()["daemon"]["persistence"]
    assert persistence["state"] == "on" and persistence["restored"] == 3
    log = log_after(d2, offset)
    assert log.count("restored saved session") == 3
    assert "refreshing (" not in log
    # the next refreshes are scheduled ahead of expiry, not now
    assert all(p["next_refresh_in_seconds"] > 600 for p in d2.status()["profiles"])


def test_sighup_with_a_changed_config_touches_only_what_changed(
    daemons: DaemonFactory,
) -> None:
    user, _ = totp_user(daemons, "user")
    r0 = role_block(daemons, "r0", user, "user", mfa_required=True)
    r1 = role_block(daemons, "r1", user, "user", mfa_required=True)
    r2 = role_block(daemons, "r2", user, "user", mfa_required=True)
    daemons.write_config(block("user") + r0 + r1)
    d = daemons.start()
    for name in ("user", "r0", "r1"):
        d.wait_state(name, "fresh")
    before = view(d)
    calls = sts_calls(daemons)
    credentials = daemons.aws / "credentials"
    assert "[r1-credd]" in credentials.read_text()
    assert daemons.store.get_session("role:r1") is not None

    daemons.write_config(block("user") + r0 + r2)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while True:  # the reload happens on the daemon's loop, shortly after the signal
        after = view(d)
        if set(after) == {"user", "r0", "r2"} and after["r2"]["state"] == "fresh":
            break
        assert time.monotonic() < deadline, f"not reloaded: {after}"
        time.sleep(0.1)

    assert after["user"] == before["user"] and after["r0"] == before["r0"]
    assert sts_calls(daemons) == (calls[0], calls[1] + 1)  # only r2's AssumeRole
    text = credentials.read_text()
    assert "[r1-credd]" not in text and "[r2-credd]" in text and "[r0-credd]" in text
    assert daemons.store.get_session("role:r1") is None
    assert daemons.store.get_session("role:r2") is not None
    assert daemons.store.get_session("role:r0") is not None
    assert "config reloaded" in d.log.read_text()


def test_a_locked_keyring_at_restart_degrades_with_one_warning_and_fetches_fresh(
    daemons: DaemonFactory,
) -> None:
    user = daemons.sandbox.new_user("keys")
    remember(user.secret_access_key)
    (daemons.aws / "credentials").write_text(
        f"[keys]\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n"
    )
    daemons.write_config(
        "[profile keys]\nregion = us-east-1\nservices = sandbox\n"
        + role_block(daemons, "app", user, "keys")
    )
    d1 = daemons.start()
    first = d1.wait_state("app", "fresh")
    assert daemons.store.get_session("role:app") is not None
    offset = kill_9(daemons, d1)

    daemons.keyring_env.secret_service.lock()
    d2 = daemons.start()
    second = d2.wait_state("app", "fresh")
    assert second["key_id"] != first["key_id"]  # fetched fresh, not restored
    assert sts_calls(daemons)[1] == 2
    persistence = d2.status()["daemon"]["persistence"]
    assert persistence["state"] == "unavailable"
    assert "locked" in persistence["note"] and "unlock" in persistence["note"]
    warnings = re.findall(r"WARNING credd\.engine\.persist: (.*)", log_after(d2, offset))
    assert len(warnings) == 1 and "not saved across restarts" in warnings[0]
    d2.run("refresh", "app")  # another refresh: still one warning
    assert len(re.findall(r"WARNING credd\.engine\.persist", log_after(d2, offset))) == 1


def test_nothing_is_persisted_in_a_plain_file(daemons: DaemonFactory) -> None:
    totp_user(daemons, "user")
    daemons.write_config(block("user", "credd_file_profile = off"))
    d = daemons.start()
    creds = d.get("user")
    assert d.wait_state("user", "fresh")
    token = creds["SessionToken"]
    for path in Path(daemons.home).rglob("*"):
        if path.is_file() and not path.is_socket():
            assert token not in path.read_text(errors="replace"), f"session token in {path}"
    saved = daemons.store.get_session("session:user")
    assert saved is not None and saved["credentials"]["SessionToken"] == token
    assert set(saved) == {"v", "node", "fingerprint", "issued_at", "credentials"}
    assert saved["node"] == "session:user" and len(saved["fingerprint"]) == 64
