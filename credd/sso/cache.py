"""The SSO token cache shared with the AWS CLI and botocore: ``~/.aws/sso/cache``.

Formats (checked against botocore ``utils.SSOTokenLoader``/``JSONFileCache``, ``tokens.py``
``SSOTokenProvider`` and the AWS CLI v2's ``botocore/utils.py`` ``BaseSSOTokenFetcher``; see
docs/sso.md):

- the token: ``<sha1(sso-session name)>.json`` (legacy profiles: ``<sha1(start URL)>.json``),
  a JSON object with ``startUrl``, ``region``, ``accessToken``, ``expiresAt`` and, after a
  refreshable login, ``clientId``, ``clientSecret``, ``registrationExpiresAt``, ``refreshToken``;
- the CLI v2's client registration: ``<sha1(json.dumps({"tool": "botocore", "startUrl",
  "region", "scopes", "session_name"}, sort_keys=True))>.json`` with ``clientId``,
  ``clientSecret``, ``expiresAt`` and optionally ``scopes`` and ``grantTypes``.

Times are written as botocore and the CLI write them (``2026-11-21T17:00:00Z``) and read
tolerantly (offsets, fractions, a ``UTC`` suffix). Unknown fields are kept.

Writes: temp file in the same directory (0600), fsync, ``os.replace``, fsync of the directory;
new directories are 0700. credd holds an ``flock`` on ``<file>.credd-lock`` around a
read-refresh-write; botocore and the CLI do not lock, so a write first re-reads the file and
never replaces a token that expires later than the one being written. A file that is not a
valid token is never overwritten or deleted: :class:`~credd.errors.SsoCacheError`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from credd.clock import UTC, Clock, SystemClock, isoformat_z
from credd.errors import SsoCacheError
from credd.files.ini import Errors, atomic_write, exclusive_lock
from credd.sso.settings import SsoTarget

log = logging.getLogger(__name__)

CACHE_ERRORS = Errors(SsoCacheError, "SSO token cache file")
#: Reads of a file that does not parse are retried this many times: the AWS CLI v2 writes its
#: cache files in place (truncate, then write), so a reader can catch one half-written.
READ_ATTEMPTS = 3
_MAX_FILE = 1024 * 1024
_TZ_SUFFIX = re.compile(r"\s*(UTC|GMT)$", re.IGNORECASE)
_FRACTION = re.compile(r"\.(\d+)")


def default_directory(environ: Mapping[str, str] | None = None) -> Path:
    """``~/.aws/sso/cache`` with ``~`` expanded now (botocore expands it at import time)."""
    env = os.environ if environ is None else environ
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".aws" / "sso" / "cache"


def parse_when(value: Any) -> datetime:
    """A cache timestamp as an aware UTC datetime; ``ValueError`` when it is not one.

    Accepts what botocore's ``dateutil.parser.parse`` accepts in practice: ``...Z``,
    ``+00:00`` offsets, fractional seconds (``.000Z`` from the JS SDK), ``UTC``/``GMT`` suffixes
    (botocore's default ``JSONFileCache`` writes ``%Z``), and epoch seconds.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("not a timestamp")
    text = _TZ_SUFFIX.sub("Z", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = text.replace(" ", "T", 1) if "T" not in text else text
    # Python 3.10's fromisoformat wants exactly 3 or 6 fraction digits.
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(UTC)


def _optional_time(raw: Mapping[str, Any], key: str, path: Path) -> datetime | None:
    if key not in raw or raw[key] is None:
        return None
    try:
        return parse_when(raw[key])
    except (ValueError, OverflowError, OSError):
        raise SsoCacheError(
            f"the SSO token cache file {path} has an unreadable {key}; credd left it untouched",
            hint=f"move it away (mv {path} {path}.bad) and log in again",
        ) from None


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class SsoToken:
    """One cached SSO token. Secrets are kept out of the repr."""

    access_token: str = field(repr=False)
    expires_at: datetime
    start_url: str | None
    region: str | None
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    registration_expires_at: datetime | None = None
    refresh_token: str | None = field(default=None, repr=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def has_refresh(self) -> bool:
        """Whether it carries what the refresh-token grant needs."""
        return bool(self.refresh_token and self.client_id and self.client_secret)

    def expires_in(self, now: datetime) -> timedelta:
        return self.expires_at - now

    def registration_valid(self, now: datetime) -> bool:
        return self.registration_expires_at is not None and self.registration_expires_at > now

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], path: Path) -> SsoToken:
        """Validate a decoded cache entry (botocore needs ``accessToken`` and ``expiresAt``)."""
        access = raw.get("accessToken")
        if not isinstance(access, str) or not access:
            raise SsoCacheError(
                f"the SSO token cache file {path} has no accessToken; credd left it untouched",
                hint=f"move it away (mv {path} {path}.bad) and log in again",
            )
        expires = _optional_time(raw, "expiresAt", path)
        if expires is None:
            raise SsoCacheError(
                f"the SSO token cache file {path} has no expiresAt; credd left it untouched",
                hint=f"move it away (mv {path} {path}.bad) and log in again",
            )
        return cls(
            access_token=access,
            expires_at=expires,
            start_url=_optional_str(raw, "startUrl"),
            region=_optional_str(raw, "region"),
            client_id=_optional_str(raw, "clientId"),
            client_secret=_optional_str(raw, "clientSecret"),
            registration_expires_at=_optional_time(raw, "registrationExpiresAt", path),
            refresh_token=_optional_str(raw, "refreshToken"),
            raw=dict(raw),
        )

    def to_json(self) -> dict[str, Any]:
        """The cache entry: unknown fields kept, known ones as botocore writes them."""
        out = dict(self.raw)
        out["accessToken"] = self.access_token
        out["expiresAt"] = isoformat_z(self.expires_at)
        for key, value in (
            ("startUrl", self.start_url),
            ("region", self.region),
            ("clientId", self.client_id),
            ("clientSecret", self.client_secret),
            ("refreshToken", self.refresh_token),
        ):
            if value is not None:
                out[key] = value
        if self.registration_expires_at is not None:
            out["registrationExpiresAt"] = isoformat_z(self.registration_expires_at)
        return out


@dataclass(frozen=True)
class Registration:
    """A client registration (RegisterClient), as the AWS CLI v2 caches it."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    expires_at: datetime
    scopes: tuple[str, ...] | None = None
    grant_types: tuple[str, ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def for_auth_code(self) -> bool:
        """The CLI's ``_is_registration_for_auth_code``."""
        return bool(self.grant_types and "authorization_code" in self.grant_types)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.raw)
        out.update(
            clientId=self.client_id,
            clientSecret=self.client_secret,
            expiresAt=isoformat_z(self.expires_at),
        )
        if self.scopes is not None:
            out["scopes"] = list(self.scopes)
        if self.grant_types is not None:
            out["grantTypes"] = list(self.grant_types)
        return out


class TokenCache:
    """Reads and writes the shared cache directory."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        clock: Clock | None = None,
        lock_timeout: float = 30.0,
    ) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        self.clock: Clock = clock or SystemClock()
        self.lock_timeout = lock_timeout

    # -- paths ------------------------------------------------------------------------------

    def path(self, target: SsoTarget) -> Path:
        return self.directory / f"{target.cache_key}.json"

    def registration_path(self, target: SsoTarget) -> Path:
        return self.directory / f"{target.registration_key}.json"

    # -- raw files --------------------------------------------------------------------------

    def _load(self, path: Path) -> dict[str, Any] | None:
        """The decoded JSON object at ``path``, ``None`` when there is no file."""
        problem = ""
        for attempt in range(READ_ATTEMPTS):
            try:
                with open(path, "rb") as fh:
                    data = fh.read(_MAX_FILE + 1)
            except FileNotFoundError:
                return None
            except IsADirectoryError:
                problem = "is a directory"
                break
            except OSError as exc:
                raise SsoCacheError(
                    f"cannot read the SSO token cache file {path}: {exc.strerror}",
                    hint="check the file's owner and permissions",
                ) from None
            if len(data) > _MAX_FILE:
                problem = "is larger than 1 MiB"
                break
            try:
                value = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                problem = "is not JSON"
                if attempt + 1 < READ_ATTEMPTS:
                    self.clock.sleep(0.05)  # maybe caught the AWS CLI mid-write
                continue
            if not isinstance(value, dict):
                problem = "is not a JSON object"
                break
            return value
        raise SsoCacheError(
            f"the SSO token cache file {path} {problem}; credd left it untouched",
            hint=f"move it away (mv {path} {path}.bad) and log in again",
        )

    def _ensure_directory(self) -> None:
        missing: list[Path] = []
        d = self.directory
        while not d.exists():
            missing.append(d)
            if d.parent == d:
                break
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir(mode=0o700)
            except FileExistsError:
                continue
            except OSError as exc:
                raise SsoCacheError(
                    f"cannot create {d}: {exc.strerror}",
                    hint=f"check that you may write in {d.parent}",
                ) from None

    def _store(self, path: Path, value: Mapping[str, Any]) -> None:
        self._ensure_directory()
        data = json.dumps(value).encode("utf-8")
        try:
            atomic_write(path, data, 0o600)
        except OSError as exc:
            raise SsoCacheError(
                f"cannot write the SSO token cache file {path}: {exc.strerror}",
                hint=f"check free space and that you may write in {path.parent}",
            ) from None

    # -- tokens -----------------------------------------------------------------------------

    def read(self, target: SsoTarget) -> SsoToken | None:
        """The cached token for ``target``, ``None`` when there is none."""
        path = self.path(target)
        raw = self._load(path)
        return None if raw is None else SsoToken.from_json(raw, path)

    @contextmanager
    def locked(self, target: SsoTarget) -> Iterator[None]:
        """Hold credd's lock on ``target``'s token file (botocore and the CLI do not lock)."""
        self._ensure_directory()
        with exclusive_lock(
            self.path(target), timeout=self.lock_timeout, clock=self.clock, errors=CACHE_ERRORS
        ):
            yield

    def write(self, target: SsoTarget, token: SsoToken, *, keep_newer: bool = True) -> SsoToken:
        """Write ``token``; returns what the file holds afterwards.

        The file is read again first: a corrupt file is left alone (``SsoCacheError``), and
        with ``keep_newer`` a token that expires later than ``token`` (a concurrent refresh by
        botocore or the CLI) is kept and returned instead. Unknown fields of the file are kept.
        """
        path = self.path(target)
        current_raw = self._load(path)
        current = None if current_raw is None else SsoToken.from_json(current_raw, path)
        if keep_newer and current is not None and current.expires_at > token.expires_at:
            log.info(
                "SSO token for %s: the cache already holds a newer token (expires %s); kept it",
                target.label,
                isoformat_z(current.expires_at),
            )
            return current
        merged = dict(current_raw or {})
        merged.update(token.to_json())
        if token.refresh_token is None:
            merged.pop("refreshToken", None)
        self._store(path, merged)
        log.info(
            "wrote the SSO token for %s (expires %s) to %s",
            target.label,
            isoformat_z(token.expires_at),
            path,
        )
        return SsoToken.from_json(merged, path)

    # -- registrations ----------------------------------------------------------------------

    def read_registration(self, target: SsoTarget) -> Registration | None:
        """The CLI v2's cached registration for ``target``; ``None`` when missing or unusable
        (a registration is only an optimisation: an unreadable one is ignored, not replaced)."""
        path = self.registration_path(target)
        try:
            raw = self._load(path)
        except SsoCacheError as exc:
            log.warning("ignoring the client registration cache: %s", exc.message)
            return None
        if raw is None:
            return None
        cid, secret = raw.get("clientId"), raw.get("clientSecret")
        if not isinstance(cid, str) or not isinstance(secret, str):
            return None
        try:
            expires = parse_when(raw.get("expiresAt"))
        except (ValueError, OverflowError, OSError):
            return None
        scopes, grants = raw.get("scopes"), raw.get("grantTypes")
        return Registration(
            client_id=cid,
            client_secret=secret,
            expires_at=expires,
            scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else None,
            grant_types=tuple(str(g) for g in grants) if isinstance(grants, list) else None,
            raw=raw,
        )

    def write_registration(self, target: SsoTarget, registration: Registration) -> None:
        path = self.registration_path(target)
        if path.exists():
            self._load(path)  # a corrupt file is left alone (raises)
        self._store(path, registration.to_json())
