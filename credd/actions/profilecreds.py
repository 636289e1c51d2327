"""Where a profile's credentials come from, for the commands that sign with them outside the
daemon (``credd presign``, ``credd console``): the daemon profile that serves it, or an IAM
user's long-term keys (the secret store's, else the credentials file's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from credd.models import Credentials


def served_profile(config: Any, name: str, raw: Mapping[str, Any]) -> str | None:
    """The daemon profile behind ``name``: itself when credd manages it, or X in
    ``credential_process = credd get X``; ``None`` when the daemon does not serve it."""
    if config.managed.get(name) is not None:
        return name
    words = str(raw.get("credential_process") or "").split()
    for i, word in enumerate(words[:-2]):
        if (word.endswith("credd") or word == "credd.cli") and words[i + 1] == "get":
            return words[i + 2]
    return None


def is_sso(raw: Mapping[str, Any]) -> bool:
    """An IAM Identity Center profile (its session credentials come from the portal)."""
    return any(k in raw for k in ("sso_session", "sso_start_url", "sso_account_id"))


def is_role_or_sso(raw: Mapping[str, Any]) -> bool:
    return "role_arn" in raw or is_sso(raw)


def long_term_keys(store: Any, name: str, raw: Mapping[str, Any]) -> Credentials | None:
    """The IAM user's keys: the secret store's, else the credentials file's. A file section
    with ``aws_session_token`` holds session credentials, not long-term keys: ``None``."""
    keys: Credentials | None = store.get_long_term_keys(name)
    if keys is not None:
        return keys
    if raw.get("aws_session_token"):
        return None
    if raw.get("aws_access_key_id") and raw.get("aws_secret_access_key"):
        return Credentials(raw["aws_access_key_id"], raw["aws_secret_access_key"])
    return None
