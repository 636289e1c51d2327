"""``credd presign``: the signer honours the lifetime or says why not; URLs work with curl against
the sandbox's S3 and die at their expiry on the sandbox clock; 1,000 URLs from one list."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from credd.actions.presign import LifetimeUnavailable, Signer, parse_lifetime, read_targets
from credd.clock import isoformat_z
from credd.errors import UsageError
from credd.models import Credentials
from credd.testing.clock import FakeClock
from tests.fixtures.daemon import DaemonFactory, remember
from tests.fixtures.sandbox import unique_name
from tests.sandbox.test_presigned import curl


def test_lifetimes() -> None:
    assert parse_lifetime("7d") == 604_800
    assert parse_lifetime("1d12h") == 129_600
    assert parse_lifetime("90m") == 5400
    assert parse_lifetime("3600") == 3600
    for bad in ("8d", "604801", "0", "soon", ""):
        with pytest.raises(UsageError):
            parse_lifetime(bad)


def test_a_list_is_checked_whole_before_anything_is_signed() -> None:
    assert read_targets(["# cohort\n", "s3://b-1/x/y.bedpe\n", "\n", "s3://b-1/z\n"]) == [
        ("b-1", "x/y.bedpe"),
        ("b-1", "z"),
    ]
    with pytest.raises(UsageError, match="line 2"):
        read_targets(["s3://b-1/x\n", "https://b-1/y\n"])


def test_session_credentials_refuse_or_cap_loudly() -> None:
    clock = FakeClock()
    creds = Credentials("ASIAEXAMPLE0000000000", "s" * 40, "t", clock.now() + timedelta(hours=1))
    signer = Signer("worker", creds, "role session credentials", creds.expiration)
    with pytest.raises(LifetimeUnavailable) as refused:
        signer.lifetime(604_800, clock.now(), cap=False)
    assert "expire at " + isoformat_z(creds.expiration) in refused.value.message  # type: ignore[operator]
    assert "long-term keys" in str(refused.value)
    seconds, warning = signer.lifetime(604_800, clock.now(), cap=True)
    assert seconds == 3600 and warning and "capped" in warning
    assert signer.lifetime(1800, clock.now(), cap=False) == (1800, None)
    keys = Signer("user", Credentials("AKIAEXAMPLE0000000000", "s" * 40))
    assert keys.lifetime(604_800, clock.now(), cap=False) == (604_800, None)


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_presign_end_to_end(daemons: DaemonFactory, tmp_path: Path) -> None:
    sandbox = daemons.sandbox
    user, dev = sandbox.new_user_with_mfa("presign")
    remember(user.secret_access_key, dev.seed)
    daemons.store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("user", dev.seed)
    role = sandbox.admin.create_role(f"reader-{user.name}", trusted=[user.arn])
    sock = daemons.home / "run" / "credd.sock"
    daemons.write_config(
        "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"[profile reader]\nrole_arn = {role.arn}\nsource_profile = user\n"
        "credd = true\nregion = us-east-1\nservices = sandbox\n"
        "[profile app]\nregion = us-east-1\nservices = sandbox\n"
        f"credential_process = {sys.executable} -m credd.cli get reader --socket {sock}\n"
    )
    s3 = sandbox.user_client("s3", user)
    bucket = unique_name("cohort")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="sample-1.sv.bedpe", Body=b"sv data")
    d = daemons.start()
    d.wait_state("reader", "fresh")

    # long-term keys: 7 days, works with curl, dies after 7 days on the sandbox clock
    done = d.run("presign", f"s3://{bucket}/sample-1.sv.bedpe", "--expires", "7d",
                 "--profile", "user", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    signature = parse_qs(urlsplit(doc["url"]).query)["X-Amz-Signature"][0]
    remember(signature)  # a bearer secret: never in a log (the run-wide scan checks)
    leaked = signature in done.stderr  # a bool: a failure must not show the signature
    assert not leaked, "a URL's signature is on stderr"
    assert doc["signed_with"] == "long-term keys" and doc["expires_in_seconds"] > 604_700
    assert curl(doc["url"]) == (200, "sv data")
    assert user.secret_access_key not in done.stdout + done.stderr

    # role session (1 h) asked for 7 days: refused with the real validity; --cap signs for 1 h
    refused = d.run("presign", f"s3://{bucket}/sample-1.sv.bedpe", "--expires", "7d",
                    "--profile", "app")  # fmt: skip
    assert refused.returncode == 3 and refused.stdout == ""
    assert "role session credentials that expire at" in refused.stderr
    assert "--cap" in refused.stderr
    capped = d.run("presign", f"s3://{bucket}/sample-1.sv.bedpe", "--expires", "7d",
                   "--profile", "app", "--cap", "--json")  # fmt: skip
    assert capped.returncode == 0, capped.stderr
    assert "capped" in capped.stderr
    short = json.loads(capped.stdout)
    assert short["expires_in_seconds"] <= 3600 and short["signed_with"].startswith("role")
    assert curl(short["url"])[0] == 200
    # the MFA session (12 h) asked for 7 days, forced with --session: refused too
    sess = d.run("presign", f"s3://{bucket}/x", "--expires", "7d", "--profile", "user",
                 "--session")  # fmt: skip
    assert sess.returncode == 3 and "STS session credentials that expire at" in sess.stderr

    # 1,000 URLs from a list, one client; each carries the 7-day lifetime
    listing = tmp_path / "cohort.txt"
    listing.write_text("".join(f"s3://{bucket}/sample-{i}.bedpe\n" for i in range(1000)))
    many = d.run("presign", "--from-file", str(listing), "--expires", "7d", "--profile", "user")
    assert many.returncode == 0, many.stderr
    urls = many.stdout.splitlines()
    assert len(urls) == 1000 and len(set(urls)) == 1000
    assert all("X-Amz-Expires=604800" in u for u in urls)
    assert "1000 URL(s) valid until" in many.stderr

    sandbox.admin.advance(604_801)
    status, body = curl(doc["url"])
    assert status == 403 and "Request has expired" in body


class _Config:
    def __init__(self, profiles: dict[str, dict[str, str]], managed: set[str]) -> None:
        self.profiles = profiles
        self.managed = {name: object() for name in managed}

    def require_profile(self, name: str) -> dict[str, str]:
        return self.profiles[name]


class _Store:
    def __init__(self, keys: dict[str, Credentials]) -> None:
        self.keys = keys

    def get_long_term_keys(self, name: str) -> Credentials | None:
        return self.keys.get(name)


def test_the_signer_follows_the_profile() -> None:
    from credd.actions.presign import choose_signer
    from credd.errors import ConfigError

    clock = FakeClock()
    session = Credentials("ASIAEXAMPLE0000000000", "s" * 40, "t", clock.now() + timedelta(hours=1))
    served: list[str] = []

    def daemon(name: str) -> dict[str, object]:
        served.append(name)
        return session.to_process_json()

    config = _Config(
        {
            "user": {"credd": "true"},
            "role": {"role_arn": "arn:aws:iam::123456789012:role/r", "source_profile": "user"},
            "sso": {"sso_session": "corp", "sso_account_id": "1", "sso_role_name": "R"},
            "app": {"credential_process": "credd get role"},
            "pasted": {
                "aws_access_key_id": "ASIAPASTED0000000000",
                "aws_secret_access_key": "x",
                "aws_session_token": "t",
            },
            "bare": {"region": "us-east-1"},
        },
        {"user", "role", "sso"},
    )
    store = _Store({"user": Credentials("AKIAUSER000000000000", "k" * 40)})
    pick = lambda name, **kw: choose_signer(  # noqa: E731
        name, config=config, store=store, daemon_credentials=daemon, **kw
    )
    assert pick("user", use_session=False).valid_until is None  # long-term keys: 7 days
    assert pick("user", use_session=True).kind == "STS session credentials"
    assert pick("role", use_session=False).kind == "role session credentials"
    assert pick("sso", use_session=False).kind.startswith("IAM Identity Center")
    app = pick("app", use_session=False)
    assert app.kind == "role session credentials" and served[-1] == "role"
    with pytest.raises(LifetimeUnavailable, match="cannot know"):
        pick("pasted", use_session=False)
    with pytest.raises(ConfigError, match="does not serve it"):
        pick("bare", use_session=False)
