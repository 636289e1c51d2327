"""A new IAM Identity Center login after the session ended (revoked by an administrator, or
``aws sso logout``) is used at once: the real daemon, the real CLI, the sandbox's Identity Center.

The refused token is withdrawn from the token node (it is never sent twice), ``credd login``
replaces it, and what ``credd login`` prints is the state the daemon reports back.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.clock import UTC
from tests.fixtures.daemon import Daemon, DaemonFactory, remember
from tests.fixtures.sandbox import SandboxHandle, unique_name
from tests.integration.test_sso_daemon import cache_file, cli_login, setup

pytestmark = pytest.mark.integration


def logged_in_and_serving(daemons: DaemonFactory) -> tuple[Any, Any, Daemon, dict[str, Any]]:
    """A 50 min token (fresh enough to be used as is) and a daemon serving role credentials."""
    instance, user = setup(daemons)
    cli_login(
        daemons.sandbox,
        instance.start_url,
        user,
        daemons.home / ".aws" / "sso" / "cache",
        timedelta(minutes=50),
    )
    d = daemons.start()
    d.wait_state("dev", "fresh")
    return instance, user, d, d.get("dev")


def works(sandbox: SandboxHandle, creds: dict[str, Any]) -> str:
    """The role credentials are accepted by AWS (the sandbox's STS): the caller's ARN."""
    sts = sandbox.session_client("sts", creds)
    return str(sts.get_caller_identity()["Arn"])


def login(daemons: DaemonFactory, d: Daemon, instance: Any, user: Any) -> Any:
    daemons.sandbox.admin.sso_auto_approve(user, start_url=instance, count=1)
    done = d.run("login", "dev", "--device-code", timeout=120)
    token = json.loads(cache_file(daemons.home).read_text())
    remember(token["accessToken"], token.get("refreshToken"))
    return done


def test_a_login_after_a_revoked_session_is_served_at_once(daemons: DaemonFactory) -> None:
    admin = daemons.sandbox.admin
    instance, user, d, before = logged_in_and_serving(daemons)
    assert admin.calls("GetRoleCredentials") == 1
    admin.revoke_sso_sessions(user=user)
    # the daemon tries the revoked token once and asks for a login
    refused = d.run("refresh", "dev")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    p = d.profile("dev")
    assert p["state"] == "login_required", p
    assert "credd login dev" in p["waiting_for"]
    done = login(daemons, d, instance, user)
    p = d.profile("dev")
    assert p["state"] == "fresh", p  # at once: no schedule, no polling
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The daemon picked up the new token for dev: fresh" in done.stdout, done.stdout
    creds = d.get("dev")
    assert creds["AccessKeyId"] != before["AccessKeyId"]
    assert "Reader" in works(daemons.sandbox, creds)
    # the revoked token and its refresh token were each sent once, never after the login
    assert admin.calls("GetRoleCredentials") == 3
    assert admin.calls("CreateToken:refresh_token") == 1


def test_credd_refresh_picks_up_a_login_made_elsewhere(daemons: DaemonFactory) -> None:
    """``aws sso login`` (here: botocore's writer) replaced the token while the daemon holds the
    revoked one: ``credd refresh`` re-reads the shared cache."""
    admin = daemons.sandbox.admin
    instance, user, d, before = logged_in_and_serving(daemons)
    admin.revoke_sso_sessions(user=user)
    cli_login(
        daemons.sandbox,
        instance.start_url,
        user,
        daemons.home / ".aws" / "sso" / "cache",
        timedelta(minutes=50),
    )
    done = d.run("refresh", "dev")
    assert done.returncode == 0, done.stdout + done.stderr
    assert d.profile("dev")["state"] == "fresh"
    assert d.get("dev")["AccessKeyId"] != before["AccessKeyId"]
    assert admin.calls("GetRoleCredentials") == 2  # the revoked token was never sent


def test_credd_login_says_when_the_daemon_cannot_use_the_login(daemons: DaemonFactory) -> None:
    """The login works but the role is not assigned to the user: no "picked up", exit 1, and
    the daemon's reason."""
    instance, user = setup(daemons, role="Nope")
    d = daemons.start()
    d.wait_state("dev", "login_required")
    done = login(daemons, d, instance, user)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "picked up" not in done.stdout.replace("not picked up", "")
    assert "has not picked up the new token for dev: it is error" in done.stdout, done.stdout
    assert "Nope" in done.stdout
    assert d.profile("dev")["state"] == "error"


@pytest.mark.timeout(120)
def test_a_login_made_elsewhere_is_picked_up_within_a_minute_without_credd(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any
) -> None:
    """After a revocation, ``aws sso login`` (botocore's writer) alone: the token node, parked in
    ``login_required``, looks at the cache again a minute later (a file read) and wakes the
    role. In-process manager, the sandbox's clock moved with the manager's."""
    from credd.aws import config as awsconfig
    from credd.aws.clients import ClientFactory
    from credd.engine.manager import Manager
    from credd.engine.scheduler import RefreshPolicy
    from credd.sources import build_source
    from credd.sources.mfa import CodeLedger
    from credd.sso import TokenCache, TokenStore
    from credd.testing.scheduler import ManualScheduler
    from tests.integration.test_roles import SandboxClock
    from tests.integration.test_sso_daemon import sso_config

    admin = sandbox_clean.admin
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("re"), start_url=instance)
    admin.assign_sso_role(user, "Reader", start_url=instance)
    (clean_env / ".aws").mkdir(exist_ok=True)
    (clean_env / ".aws" / "config").write_text(
        sso_config(sandbox_clean.endpoint, instance.start_url)
    )
    cache_dir = clean_env / ".aws" / "sso" / "cache"
    clock = SandboxClock(sandbox_clean, datetime.now(UTC).replace(microsecond=0))
    cli_login(sandbox_clean, instance.start_url, user, cache_dir, timedelta(minutes=50))
    tokens = TokenStore(TokenCache(cache_dir, clock=clock), clock=clock)
    clients, ledger, store = ClientFactory(), CodeLedger(clock), keyring_env.store()
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
    scheduler.run_for(0)
    before = manager.credentials("dev")
    admin.revoke_sso_sessions(user=user)
    assert manager.refresh("dev").state == "login_required"
    scheduler.run_for(61)  # nothing in the cache yet: no call to AWS
    assert manager.profile_status("dev").state == "login_required"
    calls_before_login = admin.calls("CreateToken:refresh_token")
    cli_login(sandbox_clean, instance.start_url, user, cache_dir, timedelta(minutes=50))
    scheduler.run_for(61)
    status = manager.profile_status("dev")
    assert status.state == "fresh", status
    assert manager.credentials("dev").access_key_id != before.access_key_id
    assert admin.calls("GetRoleCredentials") == 3  # the revoked token was sent once
    # the refused refresh token was sent once, not again at the minute's look at the cache
    assert calls_before_login == admin.calls("CreateToken:refresh_token") == 1
    manager.stop()
