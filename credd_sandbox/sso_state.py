"""What the sandbox's IAM Identity Center knows: instances, users, assignments, client
registrations, pending logins, sessions and their tokens.

Everything is in memory, guarded by one lock, and judged on the sandbox clock. Secrets (client
secrets, device codes, authorization codes, access and refresh tokens) are kept out of every
``repr``.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from credd_sandbox.state import SandboxClock, random_id

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
AUTH_CODE_GRANT = "authorization_code"
REFRESH_GRANT = "refresh_token"
GRANT_NAMES = {
    DEVICE_GRANT: "device_code",
    AUTH_CODE_GRANT: AUTH_CODE_GRANT,
    REFRESH_GRANT: REFRESH_GRANT,
}
# What a client registered without grantTypes may use (the device flow of `aws sso login`).
DEFAULT_GRANTS = frozenset({DEVICE_GRANT, REFRESH_GRANT})
ACCOUNT_SCOPE = "sso:account:access"
DAY = 86_400
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels: no words in user codes

ApprovalStatus = Literal["pending", "approved", "denied", "used"]


@dataclass
class SsoSettings:
    """Lifetimes, in seconds of the sandbox clock."""

    access_token_seconds: int = 3_600
    session_seconds: int = 90 * DAY  # how long a login's refresh tokens can be used
    registration_seconds: int = 90 * DAY  # clientSecretExpiresAt, as AWS
    device_code_seconds: int = 600
    device_interval_seconds: int = 1
    auth_code_seconds: int = 600
    #: the most ListAccounts / ListAccountRoles return in one page, whatever maxResults asks
    #: (small values make clients follow nextToken)
    portal_page_size: int = 20


SETTING_BOUNDS: dict[str, tuple[int, int]] = {
    "access_token_seconds": (1, 90 * DAY),
    "session_seconds": (1, 365 * DAY),
    "registration_seconds": (1, 365 * DAY),
    "device_code_seconds": (1, DAY),
    "device_interval_seconds": (0, 60),
    "auth_code_seconds": (1, DAY),
    "portal_page_size": (1, 100),
}


def random_token(prefix: str, nbytes: int = 48) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def _user_code() -> str:
    part = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
    return f"{part[:4]}-{part[4:]}"


@dataclass
class SsoUser:
    name: str
    user_id: str
    email: str
    assignments: set[tuple[str, str]] = field(default_factory=set)  # (account id, role name)


@dataclass
class PermissionSet:
    """A role name in an account, with its session duration and reserved IAM role."""

    account_id: str
    role_name: str
    session_duration: int
    role_arn: str
    role_id: str

    @property
    def reserved_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]


@dataclass
class Instance:
    start_url: str
    region: str
    instance_arn: str
    identity_store_id: str
    users: dict[str, SsoUser] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)  # id -> name
    permission_sets: dict[tuple[str, str], PermissionSet] = field(default_factory=dict)

    def permission_set(
        self, account_id: str, role_name: str, session_duration: int
    ) -> PermissionSet:
        key = (account_id, role_name)
        existing = self.permission_sets.get(key)
        if existing is not None:
            existing.session_duration = session_duration
            return existing
        reserved = f"AWSReservedSSO_{role_name}_{secrets.token_hex(8)}"
        created = PermissionSet(
            account_id=account_id,
            role_name=role_name,
            session_duration=session_duration,
            role_arn=f"arn:aws:iam::{account_id}:role/aws-reserved/sso.amazonaws.com/{reserved}",
            role_id=random_id("AROA", 17),
        )
        self.permission_sets[key] = created
        return created


@dataclass
class Registration:
    client_id: str
    secret: str = field(repr=False)
    name: str
    scopes: tuple[str, ...]
    grant_types: frozenset[str]
    redirect_uris: tuple[str, ...]
    issuer_url: str | None
    issued_at: datetime
    expires_at: datetime

    def refreshable(self) -> bool:
        """AWS issues refresh tokens to clients registered with scopes."""
        return bool(self.scopes) and REFRESH_GRANT in self.grant_types


@dataclass
class DeviceAuthorization:
    device_code: str = field(repr=False)
    user_code: str
    client_id: str
    start_url: str
    created: datetime
    expires_at: datetime
    interval: int
    status: ApprovalStatus = "pending"
    user: str | None = None
    last_poll: datetime | None = None


@dataclass
class AuthorizationRequest:
    """One visit to ``/authorize``: pending until approved or denied."""

    request_id: str
    client_id: str
    start_url: str
    redirect_uri: str
    state: str | None
    code_challenge: str = field(repr=False)
    scopes: tuple[str, ...]
    created: datetime
    expires_at: datetime
    status: ApprovalStatus = "pending"
    user: str | None = None
    code: str | None = field(default=None, repr=False)
    code_expires_at: datetime | None = None


@dataclass
class Session:
    """One login: its refresh tokens rotate, its end does not move."""

    session_id: str
    start_url: str
    user: str
    client_id: str
    scopes: tuple[str, ...]
    started: datetime
    expires_at: datetime
    grant: str
    revoked: bool = False
    refresh_token: str | None = field(default=None, repr=False)
    rotations: int = 0


@dataclass
class AccessToken:
    session_id: str
    expires_at: datetime


@dataclass
class AutoApproval:
    user: str
    remaining: int | None  # None: until cleared


class SsoState:
    """The Identity Center registry. Hold ``lock`` for multi-step updates."""

    def __init__(self, clock: SandboxClock) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.settings = SsoSettings()
        self.instances: dict[str, Instance] = {}  # by start URL
        self.clients: dict[str, Registration] = {}
        self.devices: dict[str, DeviceAuthorization] = {}  # by device code
        self.requests: dict[str, AuthorizationRequest] = {}  # by request id
        self.codes: dict[str, str] = {}  # authorization code -> request id
        self.sessions: dict[str, Session] = {}
        self.refresh_tokens: dict[str, str] = {}  # current refresh token -> session id
        self.retired_refresh_tokens: dict[str, str] = {}  # rotated ones -> session id
        self.access_tokens: dict[str, AccessToken] = {}
        self.auto: dict[str, AutoApproval] = {}  # by start URL

    def now(self) -> datetime:
        return self.clock.now().replace(microsecond=0)

    def reset_settings(self) -> None:
        with self.lock:
            self.settings = SsoSettings()
            self.auto.clear()

    # -- directory -------------------------------------------------------------------

    def add_instance(self, start_url: str | None, region: str) -> Instance:
        with self.lock:
            store = f"d-{secrets.token_hex(5)}"
            url = start_url or f"https://{store}.awsapps.com/start"
            if url in self.instances:
                raise KeyError(url)
            arn = f"arn:aws:sso:::instance/ssoins-{secrets.token_hex(8)}"
            instance = Instance(url, region, arn, store)
            self.instances[url] = instance
            return instance

    def add_user(self, start_url: str, name: str, email: str | None) -> SsoUser:
        with self.lock:
            instance = self.instances[start_url]
            if name in instance.users:
                raise ValueError(name)
            user = SsoUser(name, str(uuid.uuid4()), email or f"{name}@example.com")
            instance.users[name] = user
            return user

    # -- registrations ---------------------------------------------------------------

    def register(
        self,
        *,
        name: str,
        scopes: tuple[str, ...],
        grant_types: frozenset[str],
        redirect_uris: tuple[str, ...],
        issuer_url: str | None,
    ) -> Registration:
        with self.lock:
            now = self.now()
            registration = Registration(
                client_id=random_token("", 16),
                secret=random_token("", 96),
                name=name,
                scopes=scopes,
                grant_types=grant_types,
                redirect_uris=redirect_uris,
                issuer_url=issuer_url,
                issued_at=now,
                expires_at=now + timedelta(seconds=self.settings.registration_seconds),
            )
            self.clients[registration.client_id] = registration
            return registration

    # -- logins ----------------------------------------------------------------------

    def take_auto_approval(self, start_url: str) -> str | None:
        """The user the next login to ``start_url`` is approved as, if tests armed one."""
        with self.lock:
            auto = self.auto.get(start_url)
            if auto is None:
                return None
            if auto.remaining is not None:
                auto.remaining -= 1
                if auto.remaining <= 0:
                    del self.auto[start_url]
            return auto.user

    def start_device(self, client_id: str, start_url: str) -> DeviceAuthorization:
        with self.lock:
            now = self.now()
            user_codes = {d.user_code for d in self.devices.values()}
            user_code = _user_code()
            while user_code in user_codes:
                user_code = _user_code()
            device = DeviceAuthorization(
                device_code=random_token("", 48),
                user_code=user_code,
                client_id=client_id,
                start_url=start_url,
                created=now,
                expires_at=now + timedelta(seconds=self.settings.device_code_seconds),
                interval=self.settings.device_interval_seconds,
            )
            user = self.take_auto_approval(start_url)
            if user is not None:
                device.status, device.user = "approved", user
            self.devices[device.device_code] = device
            return device

    def new_request(
        self,
        *,
        client_id: str,
        start_url: str,
        redirect_uri: str,
        state: str | None,
        code_challenge: str,
        scopes: tuple[str, ...],
    ) -> AuthorizationRequest:
        with self.lock:
            now = self.now()
            request = AuthorizationRequest(
                request_id=str(uuid.uuid4()),
                client_id=client_id,
                start_url=start_url,
                redirect_uri=redirect_uri,
                state=state,
                code_challenge=code_challenge,
                scopes=scopes,
                created=now,
                expires_at=now + timedelta(seconds=self.settings.device_code_seconds),
            )
            self.requests[request.request_id] = request
            user = self.take_auto_approval(start_url)
            if user is not None:
                self.approve_request(request, user)
            return request

    def approve_request(self, request: AuthorizationRequest, user: str) -> None:
        with self.lock:
            request.status, request.user = "approved", user
            request.code = random_token("", 32)
            request.code_expires_at = self.now() + timedelta(
                seconds=self.settings.auth_code_seconds
            )
            self.codes[request.code] = request.request_id

    # -- sessions and tokens ---------------------------------------------------------

    def open_session(
        self,
        registration: Registration,
        start_url: str,
        user: str,
        scopes: tuple[str, ...],
        grant: str,
    ) -> tuple[Session, str, int]:
        """A new login: the session, its first access token and that token's lifetime."""
        with self.lock:
            now = self.now()
            session = Session(
                session_id=str(uuid.uuid4()),
                start_url=start_url,
                user=user,
                client_id=registration.client_id,
                scopes=scopes,
                started=now,
                expires_at=now + timedelta(seconds=self.settings.session_seconds),
                grant=grant,
            )
            if registration.refreshable():
                session.refresh_token = random_token("aor", 96)
                self.refresh_tokens[session.refresh_token] = session.session_id
            self.sessions[session.session_id] = session
            token, lifetime = self.new_access_token(session)
            return session, token, lifetime

    def new_access_token(self, session: Session) -> tuple[str, int]:
        with self.lock:
            now = self.now()
            expires = min(
                now + timedelta(seconds=self.settings.access_token_seconds), session.expires_at
            )
            token = random_token("aoa", 96)
            self.access_tokens[token] = AccessToken(session.session_id, expires)
            return token, max(0, int((expires - now).total_seconds()))

    def rotate(self, session: Session) -> str:
        """A new refresh token for ``session``; the one it replaces stops working."""
        with self.lock:
            old = session.refresh_token
            if old is not None:
                self.refresh_tokens.pop(old, None)
                self.retired_refresh_tokens[old] = session.session_id
            session.refresh_token = random_token("aor", 96)
            session.rotations += 1
            self.refresh_tokens[session.refresh_token] = session.session_id
            return session.refresh_token

    def session_for_access_token(self, token: str) -> Session | None:
        """The live session ``token`` belongs to, or ``None`` (unknown, expired, revoked)."""
        with self.lock:
            record = self.access_tokens.get(token)
            if record is None:
                return None
            session = self.sessions.get(record.session_id)
            now = self.clock.now()
            if session is None or session.revoked or now >= record.expires_at:
                return None
            if now >= session.expires_at:
                return None
            return session

    def matching_sessions(
        self, *, user: str | None, client_id: str | None, start_url: str | None
    ) -> list[Session]:
        with self.lock:
            return [
                s
                for s in self.sessions.values()
                if (user is None or s.user == user)
                and (client_id is None or s.client_id == client_id)
                and (start_url is None or s.start_url == start_url)
            ]

    def update_settings(self, values: dict[str, int]) -> SsoSettings:
        with self.lock:
            self.settings = replace(self.settings, **values)
            return self.settings
