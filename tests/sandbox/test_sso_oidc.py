"""SSO-OIDC in the sandbox, driven by botocore's own ``sso-oidc`` client: the device flow,
authorization code + PKCE through ``/authorize`` and a loopback redirect, refresh-token
rotation, registration and session expiry, bad input and the knobs."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.session
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.utils import percent_encode_sequence

from credd_sandbox import SandboxError
from credd_sandbox.sso_client import SsoAssignment, SsoInstance, SsoUser
from tests.fixtures.sandbox import SandboxHandle, unique_name

pytestmark = pytest.mark.integration

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPE = "sso:account:access"
ROLE = "Admin"


@dataclass
class Idc:
    """An Identity Center instance with one user assigned ROLE, and botocore clients on it."""

    sb: SandboxHandle
    instance: SsoInstance
    user: SsoUser
    assignment: SsoAssignment
    oidc: Any
    portal: Any

    @property
    def start_url(self) -> str:
        return self.instance.start_url

    def register(self, scopes: tuple[str, ...] = (SCOPE,), **extra: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"clientName": unique_name("client"), "clientType": "public"}
        if scopes:
            kwargs["scopes"] = list(scopes)
        result: dict[str, Any] = self.oidc.register_client(**kwargs, **extra)
        return result

    def device_token(self, registration: dict[str, Any] | None = None) -> dict[str, Any]:
        """A device-flow login, approved at once (as a user who already signed in)."""
        reg = registration or self.register()
        self.sb.admin.sso_auto_approve(self.user, start_url=self.start_url, count=1)
        device = self.oidc.start_device_authorization(
            clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=self.start_url
        )
        token: dict[str, Any] = self.oidc.create_token(
            clientId=reg["clientId"],
            clientSecret=reg["clientSecret"],
            grantType=DEVICE_GRANT,
            deviceCode=device["deviceCode"],
        )
        return {**token, "clientId": reg["clientId"], "clientSecret": reg["clientSecret"]}

    def refresh(self, token: dict[str, Any], refresh_token: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.oidc.create_token(
            clientId=token["clientId"],
            clientSecret=token["clientSecret"],
            grantType="refresh_token",
            refreshToken=refresh_token or token["refreshToken"],
        )
        return {**result, "clientId": token["clientId"], "clientSecret": token["clientSecret"]}

    def role_credentials(self, access_token: str, role: str = ROLE) -> dict[str, Any]:
        result: dict[str, Any] = self.portal.get_role_credentials(
            roleName=role, accountId=self.assignment.account_id, accessToken=access_token
        )["roleCredentials"]
        return result


def sso_clients(sb: SandboxHandle, **config: Any) -> tuple[Any, Any]:
    """botocore's sso-oidc and sso clients on the sandbox, unsigned as botocore sends them."""
    session = botocore.session.Session()
    config.setdefault("retries", {"mode": "standard", "total_max_attempts": 1})
    cfg = Config(signature_version=UNSIGNED, **config)
    oidc = session.create_client(
        "sso-oidc", region_name="us-east-1", endpoint_url=sb.endpoint, config=cfg
    )
    portal = session.create_client(
        "sso", region_name="us-east-1", endpoint_url=sb.endpoint, config=cfg
    )
    return oidc, portal


def make_idc(sb: SandboxHandle, session_duration: int = 3600) -> Idc:
    admin = sb.admin
    instance = admin.create_sso_instance()
    user = admin.create_sso_user(unique_name("sso"), start_url=instance)
    assignment = admin.assign_sso_role(
        user, ROLE, start_url=instance, session_duration=session_duration
    )
    oidc, portal = sso_clients(sb)
    return Idc(sb, instance, user, assignment, oidc, portal)


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture
def idc(sandbox_clean: SandboxHandle) -> Idc:
    return make_idc(sandbox_clean)


# -- the device flow --------------------------------------------------------------------------


def test_device_flow_pending_slow_down_approve(idc: Idc) -> None:
    reg = idc.register()
    assert reg["clientSecretExpiresAt"] - reg["clientIdIssuedAt"] == 90 * 86400
    device = idc.oidc.start_device_authorization(
        clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=idc.start_url
    )
    assert device["interval"] == 1 and device["expiresIn"] == 600
    assert device["verificationUriComplete"].endswith(f"/device?user_code={device['userCode']}")
    args = {
        "clientId": reg["clientId"],
        "clientSecret": reg["clientSecret"],
        "grantType": DEVICE_GRANT,
        "deviceCode": device["deviceCode"],
    }
    with pytest.raises(ClientError) as exc:
        idc.oidc.create_token(**args)
    assert code(exc) == "AuthorizationPendingException"
    assert exc.value.response["error"] == "authorization_pending"
    with pytest.raises(ClientError) as exc:
        idc.oidc.create_token(**args)  # again within the interval
    assert code(exc) == "SlowDownException"
    idc.sb.admin.advance(1)
    with pytest.raises(ClientError) as exc:
        idc.oidc.create_token(**args)
    assert code(exc) == "AuthorizationPendingException"
    pending = idc.sb.admin.sso_pending(idc.instance)["device"]
    assert [d["user_code"] for d in pending] == [device["userCode"]]
    approved = idc.sb.admin.approve_device(user=idc.user, start_url=idc.instance)  # the only one
    assert approved["status"] == "approved" and approved["user"] == idc.user.name
    token = idc.oidc.create_token(**args)
    assert token["tokenType"] == "Bearer" and token["expiresIn"] == 3600
    assert token["refreshToken"] and token["accessToken"] != token["refreshToken"]
    with pytest.raises(ClientError) as exc:
        idc.oidc.create_token(**args)  # a device code gives one token
    assert code(exc) == "InvalidGrantException"
    assert idc.sb.admin.calls("CreateToken:device_code") == 5
    assert idc.sb.admin.calls_by_key(reg["clientId"]) == {
        "CreateToken": 5,
        "RegisterClient": 1,
        "StartDeviceAuthorization": 1,
    }
    [session] = idc.sb.admin.sso_sessions(client_id=reg["clientId"])
    assert session["user"] == idc.user.name and session["refreshable"]


def test_device_flow_denied_and_expired(idc: Idc) -> None:
    reg = idc.register()

    def start() -> dict[str, Any]:
        result: dict[str, Any] = idc.oidc.start_device_authorization(
            clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=idc.start_url
        )
        return result

    def poll(device: dict[str, Any]) -> None:
        idc.oidc.create_token(
            clientId=reg["clientId"],
            clientSecret=reg["clientSecret"],
            grantType=DEVICE_GRANT,
            deviceCode=device["deviceCode"],
        )

    denied = start()
    idc.sb.admin.deny_device(denied["userCode"])
    with pytest.raises(ClientError) as exc:
        poll(denied)
    assert code(exc) == "AccessDeniedException"
    late = start()
    idc.sb.admin.advance(601)
    with pytest.raises(ClientError) as exc:
        poll(late)
    assert code(exc) == "ExpiredTokenException"
    with pytest.raises(SandboxError) as err:
        idc.sb.admin.approve_device(late["userCode"], user=idc.user)
    assert err.value.status == 404


def test_registration_without_scopes_gets_no_refresh_token(idc: Idc) -> None:
    token = idc.device_token(idc.register(scopes=()))
    assert "refreshToken" not in token
    assert idc.role_credentials(token["accessToken"])["accessKeyId"].startswith("ASIA")


def test_bad_registrations_and_requests_are_refused(idc: Idc) -> None:
    oidc = idc.oidc
    cases: list[tuple[dict[str, Any], str]] = [
        ({"clientType": "confidential"}, "InvalidClientMetadataException"),
        ({"grantTypes": ["password"]}, "UnsupportedGrantTypeException"),
        ({"scopes": ["not a scope"]}, "InvalidScopeException"),
        ({"grantTypes": ["authorization_code"]}, "InvalidRedirectUriException"),
        (
            {
                "grantTypes": ["authorization_code"],
                "redirectUris": ["http://example.com/cb"],
                "issuerUrl": idc.start_url,
            },
            "InvalidRedirectUriException",
        ),
        (
            {"grantTypes": ["authorization_code"], "redirectUris": ["http://127.0.0.1/cb"]},
            "InvalidRequestException",
        ),
        ({"issuerUrl": "https://d-0000000000.awsapps.com/start"}, "InvalidRequestException"),
    ]
    for extra, expected in cases:
        args = {"clientName": "bad", "clientType": "public", **extra}
        with pytest.raises(ClientError) as exc:
            oidc.register_client(**args)
        assert code(exc) == expected, extra
    reg = idc.register()
    with pytest.raises(ClientError) as exc:
        oidc.start_device_authorization(
            clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=idc.start_url + "x"
        )
    assert code(exc) == "InvalidRequestException"
    with pytest.raises(ClientError) as exc:
        oidc.start_device_authorization(
            clientId=reg["clientId"], clientSecret="wrong", startUrl=idc.start_url
        )
    assert code(exc) == "InvalidClientException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    for grant, expected in [
        ("authorization_code", "UnauthorizedClientException"),
        ("client_credentials", "UnsupportedGrantTypeException"),
    ]:
        with pytest.raises(ClientError) as exc:
            oidc.create_token(
                clientId=reg["clientId"],
                clientSecret=reg["clientSecret"],
                grantType=grant,
                code="x",
                redirectUri="http://127.0.0.1/cb",
            )
        assert code(exc) == expected


# -- authorization code + PKCE --------------------------------------------------------------


class Callback:
    """The loopback redirect target the AWS CLI v2 runs during `aws sso login`."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                owner.received.append({k: v[0] for k, v in query.items()})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"You can close this window.")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/oauth/callback"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback() -> Iterator[Callback]:
    cb = Callback()
    yield cb
    cb.close()


def browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class PkceLogin:
    registration: dict[str, Any]
    verifier: str
    state: str
    url: str


def pkce_login(idc: Idc, redirect_uri: str) -> PkceLogin:
    """Register and build the authorize URL exactly as the AWS CLI v2 does."""
    reg = idc.register(
        grantTypes=["authorization_code", "refresh_token"],
        redirectUris=["http://127.0.0.1/oauth/callback"],
        issuerUrl=idc.start_url,
    )
    verifier = "".join(
        secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789-._~") for _ in range(64)
    )
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    state = str(uuid.uuid4())
    query = {
        "response_type": "code",
        "client_id": reg["clientId"],
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge_method": "S256",
        "scopes": SCOPE,
    }
    url = (
        f"{idc.sb.endpoint}/authorize?{percent_encode_sequence(query)}"
        f"&code_challenge={challenge[:-1]}"
    )
    return PkceLogin(reg, verifier, state, url)


def exchange(idc: Idc, login: PkceLogin, auth_code: str, **override: str) -> dict[str, Any]:
    args = {
        "clientId": login.registration["clientId"],
        "clientSecret": login.registration["clientSecret"],
        "grantType": "authorization_code",
        "code": auth_code,
        "codeVerifier": login.verifier,
        "redirectUri": override.pop("redirectUri", ""),
        **override,
    }
    result: dict[str, Any] = idc.oidc.create_token(**args)
    return result


def test_pkce_flow_through_authorize_and_loopback_redirect(idc: Idc, callback: Callback) -> None:
    login = pkce_login(idc, callback.uri)
    with browser().open(login.url, timeout=10) as page:  # the sign-in page, waiting
        assert page.status == 200
        request_id = page.headers["x-sandbox-request-id"]
    [pending] = idc.sb.admin.sso_pending(idc.instance)["authorize"]
    assert pending["request_id"] == request_id and pending["scopes"] == [SCOPE]
    redirect = idc.sb.admin.approve_authorize(request_id, user=idc.user)
    assert redirect.startswith(callback.uri + "?code=")
    with browser().open(
        f"{idc.sb.endpoint}/authorize/continue?request_id={request_id}", timeout=10
    ) as done:  # the page's refresh now redirects to the loopback server
        assert done.status == 200 and done.geturl().startswith(callback.uri)
    [received] = callback.received
    assert received["state"] == login.state
    token = exchange(idc, login, received["code"], redirectUri=callback.uri)
    assert token["expiresIn"] == 3600 and token["refreshToken"]
    assert idc.role_credentials(token["accessToken"])["accessKeyId"].startswith("ASIA")
    with pytest.raises(ClientError) as exc:
        exchange(idc, login, received["code"], redirectUri=callback.uri)
    assert code(exc) == "InvalidGrantException"  # a code is used once
    assert idc.sb.admin.calls("CreateToken:authorization_code") == 2
    assert idc.sb.admin.calls("Authorize") == 1


def test_pkce_verifier_and_redirect_are_checked(idc: Idc, callback: Callback) -> None:
    login = pkce_login(idc, callback.uri)
    idc.sb.admin.sso_auto_approve(idc.user, start_url=idc.start_url, count=1)
    with browser().open(login.url, timeout=10):  # approved at once: straight to the app
        pass
    auth_code = callback.received[0]["code"]
    bad = [
        {"redirectUri": callback.uri, "codeVerifier": "x" * 64},
        {"redirectUri": callback.uri + "x"},
        {"redirectUri": "http://127.0.0.1:1/oauth/callback"},
    ]
    for override in bad:
        with pytest.raises(ClientError) as exc:
            exchange(idc, login, auth_code, **override)
        assert code(exc) == "InvalidGrantException", override
    idc.sb.admin.advance(601)
    with pytest.raises(ClientError) as exc:
        exchange(idc, login, auth_code, redirectUri=callback.uri)
    assert code(exc) == "ExpiredTokenException"


def test_authorize_refusals(idc: Idc, callback: Callback) -> None:
    login = pkce_login(idc, callback.uri)
    for url in (
        login.url.replace("127.0.0.1%3A", "127.0.0.2%3A"),  # redirect_uri not registered
        login.url.replace(login.registration["clientId"], "nope"),
    ):
        with pytest.raises(urllib.error.HTTPError) as exc:
            browser().open(url, timeout=10)
        assert exc.value.code == 400
    assert callback.received == []
    with browser().open(login.url.replace("S256", "plain"), timeout=10):
        pass
    assert callback.received[-1]["error"] == "invalid_request"
    with browser().open(login.url, timeout=10):
        pass
    redirect = idc.sb.admin.deny_authorize(start_url=idc.instance)
    assert "error=access_denied" in redirect
    with browser().open(redirect, timeout=10):
        pass
    assert callback.received[-1] == {"error": "access_denied", "state": login.state}


# -- refresh tokens, sessions, registrations ------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_is_rejected(idc: Idc) -> None:
    first = idc.device_token()
    second = idc.refresh(first)
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"] and second["expiresIn"] == 3600
    with pytest.raises(ClientError) as exc:
        idc.refresh(first)
    assert code(exc) == "InvalidGrantException"
    assert "already been used" in exc.value.response["error_description"]
    third = idc.refresh(second)
    for token in (first, second, third):  # access tokens live until their own expiry
        assert idc.role_credentials(token["accessToken"])
    [session] = idc.sb.admin.sso_sessions(client_id=first["clientId"])
    assert session["rotations"] == 2 and not session["revoked"]
    assert idc.sb.admin.calls("CreateToken:refresh_token") == 3


def test_refresh_tokens_end_with_the_session(idc: Idc) -> None:
    idc.sb.admin.set_sso_settings(session_seconds=3 * 3600)
    token = idc.device_token()
    idc.sb.admin.advance(3600)
    with pytest.raises(ClientError) as exc:
        idc.role_credentials(token["accessToken"])
    assert code(exc) == "UnauthorizedException"
    token = idc.refresh(token)
    idc.sb.admin.advance(2 * 3600 - 600)
    token = idc.refresh(token)
    assert token["expiresIn"] == 600  # never past the session's end
    idc.sb.admin.advance(600)
    with pytest.raises(ClientError) as exc:
        idc.refresh(token)
    assert code(exc) == "InvalidGrantException"


def test_revoked_and_expired_sessions(idc: Idc) -> None:
    revoked, ended = idc.device_token(), idc.device_token()
    assert idc.sb.admin.revoke_sso_sessions(client_id=revoked["clientId"]) == 1
    with pytest.raises(ClientError) as exc:
        idc.refresh(revoked)
    assert code(exc) == "InvalidGrantException"
    with pytest.raises(ClientError) as exc:
        idc.role_credentials(revoked["accessToken"])
    assert code(exc) == "UnauthorizedException"
    assert idc.sb.admin.expire_sso_sessions(client_id=ended["clientId"]) == 1
    with pytest.raises(ClientError) as exc:
        idc.refresh(ended)
    assert code(exc) == "InvalidGrantException"


def test_expired_registration_is_an_invalid_client(idc: Idc) -> None:
    token = idc.device_token()
    idc.sb.admin.expire_sso_registration(token["clientId"])
    with pytest.raises(ClientError) as exc:
        idc.refresh(token)
    assert code(exc) == "InvalidClientException"
    other = idc.device_token()
    idc.sb.admin.advance(90 * 86400)  # registrations last 90 days
    with pytest.raises(ClientError) as exc:
        idc.refresh(other)
    assert code(exc) == "InvalidClientException"
    assert exc.value.response["error"] == "invalid_client"


# -- knobs --------------------------------------------------------------------------------------


def test_knobs_on_sso_oidc(idc: Idc) -> None:
    admin = idc.sb.admin
    token = idc.device_token()
    admin.set_throttle(services=["sso-oidc"], actions=["CreateToken:refresh_token"], count=1)
    with pytest.raises(ClientError) as exc:
        idc.refresh(token)
    assert code(exc) == "TooManyRequestsException"
    token = idc.refresh(token)  # the throttled call did not rotate anything
    admin.set_fail("InternalServerException", 500, services="sso-oidc", actions=["CreateToken"])
    with pytest.raises(ClientError) as exc:
        idc.refresh(token)
    assert code(exc) == "InternalServerException"
    assert exc.value.response["error"] == "server_error"
    admin.clear_knobs()
    admin.set_down(services=["sso-oidc"], count=1)
    with pytest.raises(ConnectionClosedError):
        idc.refresh(token)
    assert admin.call_stats()["dropped"] == 1
    assert idc.refresh(token)["accessToken"]
