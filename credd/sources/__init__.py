"""Credential sources: one file per profile kind, each with one verb, ``fetch()``.

Caching, scheduling and retries live outside the sources (in :mod:`credd.manager`).
:func:`build_source` is the one place that chooses a source for a profile, and logs why.
"""

from __future__ import annotations

import logging
from typing import Protocol

from credd.awsclients import ClientFactory
from credd.awsconfig import ManagedProfile
from credd.clock import Clock
from credd.errors import ConfigError
from credd.mfa import CodeLedger
from credd.models import Credentials
from credd.secrets import SecretStore

log = logging.getLogger(__name__)


class Source(Protocol):
    """Obtains fresh credentials for one profile."""

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


def build_source(
    profile: ManagedProfile,
    *,
    secrets: SecretStore,
    clients: ClientFactory,
    ledger: CodeLedger,
    clock: Clock,
) -> Source:
    """Choose the source for ``profile``."""
    if profile.kind == "session-token":
        from credd.sources.session_token import SessionTokenSource

        log.info(
            "profile %s: MFA session via sts:GetSessionToken for %d s (code source: %s)",
            profile.name,
            profile.duration_seconds,
            profile.mfa_source or "auto",
        )
        return SessionTokenSource(
            profile, secrets=secrets, clients=clients, ledger=ledger, clock=clock
        )
    raise ConfigError(f"profile {profile.name!r}: no source for kind {profile.kind!r}")
