"""Which MFA code source a profile uses, decided the same way for sessions and direct roles.

A code a person pushed (``credd mfa``) always wins; then ``credd_mfa_source``; with none set,
``mfa_process`` when present, else the TOTP seed when one is stored, else a person.
"""

from __future__ import annotations

from credd.aws.config import ManagedProfile
from credd.clock import Clock
from credd.errors import SecretMissing
from credd.mfa import CodeSource, PersonCodes, ProcessCodes, TotpCodes
from credd.secrets.store import SecretStore


class ProfileCodes:
    def __init__(self, profile: ManagedProfile, secrets: SecretStore, clock: Clock) -> None:
        self.profile = profile
        self._secrets = secrets
        self._clock = clock
        self.person = PersonCodes(profile.name)
        self._choice: CodeSource | None = None

    def _has_seed(self) -> bool:
        try:
            return self._secrets.get_totp_seed(self.profile.name) is not None
        except SecretMissing:
            return False

    def configured(self) -> CodeSource:
        name = self.profile.mfa_source
        if name is None:
            if self.profile.mfa_process:
                name = "process"
            elif self._has_seed():
                name = "totp"
            else:
                name = "person"
        if name == "process" and self.profile.mfa_process:
            return ProcessCodes(self.profile.name, self.profile.mfa_process, self._clock)
        if name == "totp":
            return TotpCodes(
                self.profile.name,
                lambda: self._secrets.get_totp_seed(self.profile.name),
                self._clock,
            )
        return self.person

    def chosen(self) -> CodeSource:
        """The source in use; deciding "auto" reads the keyring, so it is remembered."""
        if self._choice is None:
            self._choice = self.configured()
        return self._choice

    def for_fetch(self) -> CodeSource:
        """The source for the next call: a pushed code first, else the configured one (re-read)."""
        if self.person.has_pending():
            return self.person
        self._choice = self.configured()
        return self._choice
