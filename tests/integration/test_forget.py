"""Forgetting on purpose, with the real daemon against the sandbox: ``credd forget`` drops held
and saved sessions and credd's file sections (and says so) while keys and the SSO cache stay;
``credd logout --sso-session`` ends the sign-in with the portal and removes the shared token."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fixtures.daemon import DaemonFactory
from tests.integration.test_sso_daemon import cache_file, cli_login, setup

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
def test_forget_then_logout_an_sso_profile(daemons: DaemonFactory) -> None:
    instance, user = setup(daemons)
    cli_login(
        daemons.sandbox,
        instance.start_url,
        user,
        daemons.home / ".aws" / "sso" / "cache",
        timedelta(hours=1),
    )
    d = daemons.start()
    d.wait_state("dev", "fresh")
    first = d.get("dev")["AccessKeyId"]
    creds_file = daemons.aws / "credentials"
    assert "[dev-credd]" in creds_file.read_text()

    forgot = d.run("forget", "dev")
    assert forgot.returncode == 0, forgot.stderr
    assert "Forgot dev: 2 held session(s)" in forgot.stdout, forgot.stdout
    assert "1 credentials-file section(s) ([dev-credd])" in forgot.stdout
    assert "Kept: long-term keys" in forgot.stdout
    assert "[dev-credd]" not in creds_file.read_text()
    assert d.profile("dev")["state"] == "pending" and d.profile("dev")["key_id"] is None
    assert cache_file(daemons.home).exists()  # the shared cache is not credd's to forget
    # the next request fetches anew from the kept sign-in
    assert d.get("dev")["AccessKeyId"] != first
    assert d.run("forget").returncode == 2  # neither PROFILE nor --all
    assert "every profile" in d.run("forget", "--all").stdout

    out = d.run("logout", "--sso-session", "dev")
    assert out.returncode == 0, out.stderr
    assert "ended with IAM Identity Center" in out.stdout and "Removed" in out.stdout
    assert not cache_file(daemons.home).exists()
    (session,) = daemons.sandbox.admin.sso_sessions(user=user)
    assert session["revoked"]  # its refresh token no longer works anywhere
    refused = d.run("get", "dev")
    assert refused.returncode == 4 and "credd login dev" in refused.stderr
    again = d.run("logout", "--sso-session", "dev")
    assert again.returncode == 0 and "No cached sign-in" in again.stdout
