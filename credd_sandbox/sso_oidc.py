"""SSO-OIDC: RegisterClient, StartDeviceAuthorization, CreateToken and the browser steps.

The rules are AWS's: client secrets checked and registrations expiring; the device flow's
pending / slow_down / expired / denied answers; authorization code + PKCE (S256) bound to the
redirect URI, each code used once; refresh tokens only for clients registered with scopes,
rotated on every use (the old one stops working at once), ending with the login's session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from credd_sandbox.sso_state import (
    AUTH_CODE_GRANT,
    DEFAULT_GRANTS,
    DEVICE_GRANT,
    GRANT_NAMES,
    REFRESH_GRANT,
    AuthorizationRequest,
    Registration,
    SsoState,
)
from credd_sandbox.sso_wire import Reply, SsoCall, fault, page

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_SCOPE = re.compile(r"^[A-Za-z0-9_.*-]+(:[A-Za-z0-9_.*-]+)*$")
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


def _string(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise fault("InvalidRequestException", f"{key} is required")
        return None
    if not isinstance(value, str):
        raise fault("InvalidRequestException", f"{key} must be a string")
    return value


def _strings(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fault("InvalidRequestException", f"{key} must be a list of strings")
    return tuple(value)


def _check_scopes(scopes: tuple[str, ...]) -> None:
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise fault("InvalidScopeException", f"Invalid scope: {scope}")


def _check_redirect(uri: str) -> None:
    parts = urlsplit(uri)
    loopback_http = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if not (parts.scheme == "https" or loopback_http) or not parts.hostname or parts.fragment:
        raise fault(
            "InvalidRedirectUriException",
            f"Invalid redirect URI {uri}: use https, or http on a loopback address",
        )


def redirect_allowed(requested: str, registered: tuple[str, ...]) -> bool:
    """Exact match, or a registered loopback URI without a port (any port, RFC 8252 7.3)."""
    if requested in registered:
        return True
    asked = urlsplit(requested)
    for uri in registered:
        known = urlsplit(uri)
        if (
            known.scheme == "http"
            and known.hostname in LOOPBACK_HOSTS
            and known.port is None
            and asked.scheme == "http"
            and asked.hostname == known.hostname
            and (asked.path or "/") == (known.path or "/")
            and asked.query == known.query
        ):
            return True
    return False


def _client(sso: SsoState, call: SsoCall) -> Registration:
    client_id = _string(call.body, "clientId")
    secret = _string(call.body, "clientSecret")
    assert client_id is not None and secret is not None
    with sso.lock:
        registration = sso.clients.get(client_id)
    if registration is None or not hmac.compare_digest(
        registration.secret.encode(), secret.encode()
    ):
        raise fault("InvalidClientException", "Invalid client credentials")
    if sso.clock.now() >= registration.expires_at:
        raise fault("InvalidClientException", "Client registration has expired")
    return registration


def register_client(sso: SsoState, call: SsoCall) -> Reply:
    body = call.body
    name = _string(body, "clientName")
    client_type = _string(body, "clientType")
    assert name is not None
    if client_type != "public":
        raise fault("InvalidClientMetadataException", f"Invalid client type: {client_type}")
    scopes = _strings(body, "scopes")
    _check_scopes(scopes)
    asked = _strings(body, "grantTypes")
    for grant in asked:
        if grant not in GRANT_NAMES:
            raise fault("UnsupportedGrantTypeException", f"Unsupported grant type: {grant}")
    grants = frozenset(asked) or DEFAULT_GRANTS
    redirect_uris = _strings(body, "redirectUris")
    for uri in redirect_uris:
        _check_redirect(uri)
    issuer = _string(body, "issuerUrl", required=False)
    if AUTH_CODE_GRANT in grants:
        if not redirect_uris:
            raise fault(
                "InvalidRedirectUriException", "redirectUris are required for authorization_code"
            )
        if issuer is None:
            raise fault("InvalidRequestException", "issuerUrl is required for authorization_code")
    if issuer is not None and issuer not in sso.instances:
        raise fault("InvalidRequestException", f"Invalid issuer URL: {issuer}")
    registration = sso.register(
        name=name,
        scopes=scopes,
        grant_types=grants,
        redirect_uris=redirect_uris,
        issuer_url=issuer,
    )
    call.key = registration.client_id
    log.info("registered client %s (%s) scopes=%s", registration.client_id, name, scopes)
    return Reply(
        payload={
            "clientId": registration.client_id,
            "clientSecret": registration.secret,
            "clientIdIssuedAt": int(registration.issued_at.timestamp()),
            "clientSecretExpiresAt": int(registration.expires_at.timestamp()),
            "authorizationEndpoint": f"{call.base_url}/authorize",
            "tokenEndpoint": f"{call.base_url}/token",
        }
    )


def start_device_authorization(sso: SsoState, call: SsoCall) -> Reply:
    registration = _client(sso, call)
    if DEVICE_GRANT not in registration.grant_types:
        raise fault("UnauthorizedClientException", "Client is not authorized for device_code")
    start_url = _string(call.body, "startUrl")
    assert start_url is not None
    if start_url not in sso.instances:
        raise fault("InvalidRequestException", f"Invalid start URL: {start_url}")
    device = sso.start_device(registration.client_id, start_url)
    verification = f"{call.base_url}/device"
    complete = f"{verification}?{urlencode({'user_code': device.user_code})}"
    return Reply(
        payload={
            "deviceCode": device.device_code,
            "userCode": device.user_code,
            "verificationUri": verification,
            "verificationUriComplete": complete,
            "expiresIn": int((device.expires_at - device.created).total_seconds()),
            "interval": device.interval,
        }
    )


def _token_reply(access: str, lifetime: int, refresh: str | None) -> Reply:
    payload: dict[str, Any] = {"accessToken": access, "tokenType": "Bearer", "expiresIn": lifetime}
    if refresh is not None:
        payload["refreshToken"] = refresh
    return Reply(payload=payload)


def _device_grant(sso: SsoState, registration: Registration, call: SsoCall) -> Reply:
    code = _string(call.body, "deviceCode")
    with sso.lock:
        device = sso.devices.get(code or "")
        if device is None or device.client_id != registration.client_id:
            raise fault("InvalidGrantException", "Invalid device code provided")
        now = sso.clock.now()
        if device.status == "used":
            raise fault("InvalidGrantException", "Device code has already been used")
        if now >= device.expires_at:
            raise fault("ExpiredTokenException", "Device code has expired")
        if device.status == "denied":
            raise fault("AccessDeniedException", "The user denied the authorization request")
        if device.status == "pending":
            too_soon = (
                device.last_poll is not None
                and (now - device.last_poll).total_seconds() < device.interval
            )
            device.last_poll = now
            if too_soon:
                raise fault("SlowDownException", "Client is polling too fast")
            raise fault("AuthorizationPendingException", "Authorization is pending")
        device.status = "used"
        assert device.user is not None
        session, access, lifetime = sso.open_session(
            registration, device.start_url, device.user, registration.scopes, "device_code"
        )
    log.info("device login of %s via client %s", session.user, registration.client_id)
    return _token_reply(access, lifetime, session.refresh_token)


def pkce_matches(verifier: str, challenge: str) -> bool:
    if not _VERIFIER.match(verifier):
        return False
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return hmac.compare_digest(computed, challenge.rstrip("=").encode())


def _code_grant(sso: SsoState, registration: Registration, call: SsoCall) -> Reply:
    code = _string(call.body, "code")
    redirect_uri = _string(call.body, "redirectUri")
    verifier = _string(call.body, "codeVerifier", required=False)
    with sso.lock:
        request = sso.requests.get(sso.codes.get(code or "", ""))
        if request is None or request.client_id != registration.client_id:
            raise fault("InvalidGrantException", "Invalid authorization code")
        if request.status == "used":
            raise fault("InvalidGrantException", "Authorization code has already been used")
        assert request.code_expires_at is not None and request.user is not None
        if sso.clock.now() >= request.code_expires_at:
            raise fault("ExpiredTokenException", "Authorization code has expired")
        if redirect_uri != request.redirect_uri:
            raise fault("InvalidGrantException", "redirectUri does not match the authorization")
        if verifier is None or not pkce_matches(verifier, request.code_challenge):
            raise fault("InvalidGrantException", "Invalid code verifier")
        request.status = "used"
        session, access, lifetime = sso.open_session(
            registration, request.start_url, request.user, request.scopes, AUTH_CODE_GRANT
        )
    log.info("authorization-code login of %s via client %s", session.user, registration.client_id)
    return _token_reply(access, lifetime, session.refresh_token)


def _refresh_grant(sso: SsoState, registration: Registration, call: SsoCall) -> Reply:
    token = _string(call.body, "refreshToken") or ""
    with sso.lock:
        session_id = sso.refresh_tokens.get(token)
        if session_id is None:
            if token in sso.retired_refresh_tokens:
                log.info("rotated refresh token reused by client %s", registration.client_id)
                raise fault("InvalidGrantException", "Refresh token has already been used")
            raise fault("InvalidGrantException", "Invalid refresh token provided")
        session = sso.sessions[session_id]
        if session.client_id != registration.client_id:
            raise fault("InvalidGrantException", "Refresh token was issued to another client")
        if session.revoked:
            raise fault("InvalidGrantException", "The session has been revoked")
        if sso.clock.now() >= session.expires_at:
            raise fault("InvalidGrantException", "The session has expired")
        refresh = sso.rotate(session)
        access, lifetime = sso.new_access_token(session)
    return _token_reply(access, lifetime, refresh)


def create_token(sso: SsoState, call: SsoCall) -> Reply:
    registration = _client(sso, call)
    grant = _string(call.body, "grantType")
    assert grant is not None
    if grant not in GRANT_NAMES:
        raise fault("UnsupportedGrantTypeException", f"Unsupported grant type: {grant}")
    if grant not in registration.grant_types:
        raise fault("UnauthorizedClientException", f"Client is not authorized for {grant}")
    scopes = _strings(call.body, "scope")
    if not set(scopes) <= set(registration.scopes):
        raise fault("InvalidScopeException", "Requested scopes exceed the registration's")
    if grant == DEVICE_GRANT:
        return _device_grant(sso, registration, call)
    if grant == AUTH_CODE_GRANT:
        return _code_grant(sso, registration, call)
    assert grant == REFRESH_GRANT
    return _refresh_grant(sso, registration, call)


# -- the browser steps ---------------------------------------------------------------------


def _back_to_app(redirect_uri: str, state: str | None, **params: str) -> Reply:
    if state is not None:
        params["state"] = state
    joiner = "&" if urlsplit(redirect_uri).query else "?"
    return Reply(status=302, location=f"{redirect_uri}{joiner}{urlencode(params)}")


def redirect_for(request: AuthorizationRequest) -> str | None:
    """Where the browser goes once ``request`` is decided (``None`` while pending)."""
    if request.status == "approved" and request.code is not None:
        reply = _back_to_app(request.redirect_uri, request.state, code=request.code)
    elif request.status == "denied":
        reply = _back_to_app(request.redirect_uri, request.state, error="access_denied")
    else:
        return None
    return reply.location


def authorize(sso: SsoState, call: SsoCall) -> Reply:
    """``GET /authorize``: the page the browser opens (approved by the admin API)."""
    q = call.query
    with sso.lock:
        registration = sso.clients.get(q.get("client_id", ""))
    call.key = registration.client_id if registration else None
    if registration is None or sso.clock.now() >= registration.expires_at:
        return page("Sign-in failed", "Unknown or expired client_id.", status=400)
    redirect_uri = q.get("redirect_uri", "")
    if not redirect_allowed(redirect_uri, registration.redirect_uris):
        return page("Sign-in failed", "redirect_uri is not registered.", status=400)
    state = q.get("state")
    if q.get("response_type") != "code":
        return _back_to_app(redirect_uri, state, error="unsupported_response_type")
    if AUTH_CODE_GRANT not in registration.grant_types:
        return _back_to_app(redirect_uri, state, error="unauthorized_client")
    challenge = q.get("code_challenge", "")
    if not challenge or q.get("code_challenge_method") != "S256":
        return _back_to_app(
            redirect_uri, state, error="invalid_request", error_description="PKCE S256 required"
        )
    scopes = tuple(q.get("scopes", "").split()) or registration.scopes
    if not set(scopes) <= set(registration.scopes):
        return _back_to_app(redirect_uri, state, error="invalid_scope")
    start_url = registration.issuer_url or ""
    if start_url not in sso.instances:
        return page("Sign-in failed", "The client's issuer is not an instance.", status=400)
    request = sso.new_request(
        client_id=registration.client_id,
        start_url=start_url,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
        scopes=scopes,
    )
    return _request_reply(request.request_id, sso, call)


def authorize_continue(sso: SsoState, call: SsoCall) -> Reply:
    """``GET /authorize/continue?request_id=``: where the waiting page refreshes to."""
    return _request_reply(call.query.get("request_id", ""), sso, call)


def _request_reply(request_id: str, sso: SsoState, call: SsoCall) -> Reply:
    with sso.lock:
        request = sso.requests.get(request_id)
        if request is None:
            return page("Sign-in failed", "Unknown sign-in request.", status=400)
        location = redirect_for(request)
        if location is not None:
            return Reply(status=302, location=location)
        if request.status == "used":
            return page("Signed in", "This sign-in is complete; you can close this window.")
        if sso.clock.now() >= request.expires_at:
            return page("Sign-in failed", "This sign-in request has expired.", status=400)
    reply = page(
        f"Sign in to {request.start_url}",
        f"Waiting for approval of request {request.request_id} "
        "(POST /_sandbox/sso/authorize/approve).",
        refresh=f"{call.base_url}/authorize/continue?{urlencode({'request_id': request_id})}",
    )
    reply.headers.append(("x-sandbox-request-id", request.request_id))
    return reply


def device_page(sso: SsoState, call: SsoCall) -> Reply:
    """``GET /device?user_code=``: the verification page (approval is the admin API's)."""
    code = call.query.get("user_code", "")
    with sso.lock:
        device = next((d for d in sso.devices.values() if d.user_code == code), None)
    if device is None:
        return page("Device sign-in", "Enter the code shown by the application.")
    return page(
        f"Device sign-in {device.user_code}",
        f"Status: {device.status}. Approve with POST /_sandbox/sso/device/approve.",
    )
