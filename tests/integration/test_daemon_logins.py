"""Device-code SSO logins run by the daemon (POST /v1/logins, GET /v1/logins/{id}), against the
sandbox's IAM Identity Center: what the Jupyter extension uses instead of a terminal."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from credd.client import Client
from credd.errors import CreddError, NotFound, ProfileNotFound, RequestError
from credd.sso.cache import TokenCache
from credd.sso.settings import load_full_config, resolve_profile
from tests.fixtures.daemon import DaemonFactory, assert_no_secret, remember
from tests.fixtures.sandbox import unique_name

pytestmark = pytest.mark.integration

SECRET_FIELDS = ("deviceCode", "device_code", "accessToken", "refreshToken", "clientSecret")


def sso_config(daemons: DaemonFactory) -> Any:
    admin = daemons.sandbox.admin
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("dl"), start_url=instance)
    admin.assign_sso_role(user, "Reader", start_url=instance)
    endpoint = daemons.sandbox.endpoint
    (daemons.aws / "config").write_text(
        "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\n"
        "sso_role_name = Reader\nregion = us-east-1\nservices = sandbox\ncredd = true\n\n"
        "[profile dev-too]\nsso_session = corp\nsso_account_id = 123456789012\n"
        "sso_role_name = Reader\nregion = us-east-1\nservices = sandbox\ncredd = true\n\n"
        "[profile keys]\nregion = us-east-1\n\n"
        f"[sso-session corp]\nsso_start_url = {instance.start_url}\nsso_region = us-east-1\n"
        "sso_registration_scopes = sso:account:access\n\n[services sandbox]\n"
        + "".join(f"{svc} =\n  endpoint_url = {endpoint}\n" for svc in ("sso_oidc", "sso", "sts"))
    )
    return instance, user


def wait_login(client: Client, login_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        login: dict[str, Any] = client.login(login_id)["login"]
        if login["state"] != "pending" or time.monotonic() > deadline:
            return login
        time.sleep(0.2)


def test_a_device_code_login_through_the_socket(daemons: DaemonFactory) -> None:
    instance, user = sso_config(daemons)
    d = daemons.start()
    assert d.wait_state("dev", "login_required")["state"] == "login_required"
    client = Client(d.socket)

    started = client.start_login("dev")["login"]
    raw = json.dumps(started)
    assert not any(field in raw for field in SECRET_FIELDS)
    assert started["state"] == "pending" and started["label"] == "corp"
    assert started["user_code"] and started["verification_uri"].startswith("http")
    assert started["user_code"] in started["verification_uri_complete"]
    assert 0 < started["expires_in"] <= 600
    assert sorted(started["profiles"]) == ["dev", "dev-too"]
    # asked again (a second tab, a refresh): the same login, one code to approve
    again = client.start_login(sso_session="corp")["login"]
    assert again["id"] == started["id"] and again["user_code"] == started["user_code"]

    daemons.sandbox.admin.approve_device(started["user_code"], user=user, start_url=instance)
    done = wait_login(client, started["id"])
    assert done["state"] == "done", done
    assert "Signed in to corp" in done["message"] and "dev: fresh" in done["message"]
    assert "dev-too: fresh" in done["message"]
    for name in ("dev", "dev-too"):
        assert d.profile(name)["state"] == "fresh"

    token = TokenCache().read(resolve_profile("dev", load_full_config()))
    assert token is not None and token.has_refresh  # the refresh scope: kept alive
    remember(token.access_token, token.refresh_token, token.client_secret)
    creds = d.get("dev")
    assert_no_secret(json.dumps(started) + json.dumps(done), "the login answers")
    assert creds["AccessKeyId"].startswith("ASIA")


def test_a_denied_login_fails_with_a_reason(daemons: DaemonFactory) -> None:
    sso_config(daemons)
    d = daemons.start()
    client = Client(d.socket)
    started = client.start_login("dev")["login"]
    daemons.sandbox.admin.deny_device(started["user_code"])
    failed = wait_login(client, started["id"])
    assert failed["state"] == "failed" and "denied" in failed["message"]
    assert "credd login dev" in failed["message"]
    assert d.profile("dev")["state"] == "login_required"
    # a new login after a failed one gets a new code
    second = client.start_login("dev")["login"]
    assert second["id"] != started["id"] and second["state"] == "pending"


def test_bad_login_requests_are_refused_clearly(daemons: DaemonFactory) -> None:
    sso_config(daemons)
    d = daemons.start()
    client = Client(d.socket)
    cases: list[tuple[bytes, type[CreddError], str]] = [
        (b"{}", RequestError, "profile"),
        (b'{"profile": "dev", "sso_session": "corp"}', RequestError, "profile"),
        (b'{"profile": "dev", "browser": true}', RequestError, "unknown field"),
        (b'{"profile": 3}', RequestError, "profile"),
        (b'{"profile": "../etc"}', RequestError, "not a valid profile name"),
        (b'{"profile": "nope"}', ProfileNotFound, "nope"),
    ]
    for body, error, text in cases:
        with pytest.raises(error, match=text):
            client.call("POST", "/v1/logins", body)
    with pytest.raises(CreddError, match="does not use IAM Identity Center"):
        client.start_login("keys")
    with pytest.raises(NotFound, match="no such login"):
        client.login("0123456789abcdef")
    with pytest.raises(NotFound, match="16 hex digits"):
        client.login("not-an-id")
