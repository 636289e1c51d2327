"""The SSO portal: GetRoleCredentials, ListAccounts, ListAccountRoles and Logout.

Callers present an access token from SSO-OIDC in ``x-amz-sso_bearer_token``; it must be
known, unexpired on the sandbox clock and its session not revoked or ended. Role credentials
are issued by the sandbox's own STS state, so the SigV4 gateway accepts them, with the
permission set's session duration.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from credd_sandbox.sso_state import ACCOUNT_SCOPE, Instance, Session, SsoState, SsoUser
from credd_sandbox.sso_wire import Reply, SsoCall, fault
from credd_sandbox.state import SandboxState

log = logging.getLogger(__name__)

_UNAUTHORIZED = "Session token not found or invalid"


def _session(sso: SsoState, call: SsoCall) -> tuple[Session, Instance, SsoUser]:
    token = call.bearer
    session = sso.session_for_access_token(token) if token else None
    if session is None or (session.scopes and ACCOUNT_SCOPE not in session.scopes):
        raise fault("UnauthorizedException", _UNAUTHORIZED)
    with sso.lock:
        instance = sso.instances[session.start_url]
        user = instance.users.get(session.user)
    if user is None:
        raise fault("UnauthorizedException", _UNAUTHORIZED)
    return session, instance, user


def _required(call: SsoCall, key: str) -> str:
    value = call.query.get(key, "")
    if not value:
        raise fault("InvalidRequestException", f"{key} is required")
    return value


def _page(
    items: list[dict[str, Any]], call: SsoCall, cap: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items``: at most ``max_result`` and at most ``cap`` (the sandbox's
    ``portal_page_size``) of them, with the ``nextToken`` of the rest."""
    raw = call.query.get("max_result")
    try:
        size = cap if raw is None else int(raw)
    except ValueError:
        raise fault("InvalidRequestException", "max_result must be a number") from None
    if not 1 <= size <= 100:
        raise fault("InvalidRequestException", "max_result must be between 1 and 100")
    size = min(size, cap)
    offset = 0
    token = call.query.get("next_token")
    if token:
        try:
            kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
            offset = int(number)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise fault("InvalidRequestException", "Invalid next token") from None
        if kind != "sandbox-page" or offset < 0:
            raise fault("InvalidRequestException", "Invalid next token")
    end = offset + size
    following = None
    if end < len(items):
        following = base64.urlsafe_b64encode(f"sandbox-page:{end}".encode()).decode()
    return items[offset:end], following


def _listing(sso: SsoState, key: str, items: list[dict[str, Any]], call: SsoCall) -> Reply:
    chunk, following = _page(items, call, sso.settings.portal_page_size)
    payload: dict[str, Any] = {key: chunk}
    if following is not None:
        payload["nextToken"] = following
    return Reply(payload=payload)


def get_role_credentials(sandbox: SandboxState, sso: SsoState, call: SsoCall) -> Reply:
    role_name = _required(call, "role_name")
    account_id = _required(call, "account_id")
    _, instance, user = _session(sso, call)
    with sso.lock:
        permission_set = instance.permission_sets.get((account_id, role_name))
        assigned = (account_id, role_name) in user.assignments
    if not assigned or permission_set is None:
        raise fault("ForbiddenException", "No access")
    record = sandbox.issue(
        kind="role",
        arn=(f"arn:aws:sts::{account_id}:assumed-role/{permission_set.reserved_name}/{user.name}"),
        principal_id=f"{permission_set.role_id}:{user.name}",
        user_name=None,
        duration=permission_set.session_duration,
        mfa=False,
        role_arn=permission_set.role_arn,
    )
    assert record.expiration is not None
    log.info("role credentials ...%s for %s as %s", record.access_key_id[-4:], user.name, role_name)
    return Reply(
        payload={
            "roleCredentials": {
                "accessKeyId": record.access_key_id,
                "secretAccessKey": record.secret,
                "sessionToken": record.token,
                "expiration": int(record.expiration.timestamp() * 1000),
            }
        }
    )


def list_accounts(sandbox: SandboxState, sso: SsoState, call: SsoCall) -> Reply:
    _, instance, user = _session(sso, call)
    with sso.lock:
        accounts = sorted({account for account, _ in user.assignments})
        items = [
            {
                "accountId": account,
                "accountName": instance.accounts.get(account, account),
                "emailAddress": f"aws+{account}@example.com",
            }
            for account in accounts
        ]
    return _listing(sso, "accountList", items, call)


def list_account_roles(sandbox: SandboxState, sso: SsoState, call: SsoCall) -> Reply:
    account_id = _required(call, "account_id")
    _, _, user = _session(sso, call)
    with sso.lock:
        roles = sorted(role for account, role in user.assignments if account == account_id)
    items = [{"roleName": role, "accountId": account_id} for role in roles]
    return _listing(sso, "roleList", items, call)


def logout(sandbox: SandboxState, sso: SsoState, call: SsoCall) -> Reply:
    """Ends the token's session: its access tokens and refresh token stop working."""
    session, _, user = _session(sso, call)
    with sso.lock:
        session.revoked = True
    log.info("logout of %s (session %s)", user.name, session.session_id)
    return Reply(payload={})
