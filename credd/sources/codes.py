"""Which MFA code source a profile uses: the one decision, for plans, sources, status and doctor.

:func:`decide` is the rule, and the only one: ``credd_mfa_source`` when set; else ``mfa_process``
when present; else the TOTP seed when one is stored; else a person. The planner asks it once per
plan (:func:`code_source_of`, bound to the secret store) and keeps the answer on the node that
takes codes (``Node.code_source``); the node's source starts from that answer and applies the same
rule again before each call (a seed stored, or a keyring unlocked, since). A code a person pushed
(``credd mfa``) always wins for the next call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import overload

from credd.aws.config import ManagedProfile
from credd.clock import Clock
from credd.errors import CreddError, SecretMissing
from credd.plan.nodes import CodeSourceName
from credd.secrets.store import SecretStore
from credd.sources.mfa import CodeSource, PersonCodes, ProcessCodes, TotpCodes

__all__ = ["ProfileCodes", "code_source_of", "decide", "seed_stored"]

#: The code source names, unattended first.
NAMES: tuple[CodeSourceName, ...] = ("totp", "process", "person")


@overload
def decide(profile: ManagedProfile, has_seed: Callable[[], bool]) -> CodeSourceName: ...


@overload
def decide(profile: ManagedProfile, has_seed: None) -> CodeSourceName | None: ...


def decide(profile: ManagedProfile, has_seed: Callable[[], bool] | None) -> CodeSourceName | None:
    """The rule. ``has_seed`` is asked only when the profile leaves it to the keyring; without
    one that case is not decided here (``None``): the node's source decides it, by this rule."""
    if profile.mfa_source == "process" and not profile.mfa_process:
        return "person"  # the config loader refuses this; a person is the safe reading
    if profile.mfa_source is not None:
        return profile.mfa_source
    if profile.mfa_process:
        return "process"
    if has_seed is None:
        return None
    return "totp" if has_seed() else "person"


def seed_stored(secrets: SecretStore, profile: str) -> bool:
    """A TOTP seed is stored for ``profile`` (a store that cannot answer raises ``CreddError``)."""
    try:
        return secrets.get_totp_seed(profile) is not None
    except SecretMissing:
        return False


def code_source_of(
    secrets: SecretStore | None, *, strict: bool = False
) -> Callable[[ManagedProfile], CodeSourceName | None]:
    """:func:`decide` bound to a secret store: what the planner, the daemon and doctor ask.

    A store that cannot answer (locked, unreachable) plans for the strictest case, a person
    (``strict``: its ``CreddError`` instead, for doctor). Without a store, what depends on the
    keyring is left undecided (``None``) for the node's source to decide."""

    def of(profile: ManagedProfile) -> CodeSourceName | None:
        if secrets is None:
            return decide(profile, None)
        try:
            return decide(profile, lambda: seed_stored(secrets, profile.name))
        except CreddError:
            if strict:
                raise
            return "person"

    return of


class ProfileCodes:
    """The code sources of one profile whose calls take codes (an MFA session, a direct role)."""

    def __init__(
        self,
        profile: ManagedProfile,
        secrets: SecretStore,
        clock: Clock,
        decided: CodeSourceName | None = None,
    ) -> None:
        self.profile = profile
        self._secrets = secrets
        self._clock = clock
        self.person = PersonCodes(profile.name)
        self._choice: CodeSource | None = self._build(decided) if decided is not None else None

    def _has_seed(self) -> bool:
        return seed_stored(self._secrets, self.profile.name)

    def _build(self, name: CodeSourceName) -> CodeSource:
        if name == "process" and self.profile.mfa_process:
            return ProcessCodes(self.profile.name, self.profile.mfa_process, self._clock)
        if name == "totp":
            return TotpCodes(
                self.profile.name,
                lambda: self._secrets.get_totp_seed(self.profile.name),
                self._clock,
            )
        return self.person

    def configured(self) -> CodeSource:
        """The source :func:`decide` gives now (may read the keyring)."""
        return self._build(decide(self.profile, self._has_seed))

    def chosen(self) -> CodeSource:
        """The source in use: the plan's decision, else decided now (and remembered)."""
        if self._choice is None:
            self._choice = self.configured()
        return self._choice

    def for_fetch(self) -> CodeSource:
        """The source for the next call: a pushed code first, else the rule applied again."""
        if self.person.has_pending():
            return self.person
        self._choice = self.configured()
        return self._choice
