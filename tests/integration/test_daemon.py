"""The real daemon end to end: sandbox STS, gnome-keyring, the credd CLI, the AWS CLI v2, boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pyotp
import pytest

from credd.sources.mfa import STEP
from tests.fixtures.daemon import DaemonFactory, remember

pytestmark = pytest.mark.integration

AWS_V2 = "/usr/bin/aws"

FOREIGN = """\
# my hand-written credentials — credd must keep every byte of this
[default]
aws_access_key_id = AKIAEXAMPLEDEFAULT01
aws_secret_access_key = defaultsecretdefaultsecretdefaultsecret0

; another comment style
[someone-else]
aws_access_key_id=AKIAEXAMPLEOTHER0002
aws_secret_access_key=othersecretothersecretothersecretother00
region = eu-north-1
"""


def mfa_user(daemons: DaemonFactory, profile: str, *, seed_in_keyring: bool = True) -> tuple:
    user, device = daemons.sandbox.new_user_with_mfa(profile)
    remember(user.secret_access_key, device.seed)
    daemons.store.set_long_term_keys(profile, user.access_key_id, user.secret_access_key)
    if seed_in_keyring:
        daemons.store.set_totp_seed(profile, device.seed)
    return user, device


def profile_block(name: str, *extra: str) -> str:
    lines = [
        f"[profile {name}]",
        "region = us-east-1",
        "services = sandbox",
        "credd = true",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def aws_v2(daemons: DaemonFactory, *args: str) -> subprocess.CompletedProcess[str]:
    env = daemons.env()
    env.pop("AWS_PROFILE", None)
    return subprocess.run(
        [AWS_V2, *args, "--endpoint-url", daemons.sandbox.endpoint, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_totp_profile_served_to_the_cli_v2_boto3_and_the_credentials_file(
    daemons: DaemonFactory,
) -> None:
    user, device = mfa_user(daemons, "work")
    (daemons.aws / "credentials").write_text(FOREIGN)
    os.chmod(daemons.aws / "credentials", 0o644)
    getter = (
        f"{sys.executable} -m credd.cli get work --socket {daemons.home / 'run' / 'credd.sock'}"
    )
    daemons.write_config(
        "# my config comment\n"
        + profile_block("work", f"mfa_serial = {device.serial}", "credd_session_duration = 2h")
        + "\n[profile app]\nregion = us-east-1\nservices = sandbox\n"
        + f"credential_process = {getter}\n"
    )
    d = daemons.start()
    p = d.wait_state("work", "fresh")
    assert p["kind"] == "session-token" and p["mfa_source"] == "totp"
    assert 7000 < p["expires_in_seconds"] <= 7200
    assert p["file_profile"] == "work-credd"
    assert d.run("status").returncode == 0

    creds = d.get("work")
    assert creds["Version"] == 1 and creds["AccessKeyId"].startswith("ASIA")
    assert creds["Expiration"].endswith("Z")

    # the AWS CLI v2 through credential_process, and through the profile credd wrote
    for profile in ("app", "work-credd"):
        done = aws_v2(daemons, "sts", "get-caller-identity", "--profile", profile)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["Arn"] == user.arn
    # boto3 through credential_process, endpoints from the [services] section
    session = boto3.Session(profile_name="app")
    assert session.client("sts").get_caller_identity()["Arn"] == user.arn

    # the credentials file: foreign bytes kept exactly, credd's section marked, 0600
    text = (daemons.aws / "credentials").read_text()
    assert text.startswith(FOREIGN)
    assert "[work-credd]" in text and "credd_managed_by = work" in text
    assert oct((daemons.aws / "credentials").stat().st_mode & 0o777) == "0o600"
    assert (daemons.aws / "config").read_text().startswith("# my config comment\n")

    env_out = d.run("get", "work", "--format", "env").stdout
    assert "export AWS_ACCESS_KEY_ID=" + creds["AccessKeyId"] in env_out
    # one MFA session for all of that
    assert daemons.sandbox.admin.calls("GetSessionToken") == 1


def test_person_gives_codes_wrong_and_reused_codes_are_refused(daemons: DaemonFactory) -> None:
    _user, device = mfa_user(daemons, "desk", seed_in_keyring=False)
    daemons.write_config(profile_block("desk", "credd_mfa_source = person"))
    d = daemons.start()
    p = d.wait_state("desk", "needs_mfa")
    assert "credd mfa desk" in p["waiting_for"]
    assert d.run("status").returncode == 1

    got = d.run("get", "desk")
    assert got.returncode == 4 and got.stdout == ""
    assert got.stderr.count("\n") == 1 and "credd mfa desk" in got.stderr

    totp = pyotp.TOTP(device.seed)
    good = totp.now()
    wrong = f"{(int(good) + 500000) % 1000000:06d}"
    done = d.run("mfa", "desk", wrong)
    assert done.returncode == 4, done.stderr
    assert "rejected" in done.stderr
    p = d.profile("desk")
    assert p["state"] == "needs_mfa" and p["error"]["code"] == "mfa_code_rejected"

    before = daemons.sandbox.admin.calls("GetSessionToken")
    done = d.run("mfa", "desk", stdin=good + "\n")  # read from stdin when not given
    assert done.returncode == 0, done.stderr
    assert d.profile("desk")["state"] == "fresh"
    again = d.run("mfa", "desk", good)  # the same code again never reaches AWS
    assert again.returncode == 4 and "already used" in again.stderr
    assert daemons.sandbox.admin.calls("GetSessionToken") == before + 1
    assert d.get("desk")["AccessKeyId"].startswith("ASIA")


def test_one_bad_profile_never_stops_the_others(daemons: DaemonFactory) -> None:
    mfa_user(daemons, "good")
    mfa_user(daemons, "owned-elsewhere")
    (daemons.aws / "credentials").write_text(FOREIGN)
    daemons.write_config(
        profile_block("good")
        + profile_block("broken", "credd_session_duration = 99h")
        + profile_block("owned-elsewhere", "credd_file_profile = someone-else")
    )
    d = daemons.start()
    assert d.wait_state("good", "fresh")["error"] is None
    broken = d.profile("broken")
    assert broken["state"] == "error" and broken["error"]["code"] == "config_invalid"
    assert "36 h" in broken["error"]["message"]
    other = d.wait_state("owned-elsewhere", "fresh")
    assert other["error"]["code"] == "foreign_section"  # credentials served, file not written
    assert d.get("owned-elsewhere")["AccessKeyId"].startswith("ASIA")
    assert (daemons.aws / "credentials").read_text().startswith(FOREIGN)
    unknown = d.run("get", "nobody")
    assert unknown.returncode == 3 and "credd enable nobody" in unknown.stderr
    assert d.run("get", "broken").returncode == 3


def test_sts_down_backs_off_and_the_held_session_is_still_served(daemons: DaemonFactory) -> None:
    mfa_user(daemons, "flaky")
    daemons.write_config(profile_block("flaky"))
    d = daemons.start()
    d.wait_state("flaky", "fresh")
    held = d.get("flaky")
    daemons.sandbox.admin.set_down(True)
    out = d.run("refresh", "flaky")
    assert out.returncode == 1 and "flaky: backoff" in out.stdout, out.stdout  # as it ended
    p = d.profile("flaky")
    # On a busy machine the backoff retry (2.5-3.75 s later; it waits for a new MFA step, the
    # code of the dropped call may have been used) can already be running when we ask again.
    assert p["state"] in {"backoff", "refreshing"} and p["error"]["code"] == "aws_unreachable"
    if p["state"] == "backoff":
        assert p["next_refresh_in_seconds"] is not None and p["next_refresh_in_seconds"] <= 6
    assert d.get("flaky")["AccessKeyId"] == held["AccessKeyId"]
    daemons.sandbox.admin.clear_knobs()
    p = d.wait_state("flaky", "fresh", timeout=STEP + 15)  # the backoff retry, no one asked
    assert d.get("flaky")["AccessKeyId"] != held["AccessKeyId"]


def test_locked_keyring_is_reported_and_recovers(daemons: DaemonFactory) -> None:
    mfa_user(daemons, "vault")
    daemons.write_config(profile_block("vault"))
    daemons.keyring_env.secret_service.lock()
    d = daemons.start()
    p = d.wait_state("vault", "backoff")  # retried with a capped backoff, not parked
    assert p["error"]["code"] == "secret_store_locked"
    assert "unlocked" in p["waiting_for"]
    got = d.run("get", "vault")
    assert got.returncode == 6 and "unlock" in got.stderr.lower()
    daemons.keyring_env.secret_service.unlock()
    d.wait_state("vault", "fresh", timeout=60)  # on its own: nobody ran credd refresh


def test_no_keyring_at_all_and_a_profile_that_needs_none_still_works(
    daemons: DaemonFactory, tmp_path: Path
) -> None:
    _u1, _d1 = mfa_user(daemons, "needs-keyring")
    user, device = daemons.sandbox.new_user_with_mfa("plain")
    remember(user.secret_access_key, device.seed)
    seed_file = tmp_path / "seed"
    seed_file.write_text(device.seed)
    mfa_cmd = tmp_path / "code.py"
    mfa_cmd.write_text(
        "import pyotp, pathlib\n"
        f"print(pyotp.TOTP(pathlib.Path({str(seed_file)!r}).read_text()).now())\n"
    )
    (daemons.aws / "credentials").write_text(
        f"[plain]\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n"
    )
    daemons.write_config(
        profile_block("needs-keyring")
        + profile_block("plain", f"mfa_process = {sys.executable} {mfa_cmd}")
    )
    d = daemons.start(DBUS_SESSION_BUS_ADDRESS=f"unix:path={tmp_path}/no-such-bus")
    assert d.wait_state("plain", "fresh")["mfa_source"] == "process"
    p = d.wait_state("needs-keyring", "backoff")  # a bus may come up later: retried, capped
    assert p["error"]["code"].startswith("secret_store")
    assert d.get("plain")["AccessKeyId"].startswith("ASIA")
