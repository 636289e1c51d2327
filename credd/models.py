"""Plain data shared by every part of credd. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from credd.clock import isoformat_z, parse_iso


def mask_key_id(key_id: str) -> str:
    """An access key id as credd shows it anywhere: ``...WXYZ`` (its last four characters)."""
    return f"...{key_id[-4:]}"


@dataclass(frozen=True)
class Credentials:
    """One frozen set of AWS credentials: a caller never sees a mismatched key/secret pair.

    ``repr`` shows only the key id's last four characters; the secret and token never appear.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None
    account_id: str | None = None

    def __repr__(self) -> str:
        exp = isoformat_z(self.expiration) if self.expiration else None
        return f"Credentials(key={self.masked_key_id}, expiration={exp})"

    __str__ = __repr__

    @property
    def masked_key_id(self) -> str:
        return mask_key_id(self.access_key_id)

    def remaining(self, now: datetime) -> timedelta | None:
        """Time left before expiry (``None`` for credentials that do not expire)."""
        if self.expiration is None:
            return None
        return self.expiration - now

    def to_process_json(self) -> dict[str, Any]:
        """The ``credential_process`` JSON shape (Version 1)."""
        out: dict[str, Any] = {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
        }
        if self.session_token:
            out["SessionToken"] = self.session_token
        if self.expiration is not None:
            out["Expiration"] = isoformat_z(self.expiration)
        if self.account_id:
            out["AccountId"] = self.account_id
        return out

    @classmethod
    def from_process_json(cls, data: dict[str, Any]) -> Credentials:
        """Inverse of :meth:`to_process_json`."""
        exp = data.get("Expiration")
        return cls(
            access_key_id=str(data["AccessKeyId"]),
            secret_access_key=str(data["SecretAccessKey"]),
            session_token=data.get("SessionToken"),
            expiration=parse_iso(exp) if exp else None,
            account_id=data.get("AccountId"),
        )


#: Profile states, as shown by ``status`` and sent on the socket.
STATES = (
    "pending",  # managed, no credentials yet, a fetch is scheduled or running
    "fresh",  # credentials held with plenty of time left
    "refreshing",  # a refresh is running right now (credentials, if any, still served)
    "needs_mfa",  # parked: waiting for a person to give an MFA code (credd mfa NAME)
    "login_required",  # parked: waiting for an IAM Identity Center login (credd login NAME)
    "backoff",  # a transient failure (network, throttling); retried with backoff
    "error",  # parked: needs a fix (keys, config, wrong code); not retried in a loop
)


@dataclass(frozen=True)
class ProfileStatus:
    """What ``credd status`` shows for one managed profile. Holds no secret."""

    name: str
    kind: str
    state: str
    expires_at: datetime | None = None
    next_refresh_at: datetime | None = None
    waiting_for: str | None = None
    error: dict[str, Any] | None = None
    mfa_source: str | None = None
    file_profile: str | None = None
    last_refresh_at: datetime | None = None
    key_id: str | None = None  # masked: "...ABCD"
    plan: str | None = None  # how credd gets these credentials, in a sentence or two
    longest: dict[str, Any] | None = None  # {"seconds", "why"}: the lifetime guard's limit

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The documented ``status --json`` object for one profile (see docs/cli.md)."""

        def ts(value: datetime | None) -> str | None:
            return isoformat_z(value) if value else None

        expires_in = (
            int((self.expires_at - now).total_seconds()) if self.expires_at is not None else None
        )
        refresh_in = (
            int((self.next_refresh_at - now).total_seconds())
            if self.next_refresh_at is not None
            else None
        )
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "expires_at": ts(self.expires_at),
            "expires_in_seconds": expires_in,
            "next_refresh_at": ts(self.next_refresh_at),
            "next_refresh_in_seconds": refresh_in,
            "waiting_for": self.waiting_for,
            "error": self.error,
            "mfa_source": self.mfa_source,
            "file_profile": self.file_profile,
            "last_refresh_at": ts(self.last_refresh_at),
            "key_id": self.key_id,
            "plan": self.plan,
            "longest_lifetime": self.longest,
        }
