"""The real daemon under faults (issue 8): a resume from suspend (libfaketime), a reload racing a
slow AssumeRole, a Secret Service that dies and comes back. Sandbox STS, gnome-keyring, the CLI.
"""

from __future__ import annotations

import configparser
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.daemon import Daemon, DaemonFactory, remember
from tests.fixtures.keyring import PASSWORD, SECRETS_NAME, SecretService, name_has_owner
from tests.integration.test_daemon import mfa_user, profile_block

pytestmark = pytest.mark.integration

LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)


def caller_arn(daemons: DaemonFactory, creds: dict[str, Any]) -> str:
    """Who the sandbox says these credentials are (it judges expiry on its own clock)."""
    sts = daemons.sandbox.client(
        "sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("SessionToken")
    )
    arn: str = sts.get_caller_identity()["Arn"]
    return arn


def wait_log(daemon: Daemon, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in daemon.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never logged"
        time.sleep(0.05)  # waiting for a real process, not for expiry


# -- time: resume from suspend -----------------------------------------------------------------


def test_after_a_resume_from_suspend_fresh_credentials_are_served_at_once(
    daemons: DaemonFactory, tmp_path: Path
) -> None:
    """libfaketime moves the daemon's wall clock 3 h ahead while its monotonic clock runs on,
    exactly what a laptop sees after a night's sleep; the sandbox clock moves with it."""
    if LIBFAKETIME is None:
        pytest.fail("libfaketime is missing: apt-get install faketime libfaketime")
    admin = daemons.sandbox.admin
    admin.set_min_duration(300)
    admin.set_totp_clock("sandbox")  # the daemon computes codes from its own (moved) clock
    admin.set_date_clock("sandbox")  # and signs with it
    user, _device = mfa_user(daemons, "lap")
    daemons.write_config(profile_block("lap", "credd_session_duration = 300"))
    control = tmp_path / "faketime"
    control.write_text("+0\n")
    d = daemons.start(
        LD_PRELOAD=str(LIBFAKETIME),
        FAKETIME_TIMESTAMP_FILE=str(control),
        FAKETIME_CACHE_DURATION="1",  # reread the file every second
        FAKETIME_DONT_FAKE_MONOTONIC="1",  # the monotonic clock keeps running: a suspend
        CREDD_MIN_SESSION_SECONDS="300",
    )
    held = d.wait_state("lap", "fresh")
    assert held["next_refresh_in_seconds"] > 60  # nothing due for a while before the "sleep"
    admin.advance(3 * 3600)
    control.write_text("+3h\n")  # wake up: 3 h later, by the wall clock only
    jumped = time.monotonic()
    wait_log(d, "the wall clock jumped")
    # Served by the woken schedule, not by a request (status never starts a refresh):
    # before the fix nothing ran until the old timer ended, ~150 s of monotonic time later.
    after = d.wait_state("lap", "fresh", timeout=60)
    while after["key_id"] == held["key_id"]:
        assert time.monotonic() - jumped < 60, f"not refreshed after the jump: {after}"
        time.sleep(0.1)
        after = d.profile("lap")
    took = time.monotonic() - jumped
    print(f"\nfresh credentials {took:.1f} s after the jump")
    creds = d.get("lap")
    admin.set_date_clock("real")  # this test process signs with the real clock
    assert caller_arn(daemons, creds).endswith(f":user/{user.name}")  # valid, not expired
    assert after["expires_in_seconds"] > 60 and after["next_refresh_in_seconds"] > 0


# -- reload racing a refresh -------------------------------------------------------------------


def role_config(daemons: DaemonFactory, role_arn: str) -> None:
    daemons.write_config(
        profile_block("user")
        + f"[profile r]\nrole_arn = {role_arn}\nsource_profile = user\ncredd = true\n"
        "region = us-east-1\nservices = sandbox\n"
    )


def file_section(daemons: DaemonFactory, name: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(daemons.aws / "credentials")
    return dict(parser[name]) if parser.has_section(name) else {}


def test_reload_during_a_slow_assume_role_serves_the_new_role_only(
    daemons: DaemonFactory,
) -> None:
    user, _device = mfa_user(daemons, "user")
    admin = daemons.sandbox.admin
    wide = admin.create_role(f"wide-{user.name}", trusted=[user.arn])
    narrow = admin.create_role(f"narrow-{user.name}", trusted=[user.arn])
    role_config(daemons, wide.arn)
    d = daemons.start()
    d.wait_state("r", "fresh")
    assert "/wide-" in caller_arn(daemons, d.get("r"))
    admin.set_slow(20, count=1, actions=["AssumeRole"])
    role_config(daemons, narrow.arn)  # a less privileged role; read at the SIGHUP only
    asked = subprocess.Popen(  # `credd refresh r`: its AssumeRole (of the wide role) is slow
        [sys.executable, "-m", "credd.cli", "refresh", "r"],
        env=d.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_log(d, "role:r: refreshing (asked for)")  # the slow call is in flight
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        wait_log(d, "config reloaded")
        assert "/narrow-" in caller_arn(daemons, d.get("r"))  # at once, never the old role
        asked.wait(60)
    finally:
        if asked.poll() is None:
            asked.kill()
            asked.wait()
    # the old AssumeRole has returned by now: its outcome was dropped, nothing of it written
    wait_log(d, "outcome of a refresh started before a reload dropped", timeout=60)
    creds = d.get("r")
    assert "/narrow-" in caller_arn(daemons, creds)
    p = d.profile("r")
    assert p["state"] == "fresh" and p["next_refresh_in_seconds"] > 0
    section = file_section(daemons, p["file_profile"])
    remember(section.get("aws_secret_access_key"), section.get("aws_session_token"))
    assert section["aws_access_key_id"] == creds["AccessKeyId"]  # the new role's, kept


# -- the Secret Service dies and comes back ----------------------------------------------------


def keyring_back(service: SecretService) -> None:
    """The Secret Service answers again. Asking for it after the kill made the bus start
    gnome-keyring again by D-Bus activation (as a desktop does), locked; without a service
    file nobody did, and it is started here. Then it is unlocked, as its owner's login does."""
    if not name_has_owner(service.address, SECRETS_NAME):
        proc = subprocess.Popen(
            [shutil.which("gnome-keyring-daemon") or "gnome-keyring-daemon",
             "--unlock", "--components=secrets", "--foreground"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=service.bus_env, text=True,
        )  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(PASSWORD)
        proc.stdin.close()
        service.process = proc  # the session fixture stops this one at the end
    deadline = time.monotonic() + 15
    while not name_has_owner(service.address, SECRETS_NAME):
        assert time.monotonic() < deadline, "gnome-keyring did not come back"
        time.sleep(0.05)  # waiting for a real process to come up, not testing time
    while service.is_locked():
        service.unlock()
        assert time.monotonic() < deadline, "gnome-keyring stayed locked"


def test_keyring_killed_and_restarted_recovers_without_a_person(daemons: DaemonFactory) -> None:
    mfa_user(daemons, "kr")
    daemons.write_config(profile_block("kr"))
    d = daemons.start()
    d.wait_state("kr", "fresh")
    service = daemons.keyring_env.secret_service
    before = daemons.sandbox.admin.calls("GetSessionToken")
    service.process.terminate()
    service.process.wait(10)
    try:
        out = d.run("refresh", "kr")  # a refresh while the keyring is gone
        assert out.returncode != 0
        p = d.profile("kr")
        assert p["state"] == "backoff"  # before: "error", parked until `credd refresh`
        assert p["error"]["code"] in {"secret_store_unavailable", "secret_store_locked"}
        assert "keyring" in p["waiting_for"] and "retried automatically" in p["waiting_for"]
    finally:
        keyring_back(service)
    p = d.wait_state("kr", "fresh", timeout=60)  # nobody asked: the backoff retried
    assert daemons.sandbox.admin.calls("GetSessionToken") == before + 1  # no storm
    assert d.get("kr")["AccessKeyId"]
