"""The wire shapes of SSO-OIDC and the SSO portal (both ``rest-json``, both unsigned).

Errors carry the exception name in ``x-amzn-ErrorType`` (what botocore reads for the code) and
the body AWS sends: SSO-OIDC's OAuth-style ``{"error", "error_description"}``, the portal's
``{"message"}``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from credd_sandbox.awsxml import AwsFault

OIDC = "sso-oidc"
PORTAL = "sso"

_OAUTH_ERRORS = {
    "InvalidRequestException": "invalid_request",
    "InvalidClientException": "invalid_client",
    "InvalidGrantException": "invalid_grant",
    "UnauthorizedClientException": "unauthorized_client",
    "UnsupportedGrantTypeException": "unsupported_grant_type",
    "InvalidScopeException": "invalid_scope",
    "AuthorizationPendingException": "authorization_pending",
    "SlowDownException": "slow_down",
    "AccessDeniedException": "access_denied",
    "ExpiredTokenException": "expired_token",
    "InternalServerException": "server_error",
    "InvalidClientMetadataException": "invalid_client_metadata",
    "InvalidRedirectUriException": "invalid_redirect_uri",
}
_STATUS = {
    "InvalidClientException": 401,
    "InternalServerException": 500,
    "UnauthorizedException": 401,
    "ForbiddenException": 403,
    "ResourceNotFoundException": 404,
    "TooManyRequestsException": 429,
}


def fault(name: str, description: str) -> AwsFault:
    """An SSO-OIDC or portal error with its modelled HTTP status (400 unless listed)."""
    status = _STATUS.get(name, 400)
    return AwsFault(name, description, status, sender=status < 500)


@dataclass
class SsoCall:
    """One request to SSO-OIDC or the portal, as the handlers see it."""

    service: str
    action: str
    method: str
    query: dict[str, str]
    body: dict[str, Any]
    base_url: str  # scheme://host:port the caller used, for URLs we hand out
    bearer: str | None = field(default=None, repr=False)  # x-amz-sso_bearer_token
    key: str | None = None  # the client id, for the per-key counters


@dataclass
class Reply:
    """A handler's answer: JSON, an HTML page, or a redirect."""

    status: int = 200
    payload: dict[str, Any] | None = None
    page: str | None = None
    location: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encode(self, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [("x-amzn-RequestId", request_id), ("Cache-Control", "no-store"), *self.headers]
        if self.location is not None:
            headers.append(("Location", self.location))
            data = b""
        elif self.page is not None:
            headers.append(("Content-Type", "text/html; charset=utf-8"))
            data = self.page.encode()
        else:
            headers.append(("Content-Type", "application/json"))
            data = json.dumps(self.payload or {}).encode()
        headers.append(("Content-Length", str(len(data))))
        return self.status, headers, data


def page(title: str, text: str, *, refresh: str | None = None, status: int = 200) -> Reply:
    """A minimal HTML page for the browser steps (``refresh``: follow-up URL in 2 s)."""
    meta = (
        f'<meta http-equiv="refresh" content="2;url={html.escape(refresh, quote=True)}">'
        if refresh
        else ""
    )
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'>{meta}"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
    return Reply(status=status, page=body)


def render_fault(
    error: AwsFault, service: str, request_id: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    if service == OIDC:
        oauth = _OAUTH_ERRORS.get(
            error.code, "server_error" if error.status >= 500 else "invalid_request"
        )
        body: dict[str, Any] = {"error": oauth, "error_description": error.message}
    else:
        body = {"message": error.message}
    data = json.dumps(body).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", error.code),
        ("x-amzn-RequestId", request_id),
        ("Content-Length", str(len(data))),
    ]
    return error.status, headers, data
