"""Which SSO login a profile uses, read the way botocore and the AWS CLI read it.

Two styles (botocore ``SSOProvider`` / ``SSOTokenProvider``, the AWS CLI's ``BaseSSOCommand``):

- ``sso_session = NAME`` in the profile and ``[sso-session NAME]`` holding ``sso_start_url``,
  ``sso_region`` and optionally ``sso_registration_scopes`` (comma-separated). Tokens are cached
  under ``sha1(NAME)`` and can be refreshed.
- legacy: ``sso_start_url`` and ``sso_region`` in the profile itself. Tokens are cached under
  ``sha1(start URL)`` and are never refreshed (botocore does not refresh them either).

A profile that assumes a role on top of an SSO profile (``source_profile``) logs in through that
SSO profile.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from credd.errors import ConfigError, ProfileNotFound

#: The scope that makes CreateToken hand out a refresh token (and the CLI's default).
REFRESH_SCOPE = "sso:account:access"
_MAX_CHAIN = 10


@dataclass(frozen=True)
class SsoTarget:
    """One SSO login: what identifies its token in the shared cache."""

    start_url: str
    region: str
    session_name: str | None  # None: a legacy profile
    scopes: tuple[str, ...] | None = None  # sso_registration_scopes as configured

    @property
    def legacy(self) -> bool:
        return self.session_name is None

    @property
    def label(self) -> str:
        """How people name it: the sso-session, or the start URL of a legacy profile."""
        return self.session_name if self.session_name is not None else self.start_url

    @property
    def cache_key(self) -> str:
        """botocore ``SSOTokenLoader._generate_cache_key``: sha1 of the session name, else of
        the start URL."""
        return hashlib.sha1(self.label.encode("utf-8")).hexdigest()  # noqa: S324 - a file name

    @property
    def registration_key(self) -> str:
        """The AWS CLI v2's ``BaseSSOTokenFetcher._registration_cache_key``."""
        args = {
            "tool": "botocore",
            "startUrl": self.start_url,
            "region": self.region,
            "scopes": list(self.scopes) if self.scopes is not None else None,
            "session_name": self.session_name,
        }
        data = json.dumps(args, sort_keys=True).encode("utf-8")
        return hashlib.sha1(data).hexdigest()  # noqa: S324 - a file name, as the CLI does

    @property
    def login_scopes(self) -> list[str]:
        """Scopes to register with: those configured, else the refresh scope."""
        return list(self.scopes) if self.scopes else [REFRESH_SCOPE]

    def login_command(self, profile: str | None = None) -> str:
        if profile:
            return f"credd login {profile}"
        if self.session_name is not None:
            return f"credd login --sso-session {self.session_name}"
        return "credd login PROFILE"


def parse_scopes(raw: str) -> tuple[str, ...]:
    """The AWS CLI's ``parse_sso_registration_scopes``: comma-separated, blanks dropped."""
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def load_full_config(environ: Mapping[str, str] | None = None) -> Mapping[str, Any]:
    """botocore's ``full_config`` for the current files, read by :mod:`credd.aws.config` (the
    one reader of the AWS files)."""
    from credd.aws.config import read_full_config

    return read_full_config(environ)


def _need(section: Mapping[str, Any], key: str, where: str, hint: str) -> str:
    value = section.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} has no {key}", hint=hint)
    return value.strip()


def resolve_session(name: str, full_config: Mapping[str, Any]) -> SsoTarget:
    """The target of ``[sso-session NAME]``."""
    sessions: Mapping[str, Mapping[str, Any]] = full_config.get("sso_sessions", {}) or {}
    section = sessions.get(name)
    if section is None:
        raise ConfigError(
            f"there is no [sso-session {name}] in the AWS config",
            hint="add it (aws configure sso-session writes one), or check the name",
        )
    hint = f"add sso_start_url and sso_region to [sso-session {name}]"
    where = f"[sso-session {name}]"
    raw_scopes = section.get("sso_registration_scopes")
    return SsoTarget(
        start_url=_need(section, "sso_start_url", where, hint),
        region=_need(section, "sso_region", where, hint),
        session_name=name,
        scopes=parse_scopes(raw_scopes) if isinstance(raw_scopes, str) else None,
    )


def sso_profile_of(profile: str, full_config: Mapping[str, Any]) -> str:
    """``profile`` itself when it is an SSO profile, else the SSO profile its role chain
    (``source_profile``) starts from."""
    profiles: Mapping[str, Mapping[str, Any]] = full_config.get("profiles", {}) or {}
    name = profile
    seen: list[str] = []
    while True:
        raw = profiles.get(name)
        if raw is None:
            raise ProfileNotFound(
                f"no profile named {name!r} in the AWS config",
                hint="check the name (aws configure list-profiles shows them)",
            )
        if "sso_session" in raw or "sso_start_url" in raw:
            return name
        source = raw.get("source_profile")
        seen.append(name)
        if not source or source in seen or len(seen) > _MAX_CHAIN:
            raise ConfigError(
                f"profile {profile!r} does not use IAM Identity Center (SSO)",
                hint="give it sso_session (or sso_start_url and sso_region), or a "
                "source_profile that has them",
            )
        name = str(source)


def resolve_profile(profile: str, full_config: Mapping[str, Any]) -> SsoTarget:
    """The SSO login ``profile`` uses (following a role chain down to its SSO profile)."""
    name = sso_profile_of(profile, full_config)
    raw: Mapping[str, Any] = full_config["profiles"][name]
    session = raw.get("sso_session")
    if session:
        target = resolve_session(str(session).strip(), full_config)
        for key, value in (("sso_start_url", target.start_url), ("sso_region", target.region)):
            mine = raw.get(key)
            if mine is not None and str(mine).strip() != value:
                raise ConfigError(
                    f"profile {name!r}: {key} differs between the profile and "
                    f"[sso-session {target.session_name}]",
                    hint=f"remove {key} from the profile (botocore refuses this too)",
                )
        return target
    hint = f"add sso_start_url and sso_region to [profile {name}], or use sso_session"
    where = f"profile {name!r}"
    return SsoTarget(
        start_url=_need(raw, "sso_start_url", where, hint),
        region=_need(raw, "sso_region", where, hint),
        session_name=None,
    )


def profiles_using(target: SsoTarget, full_config: Mapping[str, Any]) -> list[str]:
    """Every profile whose credentials come from ``target``'s login (directly or via a chain)."""
    out: list[str] = []
    for name in sorted(full_config.get("profiles", {}) or {}):
        try:
            if resolve_profile(name, full_config) == target:
                out.append(name)
        except ConfigError:
            continue
    return out
