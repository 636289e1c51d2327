"""IAM Identity Center: role credentials from the portal's ``GetRoleCredentials``.

The access token comes from the parent ``sso-token`` node (:mod:`credd.sources.sso_token`); a
token node's value is a :class:`~credd.models.Credentials` whose ``session_token`` is the bearer
token, so the manager schedules and shares it like any other node, and nothing ever serves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from credd.aws.clients import ClientFactory
from credd.aws.errors import Subject, translate
from credd.clock import UTC
from credd.errors import UsageError
from credd.models import Credentials
from credd.planner import Node

log = logging.getLogger(__name__)


class SsoRoleSource:
    kind = "sso"
    unattended = True
    mfa_source = None

    def __init__(
        self, node: Node, *, parent: Callable[[], Credentials], clients: ClientFactory
    ) -> None:
        assert node.profile.sso is not None
        self.node = node
        self.sso = node.profile.sso
        self._parent = parent
        self._clients = clients

    def push_code(self, code: str) -> None:
        raise UsageError(
            f"{self.node.profile.name!r} takes no MFA code",
            hint=f"to log in: credd login {self.node.profile.name}",
        )

    def fetch(self) -> Credentials:
        token = self._parent().session_token or ""
        name = self.node.profile.name
        subject = Subject(
            repr(name),
            login=f"credd login {name}",
            profile=name,
            denied_hint="check sso_account_id and sso_role_name (aws sso list-account-roles)",
        )
        try:
            portal = self._clients.unsigned_client("sso", name, self.sso.region)
            reply = portal.get_role_credentials(
                roleName=self.sso.role_name, accountId=self.sso.account_id, accessToken=token
            )
        except Exception as exc:
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
