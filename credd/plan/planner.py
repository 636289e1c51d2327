"""How to get credentials for each profile with the fewest requests to a person, within STS rules.

A plan is a chain of *nodes*; each node is one STS call credd repeats on its own schedule:

- ``session:U`` — ``GetSessionToken`` for IAM user profile U with an MFA code: one per user (and so
  per MFA device), shared by U itself and by every role reached through U;
- ``role:R`` — ``AssumeRole`` for role profile R, from its parent node's credentials, or straight
  from long-term keys (or the environment) when no MFA is involved;
- ``direct:R`` — ``AssumeRole`` for R straight from U's long-term keys *with* an MFA code: what a
  role session longer than 1 h needs, chosen only when U's code source is unattended;
- ``sso-token:S`` — the IAM Identity Center access token of sso-session S (or legacy start URL),
  shared with the AWS CLI's cache and refreshed with its refresh token;
- ``sso:S:ACCOUNT:ROLE`` — ``GetRoleCredentials`` from that token, shared by every profile naming
  the same account and role;
- ``process:P`` — profile P's ``credential_process`` helper, run by credd (a chain's base);
- ``web-identity:R`` — ``AssumeRoleWithWebIdentity`` for R from its token file (a chain's base);
- ``vault:P`` — ``MOUNT/creds/ROLE`` or ``MOUNT/sts/ROLE`` of OpenBao/Vault for P (a chain's base).

The rules (facts.md): a role assumed from session credentials or from another role is capped at
1 h; ``GetSessionToken`` lasts up to 36 h and feeds any number of ``AssumeRole`` calls without
further codes. So with one MFA device and a dozen roles, a person types one code per MFA session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from credd.aws.config import CHAIN_CAP, AwsConfig, ManagedProfile, profile_settings
from credd.errors import ConfigError

#: Kinds of profile that are the base of a chain on their own (no MFA, no source_profile).
BASE_KINDS = ("process", "vault")

CodeSourceOf = Callable[[ManagedProfile], str]  # "totp" | "process" | "person"

#: The longest source_profile chain credd plans (hops from the target down to the keys).
#: botocore has no cap, but every hop past the first is a 1 h chained role session: a chain
#: this long is a mistake (or a generated file), and deeper ones must not cost a recursion.
MAX_CHAIN = 64


@dataclass(frozen=True, eq=False)
class Node:
    key: str
    kind: str  # "session-token" | "assume-role" | "sso-token" | "sso" | "process" | "web-identity"
    profile: ManagedProfile  # whose settings make the call (user for sessions, role for roles)
    parent: Node | None  # None: from long-term keys, or the environment
    base: str  # the profile holding the long-term keys ("" for the environment)
    with_code: bool  # the call carries an MFA code
    duration: int
    base_profile: ManagedProfile | None = None  # the IAM user with the keys (None: environment)

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


def _hours(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


_SOURCES = {
    "totp": "the TOTP seed in the keyring",
    "process": "mfa_process",
    "person": "a person (credd mfa)",
}


def explain(plan: Plan, code_source: str | None) -> str:
    """One or two sentences: which calls, which durations, when a person is needed."""
    parts: list[str] = []
    for node in plan.nodes():
        sso = node.profile.sso
        if node.kind == "sso-token" and sso is not None:
            if sso.session_name:
                parts.append(
                    f"IAM Identity Center login of sso-session {sso.session_name!r} (shared with "
                    "the AWS CLI; the access token is renewed with its refresh token)"
                )
            else:
                parts.append(
                    f"IAM Identity Center login for {sso.start_url} (legacy profile: its token "
                    "cannot be refreshed; use an [sso-session] for that)"
                )
            continue
        if node.kind == "sso" and sso is not None:
            parts.append(f"GetRoleCredentials for {sso.role_name} in account {sso.account_id}")
            continue
        if node.kind == "process":
            parts.append(f"credential_process of {node.profile.name!r} (run by credd, no shell)")
            continue
        if node.kind == "vault":
            addr, path = node.profile.raw.get("credd_vault_addr"), _vault_path(node.profile)
            parts.append(f"OpenBao/Vault {path} at {addr} (leases honoured, token renewed)")
            continue
        if node.kind == "web-identity" and node.profile.role is not None:
            parts.append(
                f"AssumeRoleWithWebIdentity {node.profile.role.role_arn} for "
                f"{_hours(node.duration)} with the token in "
                f"{node.profile.role.web_identity_token_file} (re-read at every refresh)"
            )
            continue
        if node.kind == "session-token":
            parts.append(
                f"MFA session of {node.base!r} (GetSessionToken, {_hours(node.duration)}, "
                f"codes from {_SOURCES.get(code_source or '', 'an MFA code')})"
            )
            continue
        role = node.profile.role
        arn = role.role_arn if role else "?"
        if node.with_code:
            how = (
                f"straight from the keys of {node.base!r} with an MFA code from "
                f"{_SOURCES.get(code_source or '', 'an MFA code')} (role sessions over 1 h need it)"
            )
        elif node.parent is None:
            how = (
                "from the environment's keys"
                if not node.base
                else f"from the keys of {node.base!r}"
            )
        elif node.parent.kind == "session-token":
            how = "from that MFA session (no code needed; capped at 1 h)"
        else:
            how = f"from the role session of {node.parent.profile.name!r} (chained: capped at 1 h)"
        parts.append(f"AssumeRole {arn} for {_hours(node.duration)} {how}")
    text = "; then ".join(parts) + "."
    token = plan.nodes()[0]
    if token.kind == "sso-token":
        if token.profile.sso is not None and token.profile.sso.session_name:
            return text + " A person logs in again only when the refresh token ends (credd login)."
        return text + " A person logs in again when the token ends (credd login)."
    if plan.code_node() is None:
        return text + " No MFA: nobody is ever asked."
    if code_source == "person":
        return text + " A person is asked once per MFA session, 1 h before it ends."
    return text + " Unattended: nobody is asked."


def _settings(config: AwsConfig, name: str, chain: list[str]) -> ManagedProfile:
    managed = config.managed.get(name)
    if managed is not None:
        return managed
    if name not in config.profiles:
        raise ConfigError(
            f"profile {chain[0]!r}: source profile {name!r} does not exist "
            f"(chain: {_chain_text([*chain, name])})",
            hint=f"add [profile {name}] or fix source_profile",
        )
    raw: Mapping[str, Any] = config.profiles[name]
    try:
        return profile_settings(name, raw, config.session_minimum, config.sso_sessions)
    except ConfigError as exc:
        raise ConfigError(
            f"profile {chain[0]!r}: its source {name!r} is not usable: {exc.message}",
            hint=exc.hint,
        ) from None


def plan_for(config: AwsConfig, name: str, code_source_of: CodeSourceOf) -> Plan:
    """The plan for managed profile ``name``; ``ConfigError`` naming the chain when impossible."""
    target = config.managed[name]
    if target.sso is not None:
        return Plan(name, _sso_nodes(target))
    if target.kind in BASE_KINDS:
        return Plan(name, _base_node(target))
    if target.role is None:
        node = Node(
            f"session:{name}",
            "session-token",
            target,
            None,
            name,
            True,
            target.duration_seconds,
            target,
        )
        return Plan(name, node)

    chain, names = _walk(config, target)

    base = chain[-1]
    if base.kind in BASE_KINDS:  # roles on a helper's or Vault's keys: STS decides the caps
        return Plan(name, _hops(_base_node(base), chain[-2::-1]))
    if base.sso is not None:  # roles on top of an SSO profile: chained, so 1 h each
        top = _sso_nodes(base)
        for hop in chain[-2::-1]:
            assert hop.role is not None
            if hop.role.duration_seconds > CHAIN_CAP:
                raise ConfigError(
                    f"profile {hop.name!r}: duration_seconds = {hop.role.duration_seconds}, but a "
                    f"role assumed from SSO role credentials is capped at 1 h by STS (chain: "
                    f"{_chain_text(names)})",
                    hint="set duration_seconds = 3600 or less",
                )
            top = Node(
                f"role:{hop.name}",
                "assume-role",
                hop,
                top,
                "",
                False,
                hop.role.duration_seconds,
                None,
            )
        return Plan(name, top)
    device = next((p.mfa_serial for p in chain if p.mfa_serial), None)
    mfa = device is not None or (base.role is None and base.name in config.managed)
    for p in chain:
        if p.mfa_serial and device and p.mfa_serial != device:
            raise ConfigError(
                f"profile {name!r}: two MFA devices in one chain ({device}, {p.mfa_serial})",
                hint="credd uses one MFA session per chain; keep one mfa_serial",
            )

    parent: Node | None
    if base.role is not None:  # credential_source = Environment: the base is itself a role
        if mfa:
            raise ConfigError(
                f"profile {name!r}: MFA with credential_source is not supported",
                hint="use source_profile with an IAM user profile for MFA",
            )
        first, hops = base, chain[-2::-1]
        web = first.role is not None and first.role.web_identity_token_file is not None
        parent = Node(
            f"{'web-identity' if web else 'role'}:{first.name}",
            "web-identity" if web else "assume-role",
            first,
            None,
            "",
            False,
            first.role.duration_seconds if first.role else CHAIN_CAP,
            None,
        )
    else:
        first = chain[-2]
        hops = chain[-3::-1]
        assert first.role is not None
        duration = first.role.duration_seconds
        if not mfa:
            parent = Node(
                f"role:{first.name}", "assume-role", first, None, base.name, False, duration, base
            )
        elif duration <= CHAIN_CAP:
            session = Node(
                f"session:{base.name}",
                "session-token",
                base,
                None,
                base.name,
                True,
                base.duration_seconds,
                base,
            )
            parent = Node(
                f"role:{first.name}",
                "assume-role",
                first,
                session,
                base.name,
                False,
                duration,
                base,
            )
        elif code_source_of(base) != "person":
            parent = Node(
                f"direct:{first.name}", "assume-role", first, None, base.name, True, duration, base
            )
        else:
            raise ConfigError(
                f"profile {first.name!r}: duration_seconds = {duration} needs a fresh MFA code "
                "at every renewal, and codes for it come from a person; credd assumes roles "
                "from one shared MFA session instead, which STS caps at 1 h per role session",
                hint=f"set duration_seconds = 3600 or less, or store a TOTP seed: "
                f"credd totp set {base.name}",
            )
    for hop in hops:
        assert hop.role is not None
        if hop.role.duration_seconds > CHAIN_CAP:
            raise ConfigError(
                f"profile {hop.name!r}: duration_seconds = {hop.role.duration_seconds}, but a role "
                f"assumed from another role is capped at 1 h by STS (chain: "
                f"{_chain_text(names)})",
                hint="set duration_seconds = 3600 or less",
            )
        parent = Node(
            f"role:{hop.name}",
            "assume-role",
            hop,
            parent,
            parent.base,
            False,
            hop.role.duration_seconds,
            parent.base_profile,
        )
    return Plan(name, parent)


def _walk(config: AwsConfig, target: ManagedProfile) -> tuple[list[ManagedProfile], list[str]]:
    """Follow source_profile links down to the profile with keys (or credential_source)."""
    chain = [target]
    names = [target.name]
    seen = {target.name}
    current = target
    while current.role is not None and current.role.source_profile:
        source = current.role.source_profile
        if source in seen:
            raise ConfigError(
                f"profile {target.name!r}: source_profile loops: {_chain_text([*names, source])}",
                hint="make the chain end at a profile with keys",
            )
        if len(names) > MAX_CHAIN:
            raise ConfigError(
                f"profile {target.name!r}: the source_profile chain is longer than {MAX_CHAIN} "
                f"hops ({_chain_text([*names, source])})",
                hint="assume the role from a profile nearer to the keys: every hop past the "
                "first is a 1 h chained role session",
            )
        current = _settings(config, source, names)
        chain.append(current)
        names.append(source)
        seen.add(source)
    return chain, names


def _chain_text(names: list[str]) -> str:
    """``a -> b -> c``; a long chain keeps its first and last hops."""
    if len(names) <= 12:
        return " -> ".join(names)
    return (
        " -> ".join(names[:6]) + f" -> ... ({len(names) - 10} more) -> " + " -> ".join(names[-4:])
    )


def _base_node(profile: ManagedProfile) -> Node:
    """``process:P`` or ``vault:P``: the base of a chain fed by a helper or by Vault."""
    return Node(f"{profile.kind}:{profile.name}", profile.kind, profile, None, "", False, 0, None)


def _vault_path(profile: ManagedProfile) -> str:
    raw = profile.raw
    return "{}/{}/{}".format(
        raw.get("credd_vault_mount", "aws").strip("/"),
        raw.get("credd_vault_type", "creds"),
        raw.get("credd_vault_role", "?"),
    )


def _hops(top: Node, hops: list[ManagedProfile]) -> Node:
    """``role:R`` nodes, each assumed from the one below, on top of ``top``."""
    for hop in hops:
        assert hop.role is not None
        top = Node(
            f"role:{hop.name}", "assume-role", hop, top, "", False, hop.role.duration_seconds
        )
    return top


def _sso_nodes(profile: ManagedProfile) -> Node:
    """``sso-token:S`` -> ``sso:S:ACCOUNT:ROLE`` for an SSO profile."""
    sso = profile.sso
    assert sso is not None
    token = Node(f"sso-token:{sso.token_key}", "sso-token", profile, None, "", False, 0, None)
    return Node(
        f"sso:{sso.token_key}:{sso.account_id}:{sso.role_name}",
        "sso",
        profile,
        token,
        "",
        False,
        0,
        None,
    )
