"""Plan nodes: one repeated call each (an STS call, a helper run, a Vault read), and a plan's chain.

A node is built by one named constructor per kind, never field by field:

======================  ===================  =================================================
constructor             key                  the call
======================  ===================  =================================================
``Node.session(U)``     ``session:U``        ``GetSessionToken`` with an MFA code for user U
``Node.role(R, ...)``   ``role:R``           ``AssumeRole`` from a parent node, U's keys or the
                                             environment
``Node.direct(R, U)``   ``direct:R``         ``AssumeRole`` from U's keys *with* an MFA code
``Node.web_identity``   ``web-identity:R``   ``AssumeRoleWithWebIdentity`` from a token file
``Node.sso_token(P)``   ``sso-token:S``      the IAM Identity Center access token of S
``Node.sso(P, token)``  ``sso:S:ACCT:ROLE``  ``GetRoleCredentials`` from that token
``Node.process(P)``     ``process:P``        P's ``credential_process`` helper
``Node.vault(P)``       ``vault:P``          OpenBao/Vault's AWS secrets engine for P
======================  ===================  =================================================

The keys are the names nodes are shared, scheduled, logged and saved under (``persist``), so they
never change; :class:`Kind` is what code dispatches on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from credd.aws.config import CHAIN_CAP, ManagedProfile

__all__ = ["CodeSourceName", "Kind", "Node", "Plan"]

#: "totp" | "process" | "person": where a node's MFA codes come from (sources/codes.py decides)
CodeSourceName = str


class Kind(str, Enum):
    """What a node does. The values are the strings saved fingerprints were made from (a ``str``:
    JSON and comparisons see the value)."""

    SESSION = "session-token"
    ROLE = "assume-role"
    WEB_IDENTITY = "web-identity"
    SSO_TOKEN = "sso-token"  # noqa: S105 (a node kind, not a secret)
    SSO = "sso"
    PROCESS = "process"
    VAULT = "vault"

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:  # f"{kind}" is the value on every Python
        return format(str(self.value), spec)

    @property
    def from_keys(self) -> bool:
        """Calls made from an IAM user's long-term keys (or the environment's) when parentless."""
        return self in (Kind.SESSION, Kind.ROLE)

    @property
    def saved(self) -> bool:
        """Values ``persist`` keeps in the secret store (SSO tokens live in the CLI's cache)."""
        return self is not Kind.SSO_TOKEN


@dataclass(frozen=True, eq=False)
class Node:
    """One call of a plan. Build it with a named constructor (``Node.session(...)`` ...)."""

    # The compared fields below are the persisted fingerprint's input (engine/persist.py): their
    # names and values must not change, or saved sessions would not be restored after an upgrade.
    key: str
    kind: Kind
    profile: ManagedProfile  # whose settings make the call (user for sessions, role for roles)
    parent: Node | None  # None: from long-term keys, or the environment
    base: str  # the profile holding the long-term keys ("" for the environment)
    with_code: bool  # the call carries an MFA code
    duration: int
    base_profile: ManagedProfile | None = None  # the IAM user with the keys (None: environment)
    #: where this node's MFA codes come from, decided once when it was planned (None: no codes)
    code_source: CodeSourceName | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        kind: object = self.kind
        if not isinstance(kind, Kind):  # a kind given as its string: "sso" -> Kind.SSO
            object.__setattr__(self, "kind", Kind(kind))

    # -- named constructors ----------------------------------------------------------------

    @classmethod
    def session(cls, user: ManagedProfile, code_source: CodeSourceName | None = None) -> Node:
        """``session:U``: GetSessionToken from U's keys with an MFA code."""
        return cls(
            f"session:{user.name}",
            Kind.SESSION,
            user,
            None,
            user.name,
            True,
            user.duration_seconds,
            user,
            code_source,
        )

    @classmethod
    def role(
        cls, role: ManagedProfile, parent: Node | None = None, *, keys: ManagedProfile | None = None
    ) -> Node:
        """``role:R``: AssumeRole from ``parent``'s credentials (the keys of the parent's base
        are the chain's), else from the long-term keys of ``keys``, else from the environment."""
        if parent is not None and keys is not None:
            raise ValueError("a role is assumed from a parent node or from keys, not both")
        base = parent.base_profile if parent is not None else keys
        return cls(
            f"role:{role.name}",
            Kind.ROLE,
            role,
            parent,
            parent.base if parent is not None else (keys.name if keys else ""),
            False,
            _role_duration(role),
            base,
        )

    @classmethod
    def direct(
        cls, role: ManagedProfile, keys: ManagedProfile, code_source: CodeSourceName | None = None
    ) -> Node:
        """``direct:R``: AssumeRole straight from the keys of ``keys`` with an MFA code (a role
        session longer than 1 h)."""
        return cls(
            f"direct:{role.name}",
            Kind.ROLE,
            role,
            None,
            keys.name,
            True,
            _role_duration(role),
            keys,
            code_source,
        )

    @classmethod
    def web_identity(cls, role: ManagedProfile) -> Node:
        """``web-identity:R``: AssumeRoleWithWebIdentity with R's token file (a chain's base)."""
        return cls(
            f"web-identity:{role.name}",
            Kind.WEB_IDENTITY,
            role,
            None,
            "",
            False,
            _role_duration(role),
        )

    @classmethod
    def sso_token(cls, profile: ManagedProfile) -> Node:
        """``sso-token:S``: the access token of the sso-session (or legacy start URL) of P."""
        sso = profile.sso
        if sso is None:
            raise ValueError(f"profile {profile.name!r} is not an IAM Identity Center profile")
        return cls(f"sso-token:{sso.token_key}", Kind.SSO_TOKEN, profile, None, "", False, 0)

    @classmethod
    def sso(cls, profile: ManagedProfile, token: Node | None = None) -> Node:
        """``sso:S:ACCOUNT:ROLE``: GetRoleCredentials from ``token`` (default: P's own)."""
        sso = profile.sso
        if sso is None:
            raise ValueError(f"profile {profile.name!r} is not an IAM Identity Center profile")
        return cls(
            f"sso:{sso.token_key}:{sso.account_id}:{sso.role_name}",
            Kind.SSO,
            profile,
            token if token is not None else cls.sso_token(profile),
            "",
            False,
            0,
        )

    @classmethod
    def process(cls, profile: ManagedProfile) -> Node:
        """``process:P``: P's credential_process helper, run by credd (a chain's base)."""
        return cls(f"process:{profile.name}", Kind.PROCESS, profile, None, "", False, 0)

    @classmethod
    def vault(cls, profile: ManagedProfile) -> Node:
        """``vault:P``: OpenBao/Vault's AWS secrets engine for P (a chain's base)."""
        return cls(f"vault:{profile.name}", Kind.VAULT, profile, None, "", False, 0)

    # -- reading -----------------------------------------------------------------------------

    @property
    def code_profile(self) -> str | None:
        """The profile whose MFA device and code source this node's call uses."""
        return self.base if self.with_code else None

    def _own(self) -> tuple[object, ...]:
        """Everything but the parent: what makes this one call the call it is."""
        return (
            self.key,
            self.kind,
            self.profile,
            self.base,
            self.with_code,
            self.duration,
            self.base_profile,
        )

    def __eq__(self, other: object) -> bool:
        """Same settings all the way down the chain; a loop, not a recursion per hop."""
        if not isinstance(other, Node):
            return NotImplemented
        mine: Node | None = self
        theirs: Node | None = other
        while mine is not None and theirs is not None:
            if mine is theirs:
                return True
            if mine._own() != theirs._own():
                return False
            mine, theirs = mine.parent, theirs.parent
        return mine is None and theirs is None

    def __hash__(self) -> int:
        return hash((self.key, self.kind, self.duration, self.parent.key if self.parent else None))


def _role_duration(role: ManagedProfile) -> int:
    return role.role.duration_seconds if role.role is not None else CHAIN_CAP


@dataclass(frozen=True)
class Plan:
    profile: str
    target: Node

    def nodes(self) -> list[Node]:
        """Base first, target last."""
        out: list[Node] = []
        node: Node | None = self.target
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def code_node(self) -> Node | None:
        """The node that takes MFA codes, if any."""
        return next((n for n in self.nodes() if n.with_code), None)

    @property
    def code_source(self) -> CodeSourceName | None:
        """Where the plan's MFA codes come from, as decided when it was planned (None: none)."""
        node = self.code_node()
        return node.code_source if node is not None else None
