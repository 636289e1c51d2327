"""IAM Identity Center: role credentials from the portal's ``GetRoleCredentials``.

The access token comes from the parent ``sso-token`` node (:mod:`credd.sources.sso_token`); a
token node's value is a :class:`~credd.models.Credentials` whose ``session_token`` is the bearer
token, so the manager schedules and shares it like any other node, and nothing ever serves it.

When the portal refuses the token (``UnauthorizedException``: the session was revoked or ended,
``aws sso logout``), the token is marked refused in the shared :class:`~credd.sso.TokenStore`,
which withdraws it from the token node, and ``fetch`` raises
:class:`~credd.sources.ParentRefused`: the engine resolves the parent again, once: the token node
re-reads the shared cache, so a login that already landed there is used in this same refresh,
and without one the parent's ``login_required`` becomes this node's. A refused token is never
sent twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from credd.aws.clients import ClientFactory
from credd.aws.errors import Subject, error_code, translate
from credd.clock import UTC
from credd.errors import LoginRequired, UsageError
from credd.models import Credentials
from credd.plan.planner import Node
from credd.sources import ParentRefused
from credd.sources.sso_token import RECHECK, target_of
from credd.sso import TokenStore

log = logging.getLogger(__name__)


class TokenRefused(Exception):  # internal: the portal refused the bearer token
    pass


class SsoRoleSource:
    kind = "sso"
    unattended = True
    mfa_source = None

    def __init__(
        self,
        node: Node,
        *,
        clients: ClientFactory,
        tokens: TokenStore,
    ) -> None:
        assert node.profile.sso is not None
        self.node = node
        self.sso = node.profile.sso
        self._clients = clients
        self._tokens = tokens

    def push_code(self, code: str) -> None:
        raise UsageError(
            f"{self.node.profile.name!r} takes no MFA code",
            hint=f"to log in: credd login {self.node.profile.name}",
        )

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        """Role credentials for the token node's bearer token (``parent``)."""
        token = (parent.session_token or "") if parent is not None else ""
        try:
            return self._role_credentials(token)
        except TokenRefused:
            # Withdrawn from the token node: the engine resolves the parent again, which
            # re-reads the shared cache (a login that already landed there is used in this same
            # refresh) or gives the token node's login_required, and calls fetch again once.
            self._tokens.reject(target_of(self.node), token)
        name = self.node.profile.name
        exc = LoginRequired(
            f"IAM Identity Center no longer accepts the login of {name!r}",
            hint=f"run: credd login {name}",
        )
        exc.recheck_after = RECHECK  # the cache, not AWS
        raise ParentRefused(exc)

    def _role_credentials(self, token: str) -> Credentials:
        name = self.node.profile.name
        subject = Subject(
            f"role {self.sso.role_name} in account {self.sso.account_id} ({name!r})",
            login=f"credd login {name}",
            profile=name,
            denied_hint="check sso_account_id and sso_role_name (aws sso list-account-roles)",
        )
        try:
            portal = self._clients.unsigned_client("sso", name, self.sso.region)
            reply: dict[str, Any] = portal.get_role_credentials(
                roleName=self.sso.role_name, accountId=self.sso.account_id, accessToken=token
            )
        except Exception as exc:
            if error_code(exc) == "UnauthorizedException":
                raise TokenRefused from None
            raise translate(exc, action="sso:GetRoleCredentials", subject=subject) from None
        r = reply["roleCredentials"]
        creds = Credentials(
            r["accessKeyId"],
            r["secretAccessKey"],
            r["sessionToken"],
            datetime.fromtimestamp(int(r["expiration"]) / 1000, UTC),
            self.sso.account_id,
        )
        log.info("profile %s: new SSO role credentials %s (%s)", name, creds, self.sso.role_name)
        return creds
