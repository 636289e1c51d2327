"""The profile keys of the sources a central issuer feeds: ``credential_process``, web identity
(``role_arn`` + ``web_identity_token_file``) and OpenBao/Vault (``credd_vault_*``).

:func:`check` validates them when the AWS config is loaded (a wrong key marks only that profile
broken); the sources read the values back with the helpers here, so both agree.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from credd.errors import ConfigError

PROCESS_TIMEOUT = 60.0  # seconds; credd_process_timeout changes it
PROCESS_TIMEOUT_MAX = 600.0


def process_argv(name: str, command: str) -> list[str]:
    """``credential_process`` split as botocore splits it (POSIX shell words, no shell).

    A command that runs ``credd get`` is refused: the daemon would ask itself for the
    credentials it is fetching (a loop)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(
            f"profile {name!r}: credential_process cannot be split into words: {exc}",
            hint="fix the quoting in credential_process",
        ) from None
    if not argv:
        raise ConfigError(
            f"profile {name!r}: credential_process is empty", hint="name the helper to run"
        )
    for i, word in enumerate(argv[:-1]):
        base = os.path.basename(word)
        if (base == "credd" or word == "credd.cli") and argv[i + 1] == "get":
            raise ConfigError(
                f"profile {name!r} has credd = true and credential_process runs 'credd get': "
                "credd would ask itself for the credentials it is fetching (a loop)",
                hint="keep credd = true on the profile credd manages and credential_process = "
                "credd get NAME on a separate profile that programs use",
            )
    return argv


def process_timeout(name: str, raw: Mapping[str, Any]) -> float:
    text = raw.get("credd_process_timeout")
    if text is None:
        return PROCESS_TIMEOUT
    try:
        value = float(str(text).strip().rstrip("s"))
    except ValueError:
        value = -1.0
    if not 0 < value <= PROCESS_TIMEOUT_MAX:
        raise ConfigError(
            f"profile {name!r}: credd_process_timeout = {text!r} is not a number of seconds "
            f"between 0 and {PROCESS_TIMEOUT_MAX:.0f}",
            hint="e.g. credd_process_timeout = 60",
        )
    return value


def is_process(raw: Mapping[str, Any]) -> bool:
    """A profile whose credentials come from ``credential_process`` (as botocore decides: keys
    in the files, a role or SSO win over it)."""
    return bool(raw.get("credential_process")) and not raw.get("aws_access_key_id")


def is_web_identity(raw: Mapping[str, Any]) -> bool:
    """``role_arn`` + ``web_identity_token_file`` with no other source (botocore's
    AssumeRoleWithWebIdentity provider; ``source_profile`` would win over it)."""
    return bool(
        raw.get("role_arn")
        and raw.get("web_identity_token_file")
        and not raw.get("source_profile")
        and not raw.get("credential_source")
    )


VAULT_TYPES = ("creds", "sts")
VAULT_AUTHS = ("token", "approle", "jwt")
_VAULT_NAME = re.compile(r"^[\w.@-]{1,128}(/[\w.@-]{1,128})*$")


@dataclass(frozen=True)
class VaultSettings:
    """A profile's ``credd_vault_*`` keys, validated. Holds no secret."""

    addr: str
    mount: str
    role: str
    type: str  # "creds" | "sts"
    auth: str  # "token" | "approle" | "jwt"
    auth_path: str  # where the auth method is mounted (approle, jwt by default)
    ca_bundle: str | None
    approle_role_id: str | None
    jwt_role: str | None
    jwt_file: str | None  # web_identity_token_file
    ttl: str | None  # asked of aws/sts/ROLE (and assumed_role creds)

    @property
    def path(self) -> str:
        return f"{self.mount}/{self.type}/{self.role}"


def is_vault(raw: Mapping[str, Any]) -> bool:
    return bool(raw.get("credd_vault_addr")) and not raw.get("role_arn")


def _pick(name: str, raw: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = str(raw.get(key) or choices[0]).strip().lower()
    if value not in choices:
        raise ConfigError(
            f"profile {name!r}: {key} = {value!r} is not one of {', '.join(choices)}",
            hint=f"fix {key} in the AWS config",
        )
    return value


def _segment(name: str, raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = str(raw.get(key) or default or "").strip().strip("/")
    if not _VAULT_NAME.match(value):
        raise ConfigError(
            f"profile {name!r}: {key} = {value!r} is missing or not a Vault path segment",
            hint=f"set {key} (letters, digits, . @ _ - and /)",
        )
    return value


def vault_settings(name: str, raw: Mapping[str, Any]) -> VaultSettings:
    """The ``credd_vault_*`` keys of profile ``name``; ``ConfigError`` naming the wrong one."""
    addr = str(raw.get("credd_vault_addr") or "").strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", addr):
        raise ConfigError(
            f"profile {name!r}: credd_vault_addr = {addr!r} is not an http(s) URL",
            hint="e.g. credd_vault_addr = https://bao.example.com:8200",
        )
    auth = _pick(name, raw, "credd_vault_auth", VAULT_AUTHS)
    ca = str(raw.get("credd_vault_ca_bundle") or "").strip() or None
    if ca is not None and not os.path.isabs(os.path.expanduser(ca)):
        raise ConfigError(
            f"profile {name!r}: credd_vault_ca_bundle = {ca!r} is not an absolute path",
            hint="give the full path of the PEM file of the CA that signed the server",
        )
    settings = VaultSettings(
        addr=addr,
        mount=_segment(name, raw, "credd_vault_mount", "aws"),
        role=_segment(name, raw, "credd_vault_role"),
        type=_pick(name, raw, "credd_vault_type", VAULT_TYPES),
        auth=auth,
        auth_path=_segment(name, raw, "credd_vault_auth_path", auth),
        ca_bundle=ca,
        approle_role_id=str(raw.get("credd_vault_approle_role_id") or "").strip() or None,
        jwt_role=str(raw.get("credd_vault_jwt_role") or "").strip() or None,
        jwt_file=str(raw.get("web_identity_token_file") or "").strip() or None,
        ttl=str(raw.get("credd_vault_ttl") or "").strip() or None,
    )
    if auth == "approle" and not settings.approle_role_id:
        raise ConfigError(
            f"profile {name!r}: credd_vault_auth = approle needs credd_vault_approle_role_id",
            hint=f"add it; store the secret_id with: credd vault secret-id set {name}",
        )
    if auth == "jwt" and (not settings.jwt_role or not settings.jwt_file):
        raise ConfigError(
            f"profile {name!r}: credd_vault_auth = jwt needs credd_vault_jwt_role and "
            "web_identity_token_file",
            hint="name the Vault JWT role and the file holding the host's token",
        )
    if settings.jwt_file and not os.path.isabs(os.path.expanduser(settings.jwt_file)):
        raise ConfigError(
            f"profile {name!r}: web_identity_token_file = {settings.jwt_file!r} is not an "
            "absolute path",
            hint="give the full path of the token file (it is re-read at every login)",
        )
    if settings.ttl is not None and not re.fullmatch(r"\d+[smh]?", settings.ttl):
        raise ConfigError(
            f"profile {name!r}: credd_vault_ttl = {settings.ttl!r} is not a duration",
            hint="e.g. 3600, 60m or 1h",
        )
    return settings


def check(name: str, kind: str, raw: Mapping[str, Any]) -> None:
    """``ConfigError`` when the keys of a ``kind`` profile are wrong."""
    if kind == "vault":
        vault_settings(name, raw)
    elif kind == "process":
        process_argv(name, str(raw["credential_process"]))
        process_timeout(name, raw)
    elif kind == "web-identity":
        path = str(raw["web_identity_token_file"]).strip()
        if not os.path.isabs(os.path.expanduser(path)):
            raise ConfigError(
                f"profile {name!r}: web_identity_token_file = {path!r} is not an absolute path",
                hint="give the full path of the token file (it is re-read at every refresh)",
            )
