"""AdminClient methods for the sandbox's IAM Identity Center (standard library only).

Mixed into :class:`credd_sandbox.client.AdminClient`; every method is one call under
``/_sandbox/sso/``. ``user`` arguments take a user name or an :class:`SsoUser`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SANDBOX_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class SsoInstance:
    """An Identity Center instance: its start URL is also the issuer URL clients register with."""

    start_url: str
    region: str
    instance_arn: str
    identity_store_id: str


@dataclass(frozen=True)
class SsoUser:
    name: str
    user_id: str
    email: str
    start_url: str


@dataclass(frozen=True)
class SsoAssignment:
    """A user's access to a role (permission set) in an account."""

    start_url: str
    user: str
    account_id: str
    account_name: str
    role_name: str
    session_duration: int
    role_arn: str  # the AWSReservedSSO_ role: trust it to chain roles on SSO credentials


def _user(user: str | SsoUser) -> str:
    return user.name if isinstance(user, SsoUser) else user


def _url(instance: str | SsoInstance) -> str:
    return instance.start_url if isinstance(instance, SsoInstance) else instance


def _filters(**values: str | None) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class SsoAdminMixin:
    """The Identity Center part of the admin client."""

    request: Callable[..., Any]  # AdminClient.request(method, path, body=None)

    def create_sso_instance(
        self, start_url: str | None = None, *, region: str = "us-east-1"
    ) -> SsoInstance:
        """A new instance (a random ``https://d-XXXXXXXXXX.awsapps.com/start`` by default)."""
        r = self.request("POST", "sso/instances", _filters(start_url=start_url, region=region))
        return SsoInstance(r["start_url"], r["region"], r["instance_arn"], r["identity_store_id"])

    def create_sso_user(
        self, name: str, *, start_url: str | SsoInstance, email: str | None = None
    ) -> SsoUser:
        body = _filters(name=name, start_url=_url(start_url), email=email)
        r = self.request("POST", "sso/users", body)
        return SsoUser(r["name"], r["user_id"], r["email"], r["start_url"])

    def assign_sso_role(
        self,
        user: str | SsoUser,
        role_name: str,
        *,
        start_url: str | SsoInstance,
        account_id: str = SANDBOX_ACCOUNT,
        account_name: str | None = None,
        session_duration: int = 3600,
    ) -> SsoAssignment:
        """Give ``user`` ``role_name`` in ``account_id``; credentials last ``session_duration``."""
        body = _filters(
            start_url=_url(start_url),
            user=_user(user),
            role_name=role_name,
            account_id=account_id,
            account_name=account_name,
        )
        body["session_duration"] = session_duration
        r = self.request("POST", "sso/assignments", body)
        return SsoAssignment(
            r["start_url"],
            r["user"],
            r["account_id"],
            r["account_name"],
            r["role_name"],
            r["session_duration"],
            r["role_arn"],
        )

    def unassign_sso_role(
        self,
        user: str | SsoUser,
        role_name: str,
        *,
        start_url: str | SsoInstance,
        account_id: str = SANDBOX_ACCOUNT,
    ) -> None:
        body = {
            "start_url": _url(start_url),
            "user": _user(user),
            "role_name": role_name,
            "account_id": account_id,
        }
        self.request("POST", "sso/assignments/remove", body)

    def sso_pending(
        self, start_url: str | SsoInstance | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Pending logins: ``{"device": [...user_code...], "authorize": [...request_id...]}``."""
        result: dict[str, list[dict[str, Any]]] = self.request("GET", "sso/pending")
        if start_url is None:
            return result
        url = _url(start_url)
        return {kind: [p for p in items if p["start_url"] == url] for kind, items in result.items()}

    def approve_device(
        self,
        user_code: str | None = None,
        *,
        user: str | SsoUser,
        start_url: str | SsoInstance | None = None,
    ) -> dict[str, Any]:
        """Approve a pending device code as ``user`` (the only pending one if no code given)."""
        body = _filters(
            user_code=user_code,
            user=_user(user),
            start_url=_url(start_url) if start_url else None,
        )
        result: dict[str, Any] = self.request("POST", "sso/device/approve", body)
        return result

    def deny_device(
        self, user_code: str | None = None, *, start_url: str | SsoInstance | None = None
    ) -> dict[str, Any]:
        body = _filters(user_code=user_code, start_url=_url(start_url) if start_url else None)
        result: dict[str, Any] = self.request("POST", "sso/device/deny", body)
        return result

    def approve_authorize(
        self,
        request_id: str | None = None,
        *,
        user: str | SsoUser,
        start_url: str | SsoInstance | None = None,
    ) -> str:
        """Approve a pending ``/authorize`` login as ``user``; returns the redirect URL
        (``redirect_uri?code=...&state=...``) the browser is sent to."""
        body = _filters(
            request_id=request_id,
            user=_user(user),
            start_url=_url(start_url) if start_url else None,
        )
        return str(self.request("POST", "sso/authorize/approve", body)["redirect"])

    def deny_authorize(
        self, request_id: str | None = None, *, start_url: str | SsoInstance | None = None
    ) -> str:
        """Deny a pending ``/authorize`` login; returns the ``error=access_denied`` redirect."""
        body = _filters(request_id=request_id, start_url=_url(start_url) if start_url else None)
        return str(self.request("POST", "sso/authorize/deny", body)["redirect"])

    def sso_auto_approve(
        self,
        user: str | SsoUser | None,
        *,
        start_url: str | SsoInstance,
        count: int | None = None,
    ) -> dict[str, Any]:
        """Approve the next ``count`` logins to ``start_url`` (device or ``/authorize``) as
        ``user`` without a pending step (all of them until cleared when ``count`` is None;
        ``user=None`` clears)."""
        body: dict[str, Any] = {
            "start_url": _url(start_url),
            "user": _user(user) if user is not None else None,
            "count": count,
        }
        result: dict[str, Any] = self.request("POST", "sso/auto-approve", body)
        return result

    def sso_clients(self) -> list[dict[str, Any]]:
        """Client registrations (no secrets)."""
        return list(self.request("GET", "sso/clients")["clients"])

    def expire_sso_registration(self, client_id: str) -> None:
        """Make a client registration expire now (CreateToken: ``InvalidClientException``)."""
        self.request("POST", f"sso/clients/{client_id}/expire", {})

    def sso_sessions(
        self, *, user: str | SsoUser | None = None, client_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Logins: user, client, ``rotations`` of the refresh token, ``revoked``, ends."""
        sessions: list[dict[str, Any]] = self.request("GET", "sso/sessions")["sessions"]
        name = _user(user) if user is not None else None
        return [
            s
            for s in sessions
            if (name is None or s["user"] == name)
            and (client_id is None or s["client_id"] == client_id)
        ]

    def revoke_sso_sessions(
        self,
        *,
        user: str | SsoUser | None = None,
        client_id: str | None = None,
        start_url: str | SsoInstance | None = None,
    ) -> int:
        """Revoke matching logins: refresh tokens and access tokens stop working."""
        return self._sessions_action("revoke", user, client_id, start_url)

    def expire_sso_sessions(
        self,
        *,
        user: str | SsoUser | None = None,
        client_id: str | None = None,
        start_url: str | SsoInstance | None = None,
    ) -> int:
        """End matching logins now, as if their session duration had passed."""
        return self._sessions_action("expire", user, client_id, start_url)

    def _sessions_action(
        self,
        action: str,
        user: str | SsoUser | None,
        client_id: str | None,
        start_url: str | SsoInstance | None,
    ) -> int:
        body = _filters(
            user=_user(user) if user is not None else None,
            client_id=client_id,
            start_url=_url(start_url) if start_url else None,
        )
        return int(self.request("POST", f"sso/sessions/{action}", body)["sessions"])

    def sso_settings(self) -> dict[str, int]:
        result: dict[str, int] = self.request("GET", "sso/settings")
        return result

    def set_sso_settings(self, **settings: int) -> dict[str, int]:
        """Change lifetimes: ``access_token_seconds`` (default 3600), ``session_seconds``
        (90 days), ``registration_seconds`` (90 days), ``device_code_seconds`` (600),
        ``device_interval_seconds`` (1), ``auth_code_seconds`` (600), ``portal_page_size`` (20: the
        most ListAccounts/ListAccountRoles put in one page). Reset restores them."""
        result: dict[str, int] = self.request("POST", "sso/settings", dict(settings))
        return result
