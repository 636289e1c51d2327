"""Credential sources: one file per kind of STS call, each with one verb, ``fetch()``.

Caching, scheduling, retries and sharing live outside the sources (in :mod:`credd.engine`).
:func:`build_source` is the one place that turns a plan node into a source (one builder per node
kind), and logs its choice once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from credd.aws.clients import ClientFactory
from credd.clock import Clock
from credd.errors import CreddError
from credd.models import Credentials
from credd.plan.nodes import Kind, Node
from credd.secrets.store import SecretStore
from credd.sources.mfa import CodeLedger

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

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        """New credentials, or a ``CreddError`` (``NeedsMfa`` when a person must act).

        ``parent``: the parent node's credentials, resolved by the engine before the call (a
        node without a parent gets ``None``). A source never calls back into the engine."""


class ParentRefused(Exception):  # a signal to the engine, not an error to report
    """Raised by ``fetch(parent)`` when AWS refused the parent's value (an SSO token the portal
    no longer accepts) and the source has withdrawn it (``still_valid`` now says so).

    The engine resolves the parent once more (which fetches it anew) and, when that gives a
    different value, calls ``fetch`` again; otherwise it records :attr:`error`."""

    def __init__(self, error: CreddError) -> None:
        super().__init__(error.message)
        self.error = error


# A source may also offer ``still_valid(creds) -> bool``: False withdraws a value it gave before
# it expires (an SSO token the portal refused, or that the shared cache no longer holds); the
# engine then fetches the node again before a child uses it, and on ``credd refresh``.


@dataclass(frozen=True)
class _Needs:
    """What :func:`build_source` was given, for the one builder a node's kind picks."""

    secrets: SecretStore
    clients: ClientFactory
    ledger: CodeLedger
    clock: Clock
    environ: Mapping[str, str] | None
    tokens: TokenStore | None


def build_source(
    node: Node,
    *,
    secrets: SecretStore,
    clients: ClientFactory,
    ledger: CodeLedger,
    clock: Clock,
    environ: Mapping[str, str] | None = None,
    tokens: TokenStore | None = None,
) -> Source:
    """The source for ``node`` (one builder per :class:`~credd.plan.nodes.Kind`), logged once;
    the engine hands each ``fetch`` its parent's credentials."""
    if node.kind in (Kind.SSO_TOKEN, Kind.SSO) and tokens is None:
        # The token node and its roles must share one store: a token a role saw refused is
        # withdrawn from the token node through it.
        raise TypeError("build_source: IAM Identity Center nodes need tokens= (a TokenStore)")
    source, how = _BUILDERS[node.kind](
        node, _Needs(secrets, clients, ledger, clock, environ, tokens)
    )
    log.info("%s: %s", node.key, how)
    return source


def _sso_token(node: Node, needs: _Needs) -> tuple[Source, str]:
    from credd.sources.sso_token import SsoTokenSource

    assert needs.tokens is not None
    source = SsoTokenSource(node, store=needs.tokens, clock=needs.clock)
    return source, "IAM Identity Center token from the shared cache"


def _sso(node: Node, needs: _Needs) -> tuple[Source, str]:
    from credd.sources.sso import SsoRoleSource

    assert needs.tokens is not None
    source = SsoRoleSource(node, clients=needs.clients, tokens=needs.tokens)
    return source, "sso:GetRoleCredentials"


def _process(node: Node, needs: _Needs) -> tuple[Source, str]:
    from credd.sources.process import CredentialProcessSource

    return CredentialProcessSource(node, clock=needs.clock), "credential_process run by credd"


def _vault(node: Node, needs: _Needs) -> tuple[Source, str]:
    from credd.sources.vault import VaultSource

    source = VaultSource(node, secrets=needs.secrets, clients=needs.clients, clock=needs.clock)
    return source, "OpenBao/Vault AWS secrets engine"


def _web_identity(node: Node, needs: _Needs) -> tuple[Source, str]:
    from credd.sources.web_identity import WebIdentitySource

    source = WebIdentitySource(node, clients=needs.clients)
    return source, f"sts:AssumeRoleWithWebIdentity for {node.duration} s"


def _session(node: Node, needs: _Needs) -> tuple[Source, str]:
    from credd.sources.session_token import SessionTokenSource

    source = SessionTokenSource(
        node.profile,
        secrets=needs.secrets,
        clients=needs.clients,
        ledger=needs.ledger,
        clock=needs.clock,
        code_source=node.code_source,
    )
    return source, f"sts:GetSessionToken for {node.duration} s"


def _role(node: Node, needs: _Needs) -> tuple[Source, str]:
    from credd.sources.assume_role import AssumeRoleSource
    from credd.sources.keys import environment_keys, long_term_keys

    base = node.base_profile
    keys: Callable[[], Credentials] | None = None  # with a parent node: the engine hands it in
    if node.parent is not None:
        origin = f"the credentials of {node.parent.key}"
    elif base is not None:
        keys = lambda: long_term_keys(base, needs.secrets)  # noqa: E731
        origin = f"the long-term keys of {base.name!r}" + (
            " with an MFA code" if node.with_code else ""
        )
    else:
        keys = lambda: environment_keys(node.profile.name, needs.environ)  # noqa: E731
        origin = "the daemon's environment"
    source = AssumeRoleSource(
        node,
        keys=keys,
        secrets=needs.secrets,
        clients=needs.clients,
        ledger=needs.ledger,
        clock=needs.clock,
    )
    return source, f"sts:AssumeRole for {node.duration} s from {origin}"


#: One builder per node kind (tests/unit/test_plan_nodes.py checks that none is missing).
_BUILDERS: dict[Kind, Callable[[Node, _Needs], tuple[Source, str]]] = {
    Kind.SSO_TOKEN: _sso_token,
    Kind.SSO: _sso,
    Kind.PROCESS: _process,
    Kind.VAULT: _vault,
    Kind.WEB_IDENTITY: _web_identity,
    Kind.SESSION: _session,
    Kind.ROLE: _role,
}
