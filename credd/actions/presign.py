"""``credd presign``: S3 presigned URLs that live as long as promised (docs/presign.md).

A presigned URL is valid for the shorter of its ``X-Amz-Expires`` and the life of the
credentials that signed it. So the signer is chosen by what can honour the requested lifetime:

* an IAM user's **long-term keys** (the secret store, else the AWS files): up to 7 days, SigV4's
  ceiling. They are read into this process only, never written out;
* **session credentials** (a role, SSO, an MFA session served by the daemon): only until they
  expire. Asking for more is refused with the real validity and why; ``--cap`` signs anyway for
  what remains and says so on stderr.

Signing is botocore's own presigner (``generate_presigned_url``, SigV4 query auth) with one
client for every URL. Nothing here logs a URL: its signature is a bearer secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from credd.actions.profilecreds import is_role_or_sso, is_sso, long_term_keys, served_profile
from credd.clock import UTC, isoformat_z
from credd.durations import format_duration
from credd.errors import AwsError, ConfigError, UsageError
from credd.models import Credentials

MAX_EXPIRES = 604_800  # SigV4 query auth: seven days
_LIFETIME = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")
_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(.+)$")
_AMZ_DATE = re.compile(r"[?&]X-Amz-Date=(\d{8}T\d{6}Z)")
_OPERATIONS = {"GET": "get_object", "PUT": "put_object"}


class LifetimeUnavailable(ConfigError):
    """The profile's credentials cannot keep a URL alive that long."""

    code = "lifetime_unavailable"


def parse_lifetime(text: str) -> int:
    """``"7d"``, ``"36h"``, ``"1d12h"``, ``"90m"``, ``"3600"`` -> seconds (1..604800)."""
    value = text.strip().lower()
    match = _LIFETIME.match(value)
    if not value or not match or not any(match.groups()):
        raise UsageError(f"--expires {text!r} is not a duration", hint="use e.g. 7d, 36h, 90m")
    d, h, m, s = (int(g) if g else 0 for g in match.groups())
    seconds = ((d * 24 + h) * 60 + m) * 60 + s
    if not 1 <= seconds <= MAX_EXPIRES:
        raise UsageError(
            f"--expires {text} is outside 1 s..7 days",
            hint="SigV4 presigned URLs last at most 7 days (604800 s)",
        )
    return seconds


def parse_target(text: str, where: str = "") -> tuple[str, str]:
    """``s3://BUCKET/KEY`` -> ``(bucket, key)``."""
    match = _S3_URL.match(text.strip())
    if not match:
        raise UsageError(
            f"{where}{text.strip()[:200]!r} is not s3://BUCKET/KEY",
            hint="name one object, e.g. s3://my-bucket/path/file.bedpe",
        )
    return match[1], match[2]


def read_targets(lines: Iterable[str]) -> list[tuple[str, str]]:
    """Every ``s3://`` line (blank lines and ``#`` comments skipped); all checked first."""
    targets = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text and not text.startswith("#"):
            targets.append(parse_target(text, f"line {number}: "))
    if not targets:
        raise UsageError("the list names no s3:// objects")
    return targets


@dataclass(frozen=True)
class Signer:
    """The credentials that will sign, and how long they can keep a URL alive."""

    profile: str
    credentials: Credentials
    kind: str = "long-term keys"
    valid_until: datetime | None = None  # None: long-term keys (no expiry of their own)

    def lifetime(self, requested: int, now: datetime, *, cap: bool) -> tuple[int, str | None]:
        """Seconds to sign for, and the warning to print when capped."""
        if self.valid_until is None:
            return requested, None
        left = int((self.valid_until - now).total_seconds())
        if left >= requested:
            return requested, None
        why = (
            f"profile {self.profile} signs with {self.kind} that expire at "
            f"{isoformat_z(self.valid_until)} (in {format_duration(left)}); a presigned URL dies "
            "with the credentials that signed it, so it cannot live "
            f"{format_duration(requested)}"
        )
        if not cap or left < 60:
            raise LifetimeUnavailable(
                why,
                hint="sign with a profile that holds an IAM user's long-term keys (up to 7 "
                "days), or pass --cap to get a URL valid until then",
            )
        return left, f"capped: {why}; the URL is valid for {format_duration(left)} only"


def choose_signer(
    name: str,
    *,
    use_session: bool,
    config: Any,
    store: Any,
    daemon_credentials: Any,
) -> Signer:
    """Long-term keys when the profile has them (and ``use_session`` is off); else the
    session credentials the daemon serves for it, with their expiry."""
    raw = config.require_profile(name)
    if not is_role_or_sso(raw) and not use_session:
        keys = long_term_keys(store, name, raw)
        if keys is not None:
            return Signer(name, keys)
        if raw.get("aws_session_token"):
            raise LifetimeUnavailable(
                f"profile {name} holds STS session credentials in the credentials file "
                "whose expiry credd cannot know",
                hint="sign with a profile that holds an IAM user's long-term keys",
            )
    served = served_profile(config, name, raw)
    if served is None:
        raise ConfigError(
            f"profile {name} has no long-term keys and credd does not serve it",
            hint=f"store an IAM user's keys (credd keys set {name}) or credd enable {name}",
        )
    creds = Credentials.from_process_json(daemon_credentials(served))
    raw = config.profiles.get(served, raw)
    kind = "role session credentials" if "role_arn" in raw else "STS session credentials"
    if is_sso(raw):
        kind = "IAM Identity Center session credentials"
    return Signer(name, creds, kind, creds.expiration)


@dataclass(frozen=True)
class Presigned:
    bucket: str
    key: str
    method: str
    url: str
    expires_at: datetime

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "url": self.url,
            "bucket": self.bucket,
            "key": self.key,
            "method": self.method,
            "expires_at": isoformat_z(self.expires_at),
            "expires_in_seconds": int((self.expires_at - now).total_seconds()),
        }


def signed_at(url: str) -> datetime:
    """The ``X-Amz-Date`` botocore put in the URL."""
    match = _AMZ_DATE.search(url)
    if match is None:
        raise AwsError("botocore made a URL without X-Amz-Date (not SigV4)")
    return datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def presign_all(
    client: Any, targets: list[tuple[str, str]], method: str, seconds: int
) -> list[Presigned]:
    """One URL per object, all from one botocore client (SigV4 query auth)."""
    operation = _OPERATIONS[method]
    out = []
    for bucket, key in targets:
        url = client.generate_presigned_url(
            operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds, HttpMethod=method
        )
        out.append(Presigned(bucket, key, method, url, signed_at(url) + timedelta(seconds=seconds)))
    return out
