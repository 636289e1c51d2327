"""``credd login``: the loopback redirect server, PKCE, and the flows against the sandbox's
IAM Identity Center (device code approved through the admin API; PKCE with the browser step
driven by urllib), refresh-token rotation, and interop with botocore."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.errors import LoginRequired
from credd.sso.cache import TokenCache
from credd.sso.login import LoginFlow, LoginIo, pkce_pair
from credd.sso.loopback import CALLBACK_PATH, CallbackServer
from credd.sso.settings import load_full_config, resolve_profile
from credd.sso.tokens import TokenStore
from credd.testing.clock import FakeClock
from credd_sandbox.sso_client import SsoInstance, SsoUser
from tests.fixtures.daemon import remember
from tests.fixtures.sandbox import SandboxHandle, unique_name


def _get(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_pkce_pair_is_s256_without_padding() -> None:
    verifier, challenge = pkce_pair()
    assert len(verifier) == 64 and "=" not in challenge
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).decode().rstrip("=") == challenge
    assert pkce_pair()[0] != verifier


def test_loopback_takes_one_matching_redirect_only() -> None:
    with CallbackServer("the-state") as server:
        base = f"http://127.0.0.1:{server.port}"
        assert server.redirect_uri == base + CALLBACK_PATH
        assert _get(base + "/favicon.ico") == 404
        assert _get(base + CALLBACK_PATH + "?code=forged&state=other") == 400
        assert server.wait(0.01) is None  # a forged state does not end the wait
        assert _get(base + CALLBACK_PATH + "?code=the-code&state=the-state") == 200
        result = server.wait(5)
        assert result is not None and result.code == "the-code" and result.error is None
        assert _get(base + CALLBACK_PATH + "?code=second&state=the-state") == 404


def test_loopback_reports_a_refusal() -> None:
    with CallbackServer("s") as server:
        assert _get(server.redirect_uri + "?error=access_denied&state=s") == 200
        result = server.wait(5)
    assert result is not None and result.code is None and result.error == "access_denied"


def test_loopback_binds_loopback_only() -> None:
    with CallbackServer("s") as server:
        sock: Any = server._server.socket
        assert sock.getsockname()[0] == "127.0.0.1"


def test_login_command_is_registered() -> None:
    import argparse

    from credd.cli.login import cmd_login, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["login", "dev", "--device-code", "--no-browser", "--timeout", "30"])
    assert args.func.__wrapped__ is cmd_login and args.device_code and args.no_browser
    assert args.timeout == 30 and args.profile == "dev" and args.sso_session is None


def test_login_refuses_a_profile_without_sso(
    clean_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from credd.cli.login import register

    config = clean_env / ".aws" / "config"
    config.parent.mkdir(parents=True)
    config.write_text("[profile keys]\nregion = eu-west-1\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["login", "keys"])
    assert args.func(args) == 3
    assert "does not use IAM Identity Center" in capsys.readouterr().err
    args = parser.parse_args(["login", "--sso-session", "nope"])
    assert args.func(args) == 3
    assert not (clean_env / ".aws" / "sso").exists()


# -- against the sandbox's IAM Identity Center ----------------------------------------------


@dataclass
class Sso:
    sandbox: SandboxHandle
    instance: SsoInstance
    user: SsoUser
    home: Path
    clock: FakeClock
    cache: TokenCache
    said: list[str]

    @property
    def admin(self) -> Any:
        return self.sandbox.admin

    def flow(self, **kw: Any) -> LoginFlow:
        target = resolve_profile("dev", load_full_config())
        io = kw.pop("io", None) or LoginIo(say=self.said.append, open_browser=lambda url: False)
        return LoginFlow(
            target, profile="dev", cache=self.cache, clock=self.clock, io=io, timeout=30, **kw
        )

    def store(self) -> TokenStore:
        return TokenStore(self.cache, clock=self.clock)

    def advance(self, seconds: float) -> None:
        self.admin.advance(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sso(sandbox_clean: SandboxHandle, clean_env: Path) -> Sso:
    admin = sandbox_clean.admin
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("sso"), start_url=instance)
    admin.assign_sso_role(user, "Reader", start_url=instance)
    endpoint = sandbox_clean.endpoint
    config = clean_env / ".aws" / "config"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "[profile dev]\nsso_session = dev\nsso_account_id = 123456789012\n"
        "sso_role_name = Reader\nregion = us-east-1\nservices = sandbox\ncredd = true\n\n"
        f"[sso-session dev]\nsso_start_url = {instance.start_url}\nsso_region = us-east-1\n"
        "sso_registration_scopes = sso:account:access\n\n"
        "[services sandbox]\n"
        + "".join(f"{svc} =\n  endpoint_url = {endpoint}\n" for svc in ("sso_oidc", "sso", "sts"))
    )
    clock = FakeClock(admin.now())
    cache = TokenCache(clean_env / ".aws" / "sso" / "cache", clock=clock)
    return Sso(sandbox_clean, instance, user, clean_env, clock, cache, [])


def _device_login(sso: Sso) -> Any:
    def say(text: str) -> None:
        sso.said.append(text)
        sso.admin.approve_device(user=sso.user, start_url=sso.instance)

    return sso.flow(io=LoginIo(say=say, open_browser=lambda url: False)).device_code()


def _botocore_subprocess(sso: Sso, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(sso.home), AWS_CONFIG_FILE=str(sso.home / ".aws" / "config"))
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(sso.home / ".aws" / "credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


WHO_AM_I = (
    "import boto3\n"
    "print(boto3.Session(profile_name='dev').client('sts').get_caller_identity()['Arn'])\n"
)


def test_device_code_login_is_shared_with_botocore(sso: Sso) -> None:
    token = _device_login(sso)
    remember(token.access_token, token.refresh_token, token.client_secret)
    assert token.has_refresh
    assert any("enter the code" in s for s in sso.said)
    leaked = any(token.access_token in s for s in sso.said)
    assert not leaked
    raw = json.loads(sso.cache.path(resolve_profile("dev", load_full_config())).read_text())
    assert {"accessToken", "expiresAt", "refreshToken", "clientId", "clientSecret"} <= set(raw)
    reg = sso.cache.read_registration(resolve_profile("dev", load_full_config()))
    assert reg is not None and reg.scopes == ("sso:account:access",) and not reg.for_auth_code
    assert "Reader" in _botocore_subprocess(sso, WHO_AM_I)


def test_pkce_login_through_the_loopback_redirect(sso: Sso) -> None:
    opened: list[str] = []

    def browser(url: str) -> bool:  # the person's browser: open the page, get approved, follow
        opened.append(url)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as resp:
            request_id = resp.headers["x-sandbox-request-id"]
        redirect = sso.admin.approve_authorize(request_id, user=sso.user)
        assert _get(redirect) == 200
        return True

    token = sso.flow(io=LoginIo(say=sso.said.append, open_browser=browser)).authorization_code()
    remember(token.access_token, token.refresh_token, token.client_secret)
    assert token.has_refresh
    assert "code_challenge_method=S256" in opened[0] and "state=" in opened[0]
    assert opened[0].startswith(sso.sandbox.endpoint + "/authorize?")
    reg = sso.cache.read_registration(resolve_profile("dev", load_full_config()))
    assert reg is not None and reg.for_auth_code
    # a second login reuses the registration
    clients = len(sso.admin.sso_clients())
    sso.admin.sso_auto_approve(sso.user, start_url=sso.instance, count=1)

    def auto(url: str) -> bool:
        assert _get(url) == 200  # /authorize redirects straight to the loopback
        return True

    sso.flow(io=LoginIo(say=sso.said.append, open_browser=auto)).authorization_code()
    assert len(sso.admin.sso_clients()) == clients


def test_refresh_rotates_and_writes_the_refresh_token_back(sso: Sso) -> None:
    first = _device_login(sso)
    target = resolve_profile("dev", load_full_config())
    store = sso.store()
    assert store.refresh(target) == sso.cache.read(target)  # not due yet: no call
    for _ in range(3):
        sso.advance(45 * 60)
        got = store.access_token(target, profile="dev")
        remember(got.access_token, got.refresh_token)
    rotated = got.refresh_token != first.refresh_token
    on_disk = sso.cache.read(target)
    written = on_disk is not None and on_disk.refresh_token == got.refresh_token
    assert rotated and written  # (no secret in the assertion message)
    [session] = sso.admin.sso_sessions(user=sso.user)
    assert session["rotations"] == 3


@pytest.mark.parametrize("how", ["revoke", "expire-registration"])
def test_a_dead_login_means_login_required(sso: Sso, how: str) -> None:
    token = _device_login(sso)
    target = resolve_profile("dev", load_full_config())
    if how == "revoke":
        assert sso.admin.revoke_sso_sessions(user=sso.user) == 1
    else:
        assert token.client_id is not None
        sso.admin.expire_sso_registration(token.client_id)
    sso.advance(45 * 60)
    with pytest.raises(LoginRequired) as info:
        sso.store().refresh(target, profile="dev")
    assert info.value.hint == "run: credd login dev"
    leaked = token.refresh_token is None or token.refresh_token in str(info.value)
    assert not leaked


def test_a_corrupt_cache_file_stops_login_and_is_left_alone(sso: Sso) -> None:
    target = resolve_profile("dev", load_full_config())
    path = sso.cache.path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"{garbage")
    from credd.errors import SsoCacheError

    with pytest.raises(SsoCacheError, match="left it untouched"):
        _device_login(sso)
    assert path.read_bytes() == b"{garbage"


def test_a_token_the_aws_cli_wrote_is_refreshed_and_botocore_needs_no_login(sso: Sso) -> None:
    """Log in as the AWS CLI does (its calls, its JSONFileCache writer), then let credd refresh."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.tokens import _sso_json_dumps
    from botocore.utils import JSONFileCache, SSOTokenLoader

    client = botocore.session.Session().create_client(
        "sso-oidc",
        endpoint_url=sso.sandbox.endpoint,
        config=Config(region_name="us-east-1", signature_version=UNSIGNED),
    )
    reg = client.register_client(
        clientName="botocore-client-dev", clientType="public", scopes=["sso:account:access"]
    )
    auth = client.start_device_authorization(
        clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=sso.instance.start_url
    )
    sso.admin.approve_device(auth["userCode"], user=sso.user)
    reply = client.create_token(
        grantType="urn:ietf:params:oauth:grant-type:device_code",
        clientId=reg["clientId"],
        clientSecret=reg["clientSecret"],
        deviceCode=auth["deviceCode"],
    )
    remember(reply["accessToken"], reply.get("refreshToken"), reg["clientSecret"])
    from datetime import datetime

    from credd.clock import UTC

    cli_entry = {
        "startUrl": sso.instance.start_url,
        "region": "us-east-1",
        "accessToken": reply["accessToken"],
        "expiresAt": sso.clock.now() + timedelta(seconds=reply["expiresIn"]),
        "clientId": reg["clientId"],
        "clientSecret": reg["clientSecret"],
        "registrationExpiresAt": datetime.fromtimestamp(reg["clientSecretExpiresAt"], UTC),
        "refreshToken": reply["refreshToken"],
    }
    cache = JSONFileCache(str(sso.cache.directory), dumps_func=_sso_json_dumps)
    SSOTokenLoader(cache=cache).save_token(sso.instance.start_url, cli_entry, session_name="dev")

    sso.advance(50 * 60)  # due for credd, 10 min left
    target = resolve_profile("dev", load_full_config())
    fresh = sso.store().access_token(target, profile="dev")
    remember(fresh.access_token, fresh.refresh_token)
    refreshed = fresh.access_token != reply["accessToken"]
    rotated = fresh.refresh_token != reply["refreshToken"]
    assert refreshed and rotated  # (no secret in the assertion message)
    assert "Reader" in _botocore_subprocess(sso, WHO_AM_I)


def test_the_daemon_being_down_is_reported_not_fatal(
    sso: Sso, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from credd.cli.io import Io
    from credd.cli.login import register

    def browser(url: str) -> bool:
        assert _get(url) == 200
        return True

    sso.admin.sso_auto_approve(sso.user, start_url=sso.instance, count=1)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["login", "dev", "--socket", str(sso.home / "nowhere.sock"), "--timeout", "30"]
    )
    assert args.func(args, Io(open_browser=browser)) == 0
    out = capsys.readouterr().out
    assert "Signed in to dev (profile dev)" in out
    assert "daemon is not running" in out
    token = TokenCache().read(resolve_profile("dev", load_full_config()))
    assert token is not None
    leaked = token.access_token in out
    assert not leaked
    remember(token.access_token, token.refresh_token, token.client_secret)
