"""What the sandbox knows: users, keys, sessions, MFA devices, roles, its clock and settings.

Everything is in memory and guarded by one lock. Secrets (secret keys, tokens, seeds) are kept
out of every ``repr``.
"""

from __future__ import annotations

import secrets
import string
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from credd.clock import UTC, Clock, SystemClock

ACCOUNT_ID = "123456789012"  # moto's default account: ARNs agree on both sides
AWS_MIN_DURATION = 900
_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"

KeyKind = Literal["user", "session", "role"]
TotpClock = Literal["real", "sandbox"]


def random_id(prefix: str, length: int) -> str:
    """``prefix`` followed by ``length`` random uppercase letters and digits."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def random_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def random_token() -> str:
    return "IQoJb3JpZ2luX2Vj" + secrets.token_urlsafe(180)


@dataclass
class User:
    name: str
    arn: str
    user_id: str
    access_key_id: str


@dataclass
class KeyRecord:
    """One access key the gateway accepts: a user's long-term key or an issued session."""

    access_key_id: str
    secret: str = field(repr=False)
    kind: KeyKind
    arn: str  # what GetCallerIdentity answers
    principal_id: str  # GetCallerIdentity's UserId
    user_name: str | None = None  # the IAM user behind it (None for role sessions)
    token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None  # sandbox time
    mfa: bool = False  # session came from an MFA-backed call
    role_arn: str | None = None  # for role sessions: the role (for trust of chained calls)
    status: str = "Active"  # long-term keys: "Inactive" ones are refused
    created: datetime | None = None
    last_used: datetime | None = None  # GetAccessKeyLastUsed, recorded by the gateway
    last_used_service: str | None = None
    last_used_region: str | None = None


@dataclass
class Device:
    serial: str
    user_name: str
    seed: str = field(repr=False)
    enabled: datetime
    last_counter: int = -1  # highest TOTP step used; codes at or below it are rejected


@dataclass
class Role:
    name: str
    arn: str
    role_id: str
    max_session_duration: int
    trusted: tuple[str, ...]
    mfa_required: bool = False
    external_id: str | None = field(default=None, repr=False)


class SandboxClock:
    """The real clock plus an offset tests can move. Thread-safe."""

    def __init__(self, real: Clock | None = None) -> None:
        self.real = real or SystemClock()
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        return self.real.now() + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._offset += seconds
        return self.now()

    def set(self, when: datetime) -> datetime:
        with self._lock:
            self._offset = (when - self.real.now()).total_seconds()
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


class SandboxState:
    """The sandbox's registry. Call its methods; hold ``lock`` only for multi-step updates."""

    def __init__(self, clock: SandboxClock | None = None, min_duration: int = AWS_MIN_DURATION):
        self.lock = threading.RLock()
        self.clock = clock or SandboxClock()
        self.default_min_duration = min_duration
        self.min_duration = min_duration
        self.totp_clock: TotpClock = "real"
        self.date_clock: TotpClock = "real"  # what a request's X-Amz-Date is checked against
        self.users: dict[str, User] = {}
        self.keys: dict[str, KeyRecord] = {}
        self.devices: dict[str, Device] = {}
        self.roles: dict[str, Role] = {}  # by ARN
        self.mfa_policies: set[str] = set()  # users whose IAM calls need an MFA session

    def reset_settings(self) -> None:
        with self.lock:
            self.min_duration = self.default_min_duration
            self.totp_clock = "real"
            self.date_clock = "real"
        self.clock.reset()

    def totp_time(self) -> float:
        """Seconds since the epoch that TOTP codes are checked against."""
        clock = self.clock.real if self.totp_clock == "real" else self.clock
        return clock.now().timestamp()

    def date_now(self) -> datetime:
        """The time a request's signing date is checked against (``date_clock``)."""
        return self.clock.real.now() if self.date_clock == "real" else self.clock.now()

    def add_user(self, user: User, secret: str) -> None:
        with self.lock:
            self.users[user.name] = user
            self.keys[user.access_key_id] = KeyRecord(
                access_key_id=user.access_key_id,
                secret=secret,
                kind="user",
                arn=user.arn,
                principal_id=user.user_id,
                user_name=user.name,
                created=self.clock.now().replace(microsecond=0),
            )

    def user_keys(self, user_name: str) -> list[KeyRecord]:
        """The user's long-term keys, oldest first: by creation time (whole seconds, as IAM
        shows it), then in the order they were made (``keys`` keeps it; the sort is stable). A
        key without a creation time came with its user, before any other."""
        with self.lock:
            keys = [k for k in self.keys.values() if k.kind == "user" and k.user_name == user_name]
        return sorted(keys, key=lambda k: k.created or datetime.min.replace(tzinfo=UTC))

    def record_use(self, record: KeyRecord, service: str, region: str) -> None:
        if record.kind == "user":
            with self.lock:
                record.last_used = self.clock.now().replace(microsecond=0)
                record.last_used_service, record.last_used_region = service, region

    def add_device(self, user_name: str, device_name: str, seed: str) -> Device:
        with self.lock:
            serial = f"arn:aws:iam::{ACCOUNT_ID}:mfa/{device_name}"
            if serial in self.devices:
                raise KeyError(serial)
            device = Device(serial, user_name, seed, self.clock.now())
            self.devices[serial] = device
            return device

    def devices_of(self, user_name: str) -> list[Device]:
        with self.lock:
            return [d for d in self.devices.values() if d.user_name == user_name]

    def add_role(self, role: Role) -> None:
        with self.lock:
            self.roles[role.arn] = role

    def issue(
        self,
        *,
        kind: KeyKind,
        arn: str,
        principal_id: str,
        user_name: str | None,
        duration: int,
        mfa: bool,
        role_arn: str | None = None,
    ) -> KeyRecord:
        """New session credentials with a key id no other credential has had."""
        with self.lock:
            key_id = random_id("ASIA", 16)
            while key_id in self.keys:
                key_id = random_id("ASIA", 16)
            record = KeyRecord(
                access_key_id=key_id,
                secret=random_secret(),
                kind=kind,
                arn=arn,
                principal_id=principal_id,
                user_name=user_name,
                token=random_token(),
                expiration=(self.clock.now() + timedelta(seconds=duration)).replace(microsecond=0),
                mfa=mfa,
                role_arn=role_arn,
            )
            self.keys[key_id] = record
            return record

    def key(self, access_key_id: str) -> KeyRecord | None:
        with self.lock:
            return self.keys.get(access_key_id)
