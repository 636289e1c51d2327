"""Unmodified SSO peers against the sandbox's Identity Center: botocore's own SSOTokenProvider
and SSOProvider (in a boto3 program) and the AWS CLI v1 from PyPI, configured only through
the shared config file (``[sso-session]``, an SSO profile, ``[services]`` endpoints or
``AWS_ENDPOINT_URL_*``) and a token cache file written the way the AWS CLI writes it.

They run as separate processes, as users run them: botocore fixes its SSO cache directory from
``HOME`` when it is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fixtures.sandbox import SandboxHandle, unique_name
from tests.sandbox.test_sso_oidc import ROLE, SCOPE, Idc, code, make_idc

pytestmark = pytest.mark.integration

PROFILE = "sso-dev"
SESSION = "corp"
BOTO3_PROGRAM = """
import boto3, json
session = boto3.Session(profile_name={profile!r})
ident = session.client("sts").get_caller_identity()
buckets = [b["Name"] for b in session.client("s3").list_buckets()["Buckets"]]
print(json.dumps({{"arn": ident["Arn"], "buckets": buckets}}))
"""


@pytest.fixture
def idc(sandbox_clean: SandboxHandle) -> Idc:
    return make_idc(sandbox_clean)


def _cli_time(value: object) -> str:
    """How the AWS CLI serialises datetimes in its SSO cache (awscli/customizations/sso)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(type(value))


def cache_path(home: Path) -> Path:
    return (
        home
        / ".aws"
        / "sso"
        / "cache"
        / f"{hashlib.sha1(SESSION.encode(), usedforsecurity=False).hexdigest()}.json"
    )


def cli_login(idc: Idc, home: Path, expires_in: timedelta) -> dict[str, Any]:
    """A device-code login as `aws sso login --sso-session corp` makes one, cached as it caches.

    ``expires_in`` sets the cached ``expiresAt`` (real time): under 15 minutes makes botocore
    refresh the token before using it.
    """
    registration = idc.register(scopes=(SCOPE,))
    token = idc.device_token(registration)
    cached = {
        "startUrl": idc.start_url,
        "region": "us-east-1",
        "accessToken": token["accessToken"],
        "expiresAt": datetime.now(timezone.utc) + expires_in,
        "clientId": registration["clientId"],
        "clientSecret": registration["clientSecret"],
        "registrationExpiresAt": datetime.fromtimestamp(
            registration["clientSecretExpiresAt"], timezone.utc
        ),
        "refreshToken": token["refreshToken"],
    }
    path = cache_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(cached, default=_cli_time))
    return token


def write_config(idc: Idc, *, services: bool) -> None:
    lines = [
        f"[profile {PROFILE}]",
        f"sso_session = {SESSION}",
        f"sso_account_id = {idc.assignment.account_id}",
        f"sso_role_name = {ROLE}",
        "region = us-east-1",
        *(["services = sandbox"] if services else []),
        "",
        f"[sso-session {SESSION}]",
        f"sso_start_url = {idc.start_url}",
        "sso_region = us-east-1",
        f"sso_registration_scopes = {SCOPE}",
        "",
    ]
    if services:
        lines.append("[services sandbox]")
        for service in ("sso", "sso_oidc", "sts", "s3"):
            lines += [f"{service} =", f"  endpoint_url = {idc.sb.endpoint}"]
    path = Path(os.environ["AWS_CONFIG_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def run(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def make_bucket(idc: Idc, token: dict[str, Any]) -> str:
    creds = idc.role_credentials(token["accessToken"])
    s3 = idc.sb.client("s3", creds["accessKeyId"], creds["secretAccessKey"], creds["sessionToken"])
    bucket = unique_name("peer")
    s3.create_bucket(Bucket=bucket)
    return bucket


@pytest.mark.parametrize("endpoints", ["services", "env"])
def test_botocore_refreshes_the_cli_token_and_gets_role_credentials(
    idc: Idc, clean_env: Path, monkeypatch: pytest.MonkeyPatch, endpoints: str
) -> None:
    write_config(idc, services=endpoints == "services")
    if endpoints == "env":
        for name in ("SSO", "SSO_OIDC", "STS", "S3"):
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{name}", idc.sb.endpoint)
    token = cli_login(idc, clean_env, timedelta(minutes=5))
    bucket = make_bucket(idc, token)
    idc.sb.admin.reset()  # count only what the peer does
    out = run([sys.executable, "-c", BOTO3_PROGRAM.format(profile=PROFILE)])
    result = json.loads(out)
    assert result["arn"].endswith(f"/{idc.user.name}") and ":assumed-role/AWSReservedSSO_" in out
    assert bucket in result["buckets"]
    calls = idc.sb.admin.calls()
    assert calls["CreateToken:refresh_token"] == 1 and calls["GetRoleCredentials"] == 1
    cached = json.loads(cache_path(clean_env).read_text())
    assert cached["refreshToken"] != token["refreshToken"]  # botocore wrote the rotated one back
    assert cached["accessToken"] != token["accessToken"]
    expires = datetime.strptime(cached["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")
    assert expires.replace(tzinfo=timezone.utc) > datetime.now(timezone.utc) + timedelta(minutes=50)
    with pytest.raises(ClientError) as exc:
        idc.refresh(token)  # the token botocore replaced is dead...
    assert code(exc) == "InvalidGrantException"
    assert idc.refresh({**token, "refreshToken": cached["refreshToken"]})  # ...its successor works


def test_aws_cli_v1_runs_on_a_cached_sso_token(idc: Idc, clean_env: Path) -> None:
    aws = Path(sys.executable).with_name("aws")
    assert aws.exists(), "the AWS CLI v1 comes with the test extra: pip install -e '.[test]'"
    write_config(idc, services=True)
    token = cli_login(idc, clean_env, timedelta(minutes=5))
    bucket = make_bucket(idc, token)
    idc.sb.admin.reset()
    ident = json.loads(run([str(aws), "sts", "get-caller-identity", "--profile", PROFILE]))
    assert ident["Arn"].endswith(f"/{idc.user.name}")
    assert bucket in run([str(aws), "s3", "ls", "--profile", PROFILE])
    calls = idc.sb.admin.calls()
    assert calls["CreateToken:refresh_token"] == 1  # refreshed once, then read from the cache
    cached = json.loads(cache_path(clean_env).read_text())
    assert cached["refreshToken"] != token["refreshToken"]


def test_an_expired_registration_leaves_the_peer_asking_for_a_login(
    idc: Idc, clean_env: Path
) -> None:
    write_config(idc, services=True)
    token = cli_login(idc, clean_env, timedelta(minutes=-1))  # access token already expired
    idc.sb.admin.expire_sso_registration(token["clientId"])
    result = subprocess.run(
        [sys.executable, "-c", BOTO3_PROGRAM.format(profile=PROFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert result.returncode != 0
    assert "Token has expired and refresh failed" in result.stderr
    assert idc.sb.admin.calls("CreateToken:refresh_token") == 1  # tried once, refused
