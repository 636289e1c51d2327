"""Credential sources: one file per kind of STS call, each with one verb, ``fetch()``.

Caching, scheduling, retries and sharing live outside the sources (in :mod:`credd.manager`).
:func:`build_source` is the one place that turns a plan node into a source, and logs why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from credd.aws.clients import ClientFactory
from credd.clock import Clock
from credd.mfa import CodeLedger
from credd.models import Credentials
from credd.plan.planner import Node
from credd.secrets.store import SecretStore

if TYPE_CHECKING:
    from credd.sso import TokenStore

log = logging.getLogger(__name__)


class Source(Protocol):
    """Obtains fresh credentials for one plan node."""

    kind: str

    @property
    def unattended(self) -> bool:
        """True when a refresh right now needs nobody (no person must type a code)."""

    @property
    def mfa_source(self) -> str | None:
        """Name of the MFA code source in use (``totp``, ``process``, ``person``), if any."""

    def push_code(self, code: str) -> None:
        """Hold a code typed by a person for the next fetch."""

    def fetch(self) -> Credentials:
        """New credentials, or a ``CreddError`` (``NeedsMfa`` when a person must act)."""


# A source may also offer ``still_valid(creds) -> bool``: False withdraws a value it gave before
# it expires (an SSO token the portal refused, or that the shared cache no longer holds); the
# manager then fetches the node again before a child uses it, and on ``credd refresh``.


def build_source(
    node: Node,
    parent: Callable[[], Credentials],
    *,
    secrets: SecretStore,
    clients: ClientFactory,
    ledger: CodeLedger,
    clock: Clock,
    environ: Mapping[str, str] | None = None,
    tokens: TokenStore | None = None,
) -> Source:
    """The source for ``node``; ``parent`` gives the parent node's credentials."""
    if node.kind in {"sso-token", "sso"} and tokens is None:
        # The token node and its roles must share one store: a token a role saw refused is
        # withdrawn from the token node through it.
        raise TypeError("build_source: IAM Identity Center nodes need tokens= (a TokenStore)")
    if node.kind == "sso-token":
        from credd.sources.sso_token import SsoTokenSource

        assert tokens is not None
        log.info("%s: IAM Identity Center token from the shared cache", node.key)
        return SsoTokenSource(node, store=tokens, clock=clock)
    if node.kind == "sso":
        from credd.sources.sso import SsoRoleSource

        assert tokens is not None
        log.info("%s: sso:GetRoleCredentials", node.key)
        return SsoRoleSource(node, parent=parent, clients=clients, tokens=tokens)
    if node.kind == "process":
        from credd.sources.process import CredentialProcessSource

        log.info("%s: credential_process run by credd", node.key)
        return CredentialProcessSource(node, clock=clock)
    if node.kind == "vault":
        from credd.sources.vault import VaultSource

        log.info("%s: OpenBao/Vault AWS secrets engine", node.key)
        return VaultSource(node, secrets=secrets, clients=clients, clock=clock)
    if node.kind == "web-identity":
        from credd.sources.web_identity import WebIdentitySource

        log.info("%s: sts:AssumeRoleWithWebIdentity for %d s", node.key, node.duration)
        return WebIdentitySource(node, clients=clients)
    if node.kind == "session-token":
        from credd.sources.session_token import SessionTokenSource

        log.info("%s: sts:GetSessionToken for %d s", node.key, node.duration)
        return SessionTokenSource(
            node.profile, secrets=secrets, clients=clients, ledger=ledger, clock=clock
        )
    from credd.sources.assume_role import AssumeRoleSource
    from credd.sources.keys import environment_keys, long_term_keys

    base = node.base_profile
    if node.parent is not None:
        getter = parent
        origin = f"the credentials of {node.parent.key}"
    elif base is not None:
        getter = lambda: long_term_keys(base, secrets)  # noqa: E731
        origin = f"the long-term keys of {base.name!r}" + (
            " with an MFA code" if node.with_code else ""
        )
    else:
        getter = lambda: environment_keys(node.profile.name, environ)  # noqa: E731
        origin = "the daemon's environment"
    log.info("%s: sts:AssumeRole for %d s from %s", node.key, node.duration, origin)
    return AssumeRoleSource(
        node, parent=getter, secrets=secrets, clients=clients, ledger=ledger, clock=clock
    )
