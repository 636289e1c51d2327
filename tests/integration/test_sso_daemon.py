"""IAM Identity Center through the real daemon, against the sandbox, with botocore and the AWS CLI
v1 as peers sharing ~/.aws/sso/cache."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.clock import UTC
from tests.fixtures.daemon import DaemonFactory, remember, services_section
from tests.fixtures.sandbox import SandboxHandle, unique_name

pytestmark = pytest.mark.integration
CLI_V1 = str(Path(sys.executable).parent / "aws")


def sso_config(endpoint: str, start_url: str, role: str = "Reader") -> str:
    return (
        "[profile dev]\nsso_session = dev\nsso_account_id = 123456789012\n"
        f"sso_role_name = {role}\nregion = us-east-1\nservices = sandbox\ncredd = true\n\n"
        f"[sso-session dev]\nsso_start_url = {start_url}\nsso_region = us-east-1\n"
        "sso_registration_scopes = sso:account:access\n\n"
        + services_section(endpoint).replace(
            "[services sandbox]\n",
            "[services sandbox]\n"
            + f"sso_oidc =\n  endpoint_url = {endpoint}\n"
            + f"sso =\n  endpoint_url = {endpoint}\n",
        )
    )


def cli_login(
    sandbox: SandboxHandle, start_url: str, user: Any, cache_dir: Path, expires_in: timedelta
) -> dict[str, Any]:
    """Log in the way the AWS CLI does (its calls, botocore's JSONFileCache writer)."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.tokens import _sso_json_dumps
    from botocore.utils import JSONFileCache, SSOTokenLoader

    client = botocore.session.Session().create_client(
        "sso-oidc",
        endpoint_url=sandbox.endpoint,
        config=Config(region_name="us-east-1", signature_version=UNSIGNED),
    )
    reg = client.register_client(
        clientName="botocore-client-dev", clientType="public", scopes=["sso:account:access"]
    )
    auth = client.start_device_authorization(
        clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=start_url
    )
    sandbox.admin.approve_device(auth["userCode"], user=user)
    reply = client.create_token(
        grantType="urn:ietf:params:oauth:grant-type:device_code",
        clientId=reg["clientId"],
        clientSecret=reg["clientSecret"],
        deviceCode=auth["deviceCode"],
    )
    remember(reply["accessToken"], reply.get("refreshToken"), reg["clientSecret"])
    entry = {
        "startUrl": start_url,
        "region": "us-east-1",
        "accessToken": reply["accessToken"],
        "expiresAt": datetime.now(UTC) + expires_in,
        "clientId": reg["clientId"],
        "clientSecret": reg["clientSecret"],
        "registrationExpiresAt": datetime.fromtimestamp(reg["clientSecretExpiresAt"], UTC),
        "refreshToken": reply["refreshToken"],
    }
    cache = JSONFileCache(str(cache_dir), dumps_func=_sso_json_dumps)
    SSOTokenLoader(cache=cache).save_token(start_url, entry, session_name="dev")
    return entry


def cache_file(home: Path) -> Path:
    import hashlib

    return home / ".aws" / "sso" / "cache" / (hashlib.sha1(b"dev").hexdigest() + ".json")  # noqa: S324


def setup(daemons: DaemonFactory, role: str = "Reader") -> tuple[Any, Any]:
    admin = daemons.sandbox.admin
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("sso"), start_url=instance)
    admin.assign_sso_role(user, "Reader", start_url=instance)
    daemons.write_config(
        sso_config(daemons.sandbox.endpoint, instance.start_url, role).split("[services sandbox]")[
            0
        ]
    )
    (daemons.aws / "config").write_text(
        sso_config(daemons.sandbox.endpoint, instance.start_url, role)
    )
    return instance, user


def test_a_cli_token_is_refreshed_and_served_and_the_cli_v1_needs_no_login(
    daemons: DaemonFactory,
) -> None:
    instance, user = setup(daemons)
    first = cli_login(
        daemons.sandbox,
        instance.start_url,
        user,
        daemons.home / ".aws" / "sso" / "cache",
        timedelta(minutes=10),
    )  # due: credd refreshes it now
    d = daemons.start()
    p = d.wait_state("dev", "fresh")
    assert p["kind"] == "sso" and "IAM Identity Center login of sso-session 'dev'" in p["plan"]
    assert "refresh token ends" in p["plan"]
    creds = d.get("dev")
    assert creds["AccountId"] == "123456789012"
    cached = json.loads(cache_file(daemons.home).read_text())
    remember(cached["accessToken"], cached["refreshToken"])
    assert cached["refreshToken"] != first["refreshToken"]  # rotated and written back
    assert cached["expiresAt"].endswith("Z")
    assert daemons.sandbox.admin.calls("CreateToken:refresh_token") == 1
    # the AWS CLI v1 (botocore) uses the token credd refreshed: no login
    env = daemons.env()
    done = subprocess.run(
        [CLI_V1, "sts", "get-caller-identity", "--profile", "dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    assert "Reader" in json.loads(done.stdout)["Arn"]
    done = subprocess.run(
        [CLI_V1, "s3", "ls", "--profile", "dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    # and the short-lived profile in the credentials file, for tools that only read files
    assert "credd_managed_by = dev" in (daemons.aws / "credentials").read_text()


def test_login_required_then_credd_login_is_picked_up_at_once(daemons: DaemonFactory) -> None:
    instance, user = setup(daemons)
    d = daemons.start()
    p = d.wait_state("dev", "login_required")
    assert "credd login dev" in p["waiting_for"]
    got = d.run("get", "dev")
    assert got.returncode == 4 and "credd login dev" in got.stderr
    assert got.stderr.count("\n") == 1
    daemons.sandbox.admin.sso_auto_approve(user, start_url=instance, count=1)
    done = d.run("login", "dev", "--device-code", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert d.profile("dev")["state"] == "fresh"  # told by credd login, no polling needed
    assert d.get("dev")["AccessKeyId"].startswith("ASIA")
    for secret in (json.loads(cache_file(daemons.home).read_text())["accessToken"],):
        remember(secret)
        assert secret not in done.stdout + done.stderr


def test_revoked_login_is_login_required_without_a_retry_storm(daemons: DaemonFactory) -> None:
    instance, user = setup(daemons)
    cli_login(
        daemons.sandbox,
        instance.start_url,
        user,
        daemons.home / ".aws" / "sso" / "cache",
        timedelta(minutes=10),
    )
    daemons.sandbox.admin.revoke_sso_sessions(user=user)
    d = daemons.start()
    p = d.wait_state("dev", "login_required")
    assert "credd login dev" in p["waiting_for"]
    assert d.run("refresh", "dev").returncode == 1
    assert d.run("refresh", "dev").returncode == 1
    # the refused refresh token is never sent again; the browser is never opened by the daemon
    assert daemons.sandbox.admin.calls("CreateToken:refresh_token") == 1


@pytest.mark.parametrize("case", ["unassigned", "corrupt", "portal_down", "expired_registration"])
def test_bad_sso_situations_are_clear(daemons: DaemonFactory, case: str) -> None:
    instance, user = setup(daemons, role="Nope" if case == "unassigned" else "Reader")
    cache_dir = daemons.home / ".aws" / "sso" / "cache"
    entry = cli_login(
        daemons.sandbox,
        instance.start_url,
        user,
        cache_dir,
        timedelta(minutes=10 if case == "expired_registration" else 50),
    )
    if case == "corrupt":
        cache_file(daemons.home).write_text('{"startUrl": "x", "accessTok')
    if case == "portal_down":
        daemons.sandbox.admin.set_down(True, services=["sso"])
    if case == "expired_registration":
        for client in daemons.sandbox.admin.sso_clients():
            if client.get("client_id", client.get("clientId")) == entry["clientId"]:
                daemons.sandbox.admin.expire_sso_registration(entry["clientId"])
    before = cache_file(daemons.home).read_bytes()
    d = daemons.start()
    expected = {
        "unassigned": ("error", "aws_access_denied", "sso_role_name"),
        "corrupt": ("error", "sso_cache_error", ""),
        "portal_down": ("backoff", "aws_unreachable", ""),
        "expired_registration": ("login_required", None, "credd login dev"),
    }[case]
    p = d.wait_state("dev", expected[0])
    if expected[1]:
        assert p["error"]["code"] == expected[1], p
    assert expected[2] in json.dumps(p)
    if case == "corrupt":
        assert cache_file(daemons.home).read_bytes() == before  # left alone


def test_credd_and_botocore_refreshing_at_once_never_lose_the_refresh_token(
    daemons: DaemonFactory,
) -> None:
    """Both refresh the same cached login concurrently, ten rounds; afterwards the refresh token
    in the file still works (a lost rotation would leave a dead one there)."""
    from botocore.session import Session
    from botocore.tokens import SSOTokenProvider, _sso_json_dumps
    from botocore.utils import JSONFileCache

    from credd.sso import TokenStore, load_full_config, resolve_profile

    instance, user = setup(daemons)
    cache_dir = daemons.home / ".aws" / "sso" / "cache"
    cli_login(daemons.sandbox, instance.start_url, user, cache_dir, timedelta(minutes=5))
    store = TokenStore()  # the default cache: ~/.aws/sso/cache of this test's HOME
    assert store.cache.directory == cache_dir
    target = resolve_profile("dev", load_full_config())
    session = Session(profile="dev")
    provider = SSOTokenProvider(
        session, cache=JSONFileCache(str(cache_dir), dumps_func=_sso_json_dumps)
    )
    errors: list[BaseException] = []
    for _ in range(10):
        data = json.loads(cache_file(daemons.home).read_text())
        data["expiresAt"] = (datetime.now(UTC) + timedelta(minutes=5)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        cache_file(daemons.home).write_text(json.dumps(data))  # due for both again

        def ours() -> None:
            try:
                store.refresh(target, profile="dev", force=True)
            except BaseException as exc:
                errors.append(exc)

        def theirs() -> None:
            try:
                provider.load_token().get_frozen_token()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=ours), threading.Thread(target=theirs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    final = json.loads(cache_file(daemons.home).read_text())
    remember(final["accessToken"], final["refreshToken"])
    # whichever writer won each round, the refresh token left in the file is alive
    fresh = store.refresh(target, profile="dev", force=True)
    remember(fresh.access_token, fresh.refresh_token)
    assert fresh.refresh_token and fresh.refresh_token != final["refreshToken"]
    assert daemons.sandbox.admin.calls("CreateToken:refresh_token") >= 11
    assert not [e for e in errors if "login" in str(e).lower() and "required" in str(e).lower()]


@pytest.mark.timeout(300)
def test_a_simulated_week_needs_no_login_and_refreshes_on_schedule(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any
) -> None:
    """One login, then 7 days with 1 h access tokens and 1 h role credentials: the manager's
    fake clock and the sandbox's clock move together; refresh tokens rotate at every refresh."""
    from credd.aws import config as awsconfig
    from credd.aws.clients import ClientFactory
    from credd.engine.manager import Manager
    from credd.engine.scheduler import RefreshPolicy
    from credd.sources import build_source
    from credd.sources.mfa import CodeLedger
    from credd.sso import TokenCache, TokenStore
    from credd.testing.scheduler import ManualScheduler
    from tests.integration.test_roles import SandboxClock

    admin = sandbox_clean.admin
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("wk"), start_url=instance)
    admin.assign_sso_role(user, "Reader", start_url=instance, session_duration=3600)
    (clean_env / ".aws").mkdir(exist_ok=True)
    (clean_env / ".aws" / "config").write_text(
        sso_config(sandbox_clean.endpoint, instance.start_url)
    )
    cache_dir = clean_env / ".aws" / "sso" / "cache"
    clock = SandboxClock(sandbox_clean, datetime.now(UTC).replace(microsecond=0))
    cli_login(sandbox_clean, instance.start_url, user, cache_dir, timedelta(hours=1))
    tokens = TokenStore(TokenCache(cache_dir, clock=clock), clock=clock)
    clients, ledger = ClientFactory(), CodeLedger(clock)
    store = keyring_env.store()
    scheduler = ManualScheduler(clock)
    manager = Manager(
        source_factory=lambda node: build_source(
            node, secrets=store, clients=clients, ledger=ledger, clock=clock, tokens=tokens
        ),
        scheduler=scheduler,
        clock=clock,
        policy=RefreshPolicy(jitter=0.0),
        wait_timeout=30,
    )
    manager.load(awsconfig.load())
    manager.start()
    logins = 0
    for _ in range(7 * 24 * 6 + 1):  # 7 days and 10 min, in 10 min steps
        scheduler.run_for(600)
        state = manager.profile_status("dev").state
        logins += state == "login_required"
        creds = manager.credentials("dev")
        assert creds.expiration - clock.now() > timedelta(minutes=15)
    manager.stop()
    assert logins == 0
    # 1 h tokens refreshed 20 min ahead: every 40 min from t = 40 min -> 252; role credentials
    # every 40 min from t = 0 -> 253. Every refresh rotated the refresh token, none was lost.
    assert admin.calls("CreateToken:refresh_token") == 252
    assert admin.calls("GetRoleCredentials") == 253
    rotations = admin.sso_sessions(user=user)
    assert rotations, "the sandbox knows the login"


@pytest.mark.timeout(300)
def test_seed_000_notebook_and_upload_loop_across_token_and_role_expiry(
    daemons: DaemonFactory,
) -> None:
    """s3fs on credd's aiobotocore session, and a multipart upload loop through
    credential_process, while 40-second access tokens and 20-second role credentials expire
    (sandbox-only lifetimes; the daemon renews each at half its life)."""
    import time

    import s3fs

    from credd import client as credd_client

    admin = daemons.sandbox.admin
    admin.set_min_duration(20)
    admin.set_sso_settings(access_token_seconds=40)
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("nb"), start_url=instance)
    admin.assign_sso_role(user, "Reader", start_url=instance, session_duration=20)
    sock = daemons.home / "run" / "credd.sock"
    (daemons.aws / "config").write_text(
        sso_config(daemons.sandbox.endpoint, instance.start_url)
        + "\n[profile app]\nregion = us-east-1\nservices = sandbox\n"
        f"credential_process = {sys.executable} -m credd.cli get dev --socket {sock}\n"
    )
    cli_login(
        daemons.sandbox,
        instance.start_url,
        user,
        daemons.home / ".aws" / "sso" / "cache",
        timedelta(seconds=40),
    )
    d = daemons.start()
    d.wait_state("dev", "fresh")
    uploader = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "programs" / "uploader.py"),
            "--profile",
            "app",
            "--sessions",
            "4",
            "--seconds",
            "150",
        ],
        env=daemons.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    fs = s3fs.S3FileSystem(session=credd_client.aiobotocore_session("dev", socket=sock))
    bucket = unique_name("granules")
    fs.mkdir(bucket)
    with fs.open(f"{bucket}/folder/scene-1.tif", "wb") as f:
        f.write(b"pixels")
    reads = failures = 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and uploader.poll() is None:
        try:
            tifs = [p for p in fs.ls(f"{bucket}/folder/", refresh=True) if p.endswith(".tif")]
            assert fs.cat_file(tifs[0]) == b"pixels"
            with fs.open(f"{bucket}/out/{reads:04d}.nc", "wb") as f:
                f.write(b"netcdf")
            reads += 1
        except Exception as exc:
            failures += 1
            print("s3fs failure:", type(exc).__name__, exc)
        time.sleep(0.5)  # a notebook's pace between cells
    out, _ = uploader.communicate(timeout=120)
    summary = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])
    assert failures == 0 and reads >= 20
    assert summary["failed"] == 0 and summary["sessions"] >= 4, out[-2000:]
    assert admin.calls("CreateToken:refresh_token") >= 1  # the access token was renewed too
    assert admin.calls("GetRoleCredentials") >= 4


def test_a_role_chained_on_an_sso_profile(daemons: DaemonFactory) -> None:
    admin = daemons.sandbox.admin
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("ch"), start_url=instance)
    assignment = admin.assign_sso_role(user, "Reader", start_url=instance)
    role = admin.create_role(unique_name("analyst"), trusted=[assignment.role_arn])
    (daemons.aws / "config").write_text(
        sso_config(daemons.sandbox.endpoint, instance.start_url).replace(
            "[sso-session dev]",
            f"[profile analyst]\nrole_arn = {role.arn}\nsource_profile = dev\n"
            "region = us-east-1\nservices = sandbox\ncredd = true\n\n[sso-session dev]",
        )
    )
    cli_login(
        daemons.sandbox,
        instance.start_url,
        user,
        daemons.home / ".aws" / "sso" / "cache",
        timedelta(minutes=50),
    )
    d = daemons.start()
    p = d.wait_state("analyst", "fresh")
    assert p["kind"] == "assume-role" and p["expires_in_seconds"] <= 3600
    assert "GetRoleCredentials for Reader" in p["plan"] and "AssumeRole" in p["plan"]
    assert d.get("analyst")["AccessKeyId"] != d.get("dev")["AccessKeyId"]
    assert admin.calls("GetRoleCredentials") == 1  # shared with the dev profile itself


def test_login_with_a_wrong_start_url_is_a_clear_error(daemons: DaemonFactory) -> None:
    (daemons.aws / "config").write_text(
        sso_config(daemons.sandbox.endpoint, "https://nobody.awsapps.com/start")
    )
    d = daemons.start()
    d.wait_state("dev", "login_required")
    done = d.run("login", "dev", "--device-code", timeout=60)
    assert done.returncode != 0
    assert done.stderr.count("\n") <= 2 and "start" in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr
