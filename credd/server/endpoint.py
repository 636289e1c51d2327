"""The container-credentials endpoint's settings: port, URL and the token file.

Standard library only (``credd env``/``exec`` import it). See docs/container-endpoint.md.

* **Port.** ``--endpoint-port N`` / ``CREDD_ENDPOINT_PORT`` (``0`` = any free port), else the
  per-user default ``DEFAULT_PORT_BASE + uid % DEFAULT_PORT_SPAN`` (20000-29999: below Linux's
  ephemeral range, and different for each user, since two users cannot both listen on one
  loopback port). When the *default* port is taken, the daemon falls back to a free port and
  says so in ``status``; when an *explicit* port is taken, the endpoint is off (and says why).
* **Token.** A random 256-bit token (``secrets.token_urlsafe``) in ``endpoint-token`` in
  credd's private runtime dir, mode 0600, no newline (botocore sends the file's content as the
  ``Authorization`` header). It is created once and reused across daemon restarts, so programs
  holding the token (or its file) keep working; a file that is not ours, not private or not a
  token is replaced by a new one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from credd.errors import ConfigError, UsageError

__all__ = [
    "DEFAULT_PORT_BASE",
    "DEFAULT_PORT_SPAN",
    "HOST",
    "PATH_PREFIX",
    "EndpointSettings",
    "default_port",
    "ensure_token",
    "profile_url",
    "token_path",
]

HOST = "127.0.0.1"
PATH_PREFIX = "/v1/container-credentials/"
DEFAULT_PORT_BASE = 20000
DEFAULT_PORT_SPAN = 10000
TOKEN_FILE = "endpoint-token"  # noqa: S105 - a file name
PORT_ENV = "CREDD_ENDPOINT_PORT"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,128}")


def default_port(uid: int | None = None) -> int:
    """The documented per-user default: ``20000 + uid % 10000``."""
    return DEFAULT_PORT_BASE + (os.getuid() if uid is None else uid) % DEFAULT_PORT_SPAN


def parse_port(text: str, source: str) -> int:
    value = text.strip()
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise UsageError(
            f"{source} must be a port number 0-65535 (0 = any free port), not {text!r}",
            hint=f"fix {source}",
        )
    return int(value)


@dataclass(frozen=True)
class EndpointSettings:
    """What the daemon was asked for. ``port=None`` means the per-user default."""

    enabled: bool = True
    port: int | None = None

    @classmethod
    def resolve(
        cls,
        *,
        port: int | str | None = None,
        disabled: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> EndpointSettings:
        """Command line first, then ``CREDD_ENDPOINT_PORT`` (``off`` turns it off)."""
        if disabled:
            return cls(enabled=False)
        if port is not None:
            return cls(port=parse_port(str(port), "--endpoint-port"))
        env = os.environ if environ is None else environ
        text = env.get(PORT_ENV, "").strip()
        if not text:
            return cls()
        if text.lower() in ("off", "none", "no", "false"):
            return cls(enabled=False)
        return cls(port=parse_port(text, PORT_ENV))

    @property
    def explicit(self) -> bool:
        return self.port is not None

    def wanted_port(self, uid: int | None = None) -> int:
        return default_port(uid) if self.port is None else self.port


def base_url(port: int) -> str:
    return f"http://{HOST}:{port}{PATH_PREFIX}"


def profile_url(base: str, profile: str) -> str:
    """``base`` (from the daemon's status) + the percent-encoded profile name."""
    from credd.client import quote_segment

    return base + quote_segment(profile)


def token_path(environ: Mapping[str, str] | None = None) -> Path:
    from credd.paths import runtime_dir

    return runtime_dir(environ) / TOKEN_FILE


def ensure_token(path: Path) -> str:
    """The token in ``path``, creating the file (0600, private dir) when missing or unusable."""
    from credd.paths import ensure_private_dir

    ensure_private_dir(path.parent)
    existing = _read_own_token(path)
    if existing is not None:
        return existing
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, token.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token


def _read_own_token(path: Path) -> str | None:
    """The token if ``path`` is a private regular file of ours holding one, else ``None``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if not path.is_symlink():
            raise ConfigError(
                f"cannot read the endpoint token file {path}: {exc.strerror or exc}",
                hint="remove it; the daemon makes a new one",
            ) from None
        return None  # a symlink is never followed; it is replaced
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.getuid()
            or stat.S_IMODE(st.st_mode) & 0o077
        ):
            return None  # not ours, or others could have read it: a new token
        text = os.read(fd, 256).decode("ascii", "replace")
    finally:
        os.close(fd)
    return text if _TOKEN_RE.fullmatch(text) else None


def read_token(path: str | Path) -> str:
    """The token a client sends (``credd env`` sets ``AWS_CONTAINER_AUTHORIZATION_TOKEN``)."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the endpoint token file {path}: {exc}",
            hint="restart the daemon (credd daemon) to recreate it",
        ) from None
    if not _TOKEN_RE.fullmatch(text):
        raise ConfigError(
            f"{path} does not hold an endpoint token",
            hint="restart the daemon (credd daemon) to recreate it",
        )
    return text
