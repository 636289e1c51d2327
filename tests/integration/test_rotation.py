"""``credd keys rotate`` against the sandbox and a real keyring: the happy path, a crash after
every step (the next run leaves one working key and no stale one), the two-keys limit, keys in
the credentials file, and a policy that requires MFA."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from credd.actions.rotation import STEPS
from tests.fixtures.daemon import DaemonFactory, assert_no_secret, remember
from tests.fixtures.sandbox import SandboxHandle

pytestmark = pytest.mark.integration
USER_PROFILE = "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"


def rotate(daemons: DaemonFactory, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "credd.cli", "keys", "rotate", "user", "--json", *args],
        env=daemons.env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert_no_secret(done.stdout + done.stderr, "credd keys rotate")
    return done


def iam_keys(sandbox: SandboxHandle, key: Any) -> list[dict[str, Any]]:
    iam = sandbox.client("iam", key.access_key_id, key.secret_access_key)
    keys: list[dict[str, Any]] = iam.list_access_keys()["AccessKeyMetadata"]
    return keys


def works(sandbox: SandboxHandle, key: Any) -> bool:
    sts = sandbox.client("sts", key.access_key_id, key.secret_access_key)
    return bool(sts.get_caller_identity()["Arn"])


def setup_user(daemons: DaemonFactory, *, mfa: bool = False) -> Any:
    sandbox = daemons.sandbox
    user, dev = sandbox.new_user_with_mfa("rot")
    remember(user.secret_access_key, dev.seed)
    daemons.store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("user", dev.seed)
    if mfa:
        sandbox.admin.set_user_policy(user, require_mfa=True)
    daemons.write_config(USER_PROFILE)
    return user


def stored(daemons: DaemonFactory) -> Any:
    keys = daemons.store.get_long_term_keys("user")
    assert keys is not None
    remember(keys.secret_access_key)
    return keys


def test_rotation_replaces_the_key(daemons: DaemonFactory) -> None:
    user = setup_user(daemons)
    done = rotate(daemons)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    new = stored(daemons)
    assert new.access_key_id != user.access_key_id
    assert out["new_key"] == new.masked_key_id and out["mfa_codes_used"] == 0
    assert [k["AccessKeyId"] for k in iam_keys(daemons.sandbox, new)] == [new.access_key_id]
    assert works(daemons.sandbox, new)
    assert daemons.store.get_session("rotation:user") is None  # journal cleared


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_after_each_step_is_cleaned_by_the_next_run(
    daemons: DaemonFactory, step: str
) -> None:
    user = setup_user(daemons)
    crashed = rotate(daemons, CREDD_ROTATE_CRASH_AFTER=step)
    assert crashed.returncode == 137, crashed.stderr
    now = stored(daemons)
    assert works(daemons.sandbox, now)  # a working key is stored after the kill
    assert len(iam_keys(daemons.sandbox, now)) <= 2  # at most one extra key
    again = rotate(daemons)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["recovered"] is True  # the journal told the second run where the first stopped
    final = stored(daemons)
    assert works(daemons.sandbox, final)
    assert [k["AccessKeyId"] for k in iam_keys(daemons.sandbox, final)] == [final.access_key_id]
    assert final.access_key_id != user.access_key_id
    assert daemons.store.get_session("rotation:user") is None


def test_two_keys_limit(daemons: DaemonFactory) -> None:
    user = setup_user(daemons)
    iam = daemons.sandbox.user_client("iam", user)
    other = iam.create_access_key()["AccessKey"]
    remember(other["SecretAccessKey"])
    refused = rotate(daemons)
    assert refused.returncode != 0 and "two access keys" in refused.stderr
    assert f"...{other['AccessKeyId'][-4:]}" in refused.stderr
    assert stored(daemons).access_key_id == user.access_key_id  # nothing changed
    iam.update_access_key(AccessKeyId=other["AccessKeyId"], Status="Inactive")
    done = rotate(daemons)
    assert done.returncode == 0, done.stderr
    new = stored(daemons)
    assert [k["AccessKeyId"] for k in iam_keys(daemons.sandbox, new)] == [new.access_key_id]


def test_mfa_policy_uses_exactly_one_code_without_a_daemon(daemons: DaemonFactory) -> None:
    setup_user(daemons, mfa=True)
    before = daemons.sandbox.admin.calls("GetSessionToken")
    done = rotate(daemons)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mfa_codes_used"] == 1
    assert daemons.sandbox.admin.calls("GetSessionToken") == before + 1
    assert works(daemons.sandbox, stored(daemons))


def test_keys_in_the_credentials_file_are_rewritten_in_place(daemons: DaemonFactory) -> None:
    sandbox = daemons.sandbox
    user = sandbox.new_user("file")
    remember(user.secret_access_key)
    daemons.write_config(USER_PROFILE)
    creds = daemons.aws / "credentials"
    others = "# my notes\n[other]\naws_access_key_id = AKIAOTHER00000000000\n"
    creds.write_text(
        f"{others}\n[user]\n# rotated by credd\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n"
    )
    done = rotate(daemons, AWS_SHARED_CREDENTIALS_FILE=str(creds))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored_in"] == "credentials file"
    text = creds.read_text()
    assert text.startswith(others) and "# rotated by credd" in text
    assert user.access_key_id not in text
    assert creds.stat().st_mode & 0o777 == 0o600
    new_id = text.split("[user]")[1].split("aws_access_key_id = ")[1].split()[0]
    new_secret = text.split("aws_secret_access_key = ")[1].split()[0]
    remember(new_secret)
    sts = sandbox.client("sts", new_id, new_secret)
    assert sts.get_caller_identity()["Arn"] == user.arn
    assert daemons.store.get_long_term_keys("user") is None  # never copied into the store


def test_due_rotates_only_keys_past_their_max_age(daemons: DaemonFactory) -> None:
    from datetime import datetime, timedelta, timezone

    from credd.actions.rotation import remember_key_age

    sandbox = daemons.sandbox
    old, young = sandbox.new_user("due"), sandbox.new_user("young")
    remember(old.secret_access_key, young.secret_access_key)
    daemons.store.set_long_term_keys("user", old.access_key_id, old.secret_access_key)
    daemons.store.set_long_term_keys("young", young.access_key_id, young.secret_access_key)
    now = datetime.now(timezone.utc)
    remember_key_age(daemons.store, "user", old.access_key_id, now - timedelta(days=61))
    remember_key_age(daemons.store, "young", young.access_key_id, now - timedelta(days=5))
    daemons.write_config(
        USER_PROFILE + "credd_key_max_age = 60d\n"
        "[profile young]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        "credd_key_max_age = 60d\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "credd.cli", "keys", "rotate", "--due"],
        env=daemons.env(), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stored(daemons).access_key_id != old.access_key_id
    kept = daemons.store.get_long_term_keys("young")
    assert kept is not None and kept.access_key_id == young.access_key_id
