"""A new IAM Identity Center login after the session ended (revoked by an administrator, or
``aws sso logout``) is used at once: the real daemon, the real CLI, the sandbox's Identity Center.

The refused token is withdrawn from the token node (it is never sent twice), ``credd login``
replaces it, and what ``credd login`` prints is the state the daemon reports back.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.fixtures.daemon import Daemon, DaemonFactory, remember
from tests.fixtures.sandbox import SandboxHandle
from tests.test_sso_daemon import cache_file, cli_login, setup

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
