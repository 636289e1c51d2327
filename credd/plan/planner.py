"""How to get credentials for each profile with the fewest requests to a person, within STS rules.

A plan is a chain of *nodes* (:mod:`credd.plan.nodes`, one named constructor per kind); each
node is one STS call credd repeats on its own schedule:

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
from typing import Any

from credd.aws.config import CHAIN_CAP, AwsConfig, ManagedProfile, profile_settings
from credd.durations import format_duration
from credd.errors import ConfigError
from credd.plan.nodes import CodeSourceName, Kind, Node, Plan

__all__ = [
    "MAX_CHAIN",
    "CodeSourceOf",
    "Kind",
    "Node",
    "Plan",
    "decided_once",
    "explain",
    "plan_for",
]

#: Kinds of profile that are the base of a chain on their own (no MFA, no source_profile).
BASE_KINDS = ("process", "vault")

#: Which MFA code source a profile uses ("totp" | "process" | "person"): the one decision,
#: :func:`credd.sources.codes.code_source_of`, asked once per plan and kept on the node.
CodeSourceOf = Callable[[ManagedProfile], CodeSourceName | None]

#: The longest source_profile chain credd plans (hops from the target down to the keys).
#: botocore has no cap, but every hop past the first is a 1 h chained role session: a chain
#: this long is a mistake (or a generated file), and deeper ones must not cost a recursion.
MAX_CHAIN = 64


def decided_once(code_source_of: CodeSourceOf) -> CodeSourceOf:
    """``code_source_of`` asked at most once per profile: one load plans many roles behind one
    user, and the answer may read the keyring."""
    answers: dict[str, CodeSourceName | None] = {}

    def ask(profile: ManagedProfile) -> CodeSourceName | None:
        if profile.name not in answers:
            answers[profile.name] = code_source_of(profile)
        return answers[profile.name]

    return ask


_SOURCES = {
    "totp": "the TOTP seed in the keyring",
    "process": "mfa_process",
    "person": "a person (credd mfa)",
}


def explain(plan: Plan, code_source: CodeSourceName | None = None) -> str:
    """One or two sentences: which calls, which durations, when a person is needed.

    ``code_source``: the code source in use (default: the one decided when planning)."""
    source = code_source if code_source is not None else plan.code_source
    text = "; then ".join(_describe(node, source) for node in plan.nodes()) + "."
    token = plan.nodes()[0]
    if token.kind is Kind.SSO_TOKEN:
        if token.profile.sso is not None and token.profile.sso.session_name:
            return text + " A person logs in again only when the refresh token ends (credd login)."
        return text + " A person logs in again when the token ends (credd login)."
    if plan.code_node() is None:
        return text + " No MFA: nobody is ever asked."
    if source == "person":
        return text + " A person is asked once per MFA session, 1 h before it ends."
    return text + " Unattended: nobody is asked."


def _describe(node: Node, code_source: CodeSourceName | None) -> str:
    """One node's call in words."""
    sso = node.profile.sso
    codes = _SOURCES.get(code_source or "", "an MFA code")
    if node.kind is Kind.SSO_TOKEN and sso is not None:
        if sso.session_name:
            return (
                f"IAM Identity Center login of sso-session {sso.session_name!r} (shared with "
                "the AWS CLI; the access token is renewed with its refresh token)"
            )
        return (
            f"IAM Identity Center login for {sso.start_url} (legacy profile: its token "
            "cannot be refreshed; use an [sso-session] for that)"
        )
    if node.kind is Kind.SSO and sso is not None:
        return f"GetRoleCredentials for {sso.role_name} in account {sso.account_id}"
    if node.kind is Kind.PROCESS:
        return f"credential_process of {node.profile.name!r} (run by credd, no shell)"
    if node.kind is Kind.VAULT:
        addr, path = node.profile.raw.get("credd_vault_addr"), _vault_path(node.profile)
        return f"OpenBao/Vault {path} at {addr} (leases honoured, token renewed)"
    if node.kind is Kind.WEB_IDENTITY and node.profile.role is not None:
        return (
            f"AssumeRoleWithWebIdentity {node.profile.role.role_arn} for "
            f"{format_duration(node.duration)} with the token in "
            f"{node.profile.role.web_identity_token_file} (re-read at every refresh)"
        )
    if node.kind is Kind.SESSION:
        return (
            f"MFA session of {node.base!r} (GetSessionToken, {format_duration(node.duration)}, "
            f"codes from {codes})"
        )
    return _describe_role(node, codes)


def _describe_role(node: Node, codes: str) -> str:
    role = node.profile.role
    arn = role.role_arn if role else "?"
    if node.with_code:
        how = (
            f"straight from the keys of {node.base!r} with an MFA code from "
            f"{codes} (role sessions over 1 h need it)"
        )
    elif node.parent is None:
        how = "from the environment's keys" if not node.base else f"from the keys of {node.base!r}"
    elif node.parent.kind is Kind.SESSION:
        how = "from that MFA session (no code needed; capped at 1 h)"
    else:
        how = f"from the role session of {node.parent.profile.name!r} (chained: capped at 1 h)"
    return f"AssumeRole {arn} for {format_duration(node.duration)} {how}"


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


# -- planning: the chain walk, then one function per kind of profile ---------------------


def plan_for(config: AwsConfig, name: str, code_source_of: CodeSourceOf) -> Plan:
    """The plan for managed profile ``name``; ``ConfigError`` naming the chain when impossible."""
    target = config.managed[name]
    if target.sso is not None:
        return Plan(name, plan_sso(target))
    if target.kind in BASE_KINDS:
        return Plan(name, plan_helper(target))
    if target.role is None:
        return Plan(name, plan_user(target, code_source_of))
    chain, names = _walk(config, target)
    base = chain[-1]
    if base.kind in BASE_KINDS:  # roles on a helper's or Vault's keys: STS decides the caps
        return Plan(name, _roles_on(plan_helper(base), chain[-2::-1]))
    if base.sso is not None:  # roles on top of an SSO profile: chained, so 1 h each
        return Plan(name, _chained(plan_sso(base), chain[-2::-1], names, "SSO role credentials"))
    if base.role is not None:  # credential_source = Environment: the base is itself a role
        first = plan_environment(name, chain, config)
        hops = chain[-2::-1]
    else:
        first = plan_keys(name, chain, config, code_source_of)
        hops = chain[-3::-1]
    return Plan(name, _chained(first, hops, names, "another role"))


def plan_user(user: ManagedProfile, code_source_of: CodeSourceOf) -> Node:
    """An IAM user profile: its MFA session (``session:U``)."""
    return Node.session(user, code_source_of(user))


def plan_sso(profile: ManagedProfile) -> Node:
    """An IAM Identity Center profile: ``sso-token:S`` -> ``sso:S:ACCOUNT:ROLE``."""
    return Node.sso(profile, Node.sso_token(profile))


def plan_helper(profile: ManagedProfile) -> Node:
    """A ``credential_process`` or OpenBao/Vault profile: the base of a chain on its own."""
    if profile.kind == "vault":
        return Node.vault(profile)
    return Node.process(profile)


def plan_environment(name: str, chain: list[ManagedProfile], config: AwsConfig) -> Node:
    """The first role of a chain based on ``credential_source`` (the environment's keys, or a
    web identity token): never with MFA."""
    first = chain[-1]
    if _chain_device(name, chain, config) is not None:
        raise ConfigError(
            f"profile {name!r}: MFA with credential_source is not supported",
            hint="use source_profile with an IAM user profile for MFA",
        )
    if first.role is not None and first.role.web_identity_token_file is not None:
        return Node.web_identity(first)
    return Node.role(first)


def plan_keys(
    name: str, chain: list[ManagedProfile], config: AwsConfig, code_source_of: CodeSourceOf
) -> Node:
    """The first role above an IAM user's keys: from the keys without MFA; from the user's
    shared MFA session (1 h); or straight from the keys with a code when it lasts longer, which
    only an unattended code source can keep up."""
    base, first = chain[-1], chain[-2]
    assert first.role is not None
    duration = first.role.duration_seconds
    if _chain_device(name, chain, config) is None:
        return Node.role(first, keys=base)
    if duration <= CHAIN_CAP:
        return Node.role(first, Node.session(base, code_source_of(base)))
    source = code_source_of(base)
    if source is not None and source != "person":  # undecided: a person, the strict reading
        return Node.direct(first, base, source)
    raise ConfigError(
        f"profile {first.name!r}: duration_seconds = {duration} needs a fresh MFA code "
        "at every renewal, and codes for it come from a person; credd assumes roles "
        "from one shared MFA session instead, which STS caps at 1 h per role session",
        hint="set duration_seconds = 3600 or less, or store a TOTP seed: "
        f"credd totp set {base.name}",
    )


def _chain_device(name: str, chain: list[ManagedProfile], config: AwsConfig) -> str | None:
    """The chain's one MFA device ("" for a managed user without mfa_serial; None: no MFA);
    ``ConfigError`` for two devices in one chain."""
    device = next((p.mfa_serial for p in chain if p.mfa_serial), None)
    for p in chain:
        if p.mfa_serial and device and p.mfa_serial != device:
            raise ConfigError(
                f"profile {name!r}: two MFA devices in one chain ({device}, {p.mfa_serial})",
                hint="credd uses one MFA session per chain; keep one mfa_serial",
            )
    base = chain[-1]
    if device is None and base.role is None and base.name in config.managed:
        return ""
    return device


def _roles_on(top: Node, hops: list[ManagedProfile]) -> Node:
    """``role:R`` nodes, each assumed from the one below, on top of ``top`` (caps left to STS)."""
    for hop in hops:
        top = Node.role(hop, top)
    return top


def _chained(top: Node, hops: list[ManagedProfile], names: list[str], below: str) -> Node:
    """``role:R`` nodes on top of ``top``, each a chained role session STS caps at 1 h."""
    for hop in hops:
        assert hop.role is not None
        if hop.role.duration_seconds > CHAIN_CAP:
            raise ConfigError(
                f"profile {hop.name!r}: duration_seconds = {hop.role.duration_seconds}, but a "
                f"role assumed from {below} is capped at 1 h by STS (chain: "
                f"{_chain_text(names)})",
                hint="set duration_seconds = 3600 or less",
            )
        top = Node.role(hop, top)
    return top


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


def _vault_path(profile: ManagedProfile) -> str:
    raw = profile.raw
    return "{}/{}/{}".format(
        raw.get("credd_vault_mount", "aws").strip("/"),
        raw.get("credd_vault_type", "creds"),
        raw.get("credd_vault_role", "?"),
    )
