"""Admin routes for IAM Identity Center, under ``/_sandbox/sso/`` (see docs/sandbox.md).

Tests play the person in the browser here: approve or deny a pending device code or
``/authorize`` login as a user, or arm an automatic approval of the next logins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from werkzeug.routing import Rule

from credd.clock import isoformat_z
from credd_sandbox.admin_body import AdminError, _name, _number, _optional_count
from credd_sandbox.sso_oidc import redirect_for
from credd_sandbox.sso_state import (
    GRANT_NAMES,
    SETTING_BOUNDS,
    AuthorizationRequest,
    AutoApproval,
    DeviceAuthorization,
    Instance,
    Session,
    SsoState,
)
from credd_sandbox.state import ACCOUNT_ID, AWS_MIN_DURATION, SandboxState

Json = dict[str, Any]
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
ROLE_MAX = 43_200


def _text(body: Json, key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise AdminError(400, "bad_value", f"{key!r} must be a string")
    return value


class SsoAdmin:
    """The ``/_sandbox/sso/`` endpoints; :class:`~credd_sandbox.admin.AdminApi` routes to them."""

    def __init__(self, sandbox: SandboxState, sso: SsoState) -> None:
        self.sandbox = sandbox
        self.sso = sso

    def rules(self, prefix: str) -> list[Rule]:
        p = f"{prefix}/sso"
        routes: list[tuple[str, Callable[..., tuple[int, Json]], str]] = [
            ("instances", self.create_instance, "POST"),
            ("users", self.create_user, "POST"),
            ("assignments", self.assign, "POST"),
            ("assignments/remove", self.unassign, "POST"),
            ("pending", self.pending, "GET"),
            ("device/approve", self.approve_device, "POST"),
            ("device/deny", self.deny_device, "POST"),
            ("authorize/approve", self.approve_authorize, "POST"),
            ("authorize/deny", self.deny_authorize, "POST"),
            ("auto-approve", self.auto_approve, "POST"),
            ("clients", self.clients, "GET"),
            ("clients/<client_id>/expire", self.expire_client, "POST"),
            ("sessions", self.sessions, "GET"),
            ("sessions/revoke", self.revoke_sessions, "POST"),
            ("sessions/expire", self.expire_sessions, "POST"),
            ("settings", self.settings, "GET"),
            ("settings", self.update_settings, "POST"),
        ]
        return [Rule(f"{p}/{path}", endpoint=fn, methods=[method]) for path, fn, method in routes]

    # -- directory -------------------------------------------------------------------

    def _instance(self, body: Json, *, required: bool = True) -> Instance | None:
        url = _text(body, "start_url")
        if url is None:
            if required:
                raise AdminError(400, "bad_value", "'start_url' is required")
            return None
        instance = self.sso.instances.get(url)
        if instance is None:
            raise AdminError(404, "no_such_instance", f"no Identity Center instance at {url}")
        return instance

    def _user_in(self, instance: Instance, name: str) -> str:
        if name not in instance.users:
            raise AdminError(404, "no_such_user", f"user {name} is not in {instance.start_url}")
        return name

    def create_instance(self, body: Json) -> tuple[int, Json]:
        url = _text(body, "start_url")
        if url is not None and not url.startswith(("https://", "http://")):
            raise AdminError(400, "bad_value", "'start_url' must be an http(s) URL")
        region = _text(body, "region") or "us-east-1"
        if not _REGION.match(region):
            raise AdminError(400, "bad_value", f"'region' {region!r} is not a region name")
        try:
            instance = self.sso.add_instance(url, region)
        except KeyError:
            raise AdminError(409, "exists", f"an instance at {url} already exists") from None
        return 201, {
            "start_url": instance.start_url,
            "region": instance.region,
            "instance_arn": instance.instance_arn,
            "identity_store_id": instance.identity_store_id,
        }

    def create_user(self, body: Json) -> tuple[int, Json]:
        instance = self._instance(body)
        assert instance is not None
        name = _name(body)
        try:
            user = self.sso.add_user(instance.start_url, name, _text(body, "email"))
        except ValueError:
            raise AdminError(409, "exists", f"user {name} already exists") from None
        return 201, {
            "name": user.name,
            "user_id": user.user_id,
            "email": user.email,
            "start_url": instance.start_url,
        }

    def _assignment_args(self, body: Json) -> tuple[Instance, str, str, str]:
        instance = self._instance(body)
        assert instance is not None
        user = self._user_in(instance, _name(body, "user"))
        role = _name(body, "role_name")
        account = _text(body, "account_id") or ACCOUNT_ID
        if not _ACCOUNT.match(account):
            raise AdminError(400, "bad_value", "'account_id' must be 12 digits")
        return instance, user, account, role

    def assign(self, body: Json) -> tuple[int, Json]:
        instance, user, account, role = self._assignment_args(body)
        duration = int(_number(body, "session_duration", 3600))
        low = 3600 if self.sandbox.min_duration >= AWS_MIN_DURATION else self.sandbox.min_duration
        if not low <= duration <= ROLE_MAX:
            raise AdminError(400, "bad_value", f"'session_duration' must be {low}..{ROLE_MAX}")
        with self.sso.lock:
            name = _text(body, "account_name")
            if name or account not in instance.accounts:
                instance.accounts[account] = name or (
                    "sandbox" if account == ACCOUNT_ID else f"account-{account}"
                )
            permission_set = instance.permission_set(account, role, duration)
            instance.users[user].assignments.add((account, role))
        return 201, {
            "start_url": instance.start_url,
            "user": user,
            "account_id": account,
            "account_name": instance.accounts[account],
            "role_name": role,
            "session_duration": duration,
            "role_arn": permission_set.role_arn,
        }

    def unassign(self, body: Json) -> tuple[int, Json]:
        instance, user, account, role = self._assignment_args(body)
        with self.sso.lock:
            assignments = instance.users[user].assignments
            if (account, role) not in assignments:
                raise AdminError(404, "not_assigned", f"{user} has no {role} in {account}")
            assignments.discard((account, role))
        return 200, {"ok": True}

    # -- logins ----------------------------------------------------------------------

    def _device_json(self, device: DeviceAuthorization) -> Json:
        client = self.sso.clients.get(device.client_id)
        return {
            "user_code": device.user_code,
            "client_id": device.client_id,
            "client_name": client.name if client else None,
            "start_url": device.start_url,
            "status": device.status,
            "user": device.user,
            "expires_at": isoformat_z(device.expires_at),
        }

    def _request_json(self, request: AuthorizationRequest) -> Json:
        client = self.sso.clients.get(request.client_id)
        return {
            "request_id": request.request_id,
            "client_id": request.client_id,
            "client_name": client.name if client else None,
            "start_url": request.start_url,
            "redirect_uri": request.redirect_uri,
            "scopes": list(request.scopes),
            "status": request.status,
            "user": request.user,
            "expires_at": isoformat_z(request.expires_at),
        }

    def _pending_devices(self, start_url: str | None) -> list[DeviceAuthorization]:
        now = self.sso.clock.now()
        return [
            d
            for d in self.sso.devices.values()
            if d.status == "pending"
            and now < d.expires_at
            and (start_url is None or d.start_url == start_url)
        ]

    def _pending_requests(self, start_url: str | None) -> list[AuthorizationRequest]:
        now = self.sso.clock.now()
        return [
            r
            for r in self.sso.requests.values()
            if r.status == "pending"
            and now < r.expires_at
            and (start_url is None or r.start_url == start_url)
        ]

    def pending(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            return 200, {
                "device": [self._device_json(d) for d in self._pending_devices(None)],
                "authorize": [self._request_json(r) for r in self._pending_requests(None)],
            }

    def _device(self, body: Json) -> DeviceAuthorization:
        code = _text(body, "user_code")
        start_url = _text(body, "start_url")
        if code is not None:
            found = [d for d in self._pending_devices(start_url) if d.user_code == code.upper()]
        else:
            found = self._pending_devices(start_url)
        if not found:
            raise AdminError(404, "no_pending_login", "no such pending device authorization")
        if len(found) > 1:
            raise AdminError(409, "ambiguous", "several device logins pending; name 'user_code'")
        return found[0]

    def _request(self, body: Json) -> AuthorizationRequest:
        request_id = _text(body, "request_id")
        found = [
            r
            for r in self._pending_requests(_text(body, "start_url"))
            if request_id is None or r.request_id == request_id
        ]
        if not found:
            raise AdminError(404, "no_pending_login", "no such pending /authorize request")
        if len(found) > 1:
            raise AdminError(409, "ambiguous", "several logins pending; name 'request_id'")
        return found[0]

    def approve_device(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            device = self._device(body)
            user = self._user_in(self.sso.instances[device.start_url], _name(body, "user"))
            device.status, device.user = "approved", user
            return 200, self._device_json(device)

    def deny_device(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            device = self._device(body)
            device.status = "denied"
            return 200, self._device_json(device)

    def approve_authorize(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            request = self._request(body)
            user = self._user_in(self.sso.instances[request.start_url], _name(body, "user"))
            self.sso.approve_request(request, user)
            return 200, {**self._request_json(request), "redirect": redirect_for(request)}

    def deny_authorize(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            request = self._request(body)
            request.status = "denied"
            return 200, {**self._request_json(request), "redirect": redirect_for(request)}

    def auto_approve(self, body: Json) -> tuple[int, Json]:
        instance = self._instance(body)
        assert instance is not None
        with self.sso.lock:
            if body.get("user") is None:
                self.sso.auto.pop(instance.start_url, None)
                return 200, {"start_url": instance.start_url, "user": None, "remaining": None}
            user = self._user_in(instance, _name(body, "user"))
            count = _optional_count(body)
            self.sso.auto[instance.start_url] = AutoApproval(user, count)
        return 200, {"start_url": instance.start_url, "user": user, "remaining": count}

    # -- clients, sessions, settings -------------------------------------------------

    def clients(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            return 200, {
                "clients": [
                    {
                        "client_id": c.client_id,
                        "client_name": c.name,
                        "scopes": list(c.scopes),
                        "grant_types": sorted(GRANT_NAMES[g] for g in c.grant_types),
                        "redirect_uris": list(c.redirect_uris),
                        "issuer_url": c.issuer_url,
                        "issued_at": isoformat_z(c.issued_at),
                        "expires_at": isoformat_z(c.expires_at),
                    }
                    for c in self.sso.clients.values()
                ]
            }

    def expire_client(self, body: Json, client_id: str) -> tuple[int, Json]:
        with self.sso.lock:
            client = self.sso.clients.get(client_id)
            if client is None:
                raise AdminError(404, "no_such_client", f"no client {client_id}")
            client.expires_at = self.sso.now() - timedelta(seconds=1)
        return 200, {"client_id": client_id, "expires_at": isoformat_z(client.expires_at)}

    def _session_json(self, session: Session) -> Json:
        return {
            "session_id": session.session_id,
            "user": session.user,
            "client_id": session.client_id,
            "start_url": session.start_url,
            "scopes": list(session.scopes),
            "grant": session.grant,
            "started": isoformat_z(session.started),
            "expires_at": isoformat_z(session.expires_at),
            "revoked": session.revoked,
            "refreshable": session.refresh_token is not None,
            "rotations": session.rotations,
        }

    def sessions(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            return 200, {"sessions": [self._session_json(s) for s in self.sso.sessions.values()]}

    def _matching(self, body: Json) -> list[Session]:
        return self.sso.matching_sessions(
            user=_text(body, "user"),
            client_id=_text(body, "client_id"),
            start_url=_text(body, "start_url"),
        )

    def revoke_sessions(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            matching = self._matching(body)
            for session in matching:
                session.revoked = True
        return 200, {"sessions": len(matching)}

    def expire_sessions(self, body: Json) -> tuple[int, Json]:
        with self.sso.lock:
            matching = self._matching(body)
            for session in matching:
                session.expires_at = min(session.expires_at, self.sso.now())
        return 200, {"sessions": len(matching)}

    def settings(self, body: Json) -> tuple[int, Json]:
        return 200, asdict(self.sso.settings)

    def update_settings(self, body: Json) -> tuple[int, Json]:
        values: dict[str, int] = {}
        for key in body:
            if key not in SETTING_BOUNDS:
                raise AdminError(400, "bad_value", f"unknown setting {key!r}")
            low, high = SETTING_BOUNDS[key]
            number = int(_number(body, key))
            if not low <= number <= high:
                raise AdminError(400, "bad_value", f"{key!r} must be {low}..{high}")
            values[key] = number
        return 200, asdict(self.sso.update_settings(values))
