"""The IAM Identity Center access token of one sso-session (or legacy start URL), as a plan node.

Its value is a :class:`~credd.models.Credentials` whose ``session_token`` is the bearer token and
whose ``expiration`` is the token's: the manager schedules and shares it like any node (refreshed
20 min or more ahead of expiry), and never serves it. The token lives in the cache shared with the
AWS CLI (:mod:`credd.sso`): a login or refresh done by the CLI is picked up, and a refresh done
here is seen by the CLI.

A token the portal refused (:meth:`credd.sso.TokenStore.reject`, called by the role source) or
that the shared cache no longer holds (a new login, a refresh by the AWS CLI, ``aws sso
logout``) is withdrawn: :meth:`SsoTokenSource.still_valid` says so, and the manager fetches the
node again before a role uses it. That fetch re-reads the cache, so a new login is used at once;
with no new token it refreshes or ends in ``login_required``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from credd.clock import Clock
from credd.errors import CreddError, LoginRequired, UsageError
from credd.models import Credentials
from credd.plan.planner import Node
from credd.sso import SsoTarget, SsoToken, TokenStore

log = logging.getLogger(__name__)

#: While a login is needed, the shared cache is looked at again this often (a file read only).
RECHECK = timedelta(seconds=60)
#: A cached token with more than this left is used as is (the schedule refreshes it later).
FRESH_ENOUGH = timedelta(minutes=25)
TOKEN_KEY_ID = "sso-bearer-token"  # noqa: S105 - a label, not a secret


def target_of(node: Node) -> SsoTarget:
    sso = node.profile.sso
    assert sso is not None
    return SsoTarget(sso.start_url, sso.region, sso.session_name, sso.scopes)


def bearer(token: SsoToken) -> Credentials:
    return Credentials(TOKEN_KEY_ID, "", token.access_token, token.expires_at)


class SsoTokenSource:
    kind = "sso-token"
    mfa_source = None

    def __init__(self, node: Node, *, store: TokenStore, clock: Clock) -> None:
        self.node = node
        self.target = target_of(node)
        self._store = store
        self._clock = clock
        self._refused: str | None = None  # a refresh token AWS refused: never sent again

    @property
    def unattended(self) -> bool:
        return not self.target.legacy

    def push_code(self, code: str) -> None:
        raise UsageError(
            f"{self.node.profile.name!r} takes no MFA code",
            hint=f"to log in: credd login {self.node.profile.name}",
        )

    def still_valid(self, creds: Credentials) -> bool:
        """Whether the token the manager holds (``creds.session_token``) may still be sent: not
        refused by IAM Identity Center, and still the one in the shared cache. A file read."""
        held = creds.session_token or ""
        if self._store.rejected(self.target, held):
            return False
        try:
            token = self._store.current(self.target)
        except CreddError:
            return True  # an unreadable cache is reported by the node's next fetch
        return token is not None and token.access_token == held

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        name = self.node.profile.name
        token = self._store.current(self.target)
        now = self._clock.now()
        refused = token is not None and self._store.rejected(self.target, token.access_token)
        if token is not None and not refused and token.expires_at - now > FRESH_ENOUGH:
            return bearer(token)  # fresh from a login or from the AWS CLI: nothing to call
        if token is not None and token.refresh_token and token.refresh_token == self._refused:
            raise self._login(f"IAM Identity Center refused the refresh token of {name!r}")
        try:
            if token is not None and token.has_refresh and not self.target.legacy:
                token = self._store.refresh(self.target, profile=name, force=True)
            else:
                token = self._store.access_token(self.target, profile=name)
        except LoginRequired as exc:
            if token is not None and token.refresh_token:
                self._refused = token.refresh_token
            exc.recheck_after = RECHECK
            raise
        self._refused = None
        log.info("%s: SSO access token valid until %s", self.node.key, token.expires_at)
        return bearer(token)

    def _login(self, message: str) -> LoginRequired:
        exc = LoginRequired(
            message, hint=f"run: {self.target.login_command(self.node.profile.name)}"
        )
        exc.recheck_after = RECHECK
        return exc
