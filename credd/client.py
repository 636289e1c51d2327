"""Talk to the credd daemon over its unix socket. Standard library only, cheap to import.

This module runs on every ``credential_process`` call (``credd get``), so its import cost is
part of every SDK credential refresh. Measured on Python 3.11 (``python -X importtime``):
``http.client`` costs ~25 ms (it pulls in ``ssl`` and ``email``), ``h11`` ~25 ms, ``socket`` ~6 ms
(its enum conversions), ``json`` ~3 ms, ``typing`` ~9 ms, ``pathlib`` ~9 ms, against ~10 ms for the
whole interpreter start. So this client:

* has no ``from __future__ import annotations`` (that import alone is ~0.15 ms);
* uses the ``_socket`` C module directly (~0.3 ms; ``socket.socket`` is a thin subclass of it);
* speaks just enough HTTP/1.1 to read *our own* server's answers (status line, headers,
  ``Content-Length`` body; the server side uses h11), one connection per call;
* imports ``json`` and :mod:`credd.errors` only when it needs them (a body to decode, an error
  to raise) and never imports ``typing`` or ``pathlib`` at run time.

See docs/socket-api.md for the protocol and the numbers.
"""

import _socket
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    import boto3
    from aiobotocore.session import AioSession

    from credd.errors import CreddError

__all__ = ["Client", "aiobotocore_session", "boto3_session", "default_socket"]

DEFAULT_TIMEOUT = 10.0
#: refresh and MFA may wait for the next TOTP step and an STS call: allow longer
ACTION_TIMEOUT = 75.0
_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@+=,:")
_START_HINT = "start it: credd daemon"


def default_socket(environ: "Mapping[str, str] | None" = None) -> str:
    """The socket path, as :func:`credd.paths.socket_path` resolves it (a test pins that they
    agree), without importing ``pathlib``: ``CREDD_SOCKET``, else
    ``$XDG_RUNTIME_DIR/credd/credd.sock``, else ``/tmp/credd-<uid>/credd.sock``."""
    env = os.environ if environ is None else environ
    explicit = env.get("CREDD_SOCKET")
    if explicit:
        return explicit
    xdg = env.get("XDG_RUNTIME_DIR")
    base = os.path.join(xdg, "credd") if xdg else f"/tmp/credd-{os.getuid()}"  # noqa: S108
    return os.path.join(base, "credd.sock")


def quote_segment(text: str) -> str:
    """Percent-encode one path segment (what ``urllib.parse.quote(text, safe="")`` does for
    the characters that matter here, without importing it)."""
    return "".join(
        ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in text
    )


def _unavailable(message: str, hint: str = _START_HINT) -> "CreddError":
    from credd.errors import DaemonUnavailable

    return DaemonUnavailable(message, hint=hint)


def connect(path: str, timeout: float) -> _socket.socket:
    """A connected socket to the daemon, or ``DaemonUnavailable`` saying why not."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise _unavailable(f"no credd daemon is listening on {path}") from None
    except PermissionError:
        sock.close()
        raise _unavailable(
            f"permission denied on {path}",
            hint="that socket belongs to another user; start your own: credd daemon",
        ) from None
    except TimeoutError:
        sock.close()
        raise _unavailable(f"the credd daemon on {path} did not accept the connection") from None
    except OSError as exc:
        sock.close()
        raise _unavailable(f"cannot connect to {path}: {exc.strerror or exc}") from None
    return sock


def build_request(
    method: str, target: str, body: bytes | None = None, *, close: bool, extra: str = ""
) -> bytes:
    """One request; ``extra``: more header lines, each ending in CRLF."""
    head = f"{method} {target} HTTP/1.1\r\nhost: credd\r\n{extra}"
    if close:
        head += "connection: close\r\n"
    if body is not None:
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return (head + "\r\n").encode("ascii") + (body or b"")


def exchange(
    sock: _socket.socket, request: bytes, timeout: float = DEFAULT_TIMEOUT
) -> tuple[int, dict[str, str], bytes]:
    """Send one request and read one response (``Content-Length`` framed) from ``sock``,
    all within ``timeout`` seconds.

    Leaves ``sock`` open (usable again when the server keeps the connection alive).
    Raises ``DaemonUnavailable`` on timeouts, resets and malformed answers.
    """
    deadline = time.monotonic() + timeout

    def recv(size: int) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        return sock.recv(size)

    try:
        sock.settimeout(timeout)
        try:  # noqa: SIM105 - contextlib would cost import time on this path
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close at once (403, 503): read what it said
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = recv(65536)
            if not chunk:
                raise _unavailable("the credd daemon closed the connection without answering")
            buf += chunk
            if len(buf) > _MAX_HEAD:
                raise _unavailable("the credd daemon sent an oversized answer")
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise _unavailable(f"{lines[0][:60]!r} is not an answer from credd")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length_text = headers.get("content-length", "")
        if not length_text.isdigit() or int(length_text) > _MAX_BODY:
            raise _unavailable("the credd daemon sent an answer without a usable length")
        length = int(length_text)
        while len(rest) < length:
            chunk = recv(length - len(rest))
            if not chunk:
                raise _unavailable("the credd daemon closed the connection mid-answer")
            rest += chunk
        return int(parts[1]), headers, rest[:length]
    except TimeoutError:
        raise _unavailable(
            "the credd daemon did not answer in time", hint="check it: credd status"
        ) from None
    except OSError as exc:
        raise _unavailable(f"the connection to credd failed: {exc.strerror or exc}") from None


def error_from_response(status: int, body: bytes) -> "CreddError":
    """The :class:`~credd.errors.CreddError` a non-200 answer stands for."""
    import json

    from credd.errors import CreddError, from_json

    try:
        data = json.loads(body)
        error = data["error"]
        if isinstance(error, dict) and "code" in error:
            return from_json(error)
    except (ValueError, KeyError, TypeError):
        pass
    return CreddError(f"the credd daemon answered HTTP {status}", hint="see the daemon's log")


class Client:
    """One call = one connection, as ``credential_process`` does it. Errors are re-raised as the
    daemon's :class:`~credd.errors.CreddError` subclasses; an unreachable daemon is
    ``DaemonUnavailable`` with a hint to start it."""

    def __init__(
        self,
        socket: "str | Path | None" = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        action_timeout: float = ACTION_TIMEOUT,
    ) -> None:
        self.socket = os.fspath(socket) if socket is not None else default_socket()
        self.timeout = timeout
        self.action_timeout = max(action_timeout, timeout)

    def status(self) -> "dict[str, Any]":
        """``{"version": 1, "daemon": {...}, "profiles": [...]}``."""
        return self._json("GET", "/v1/status")

    def credentials(self, profile: str) -> "dict[str, Any]":
        """The ``credential_process`` JSON object for ``profile``."""
        return self._json("GET", "/v1/credentials/" + quote_segment(profile))

    def credentials_raw(self, profile: str, min_lifetime: str | None = None) -> bytes:
        """The ``credential_process`` JSON exactly as the daemon sent it (no ``json`` import).

        ``min_lifetime`` (``"2h"``): the lifetime guard (``X-Credd-Min-Lifetime``): refreshed
        first when they end sooner, an error when the source cannot give that much."""
        extra = ""
        if min_lifetime is not None:
            if any(c in min_lifetime for c in "\r\n"):
                from credd.errors import UsageError

                raise UsageError("--min-lifetime must be one line")
            extra = f"x-credd-min-lifetime: {min_lifetime}\r\n"
        target = "/v1/credentials/" + quote_segment(profile)
        return self.call("GET", target, None, self.action_timeout if extra else None, extra)

    def push_mfa(self, profile: str, code: str) -> "dict[str, Any]":
        """Give the daemon an MFA code for ``profile``; returns ``{"profile": status}``."""
        import json

        body = json.dumps({"code": code}).encode()
        target = f"/v1/profiles/{quote_segment(profile)}/mfa"
        return self._json("POST", target, body, self.action_timeout)

    def refresh(self, profile: str) -> "dict[str, Any]":
        """Refresh ``profile`` now and wait for the outcome; returns ``{"profile": status}``."""
        target = f"/v1/profiles/{quote_segment(profile)}/refresh"
        return self._json("POST", target, b"{}", self.action_timeout)

    def start_login(
        self, profile: "str | None" = None, *, sso_session: "str | None" = None
    ) -> "dict[str, Any]":
        """Have the daemon start a device-code SSO login for ``profile`` (or ``sso_session``);
        returns ``{"login": {"id", "state", "user_code", "verification_uri", ...}}``."""
        import json

        body = {"profile": profile} if sso_session is None else {"sso_session": sso_session}
        return self._json("POST", "/v1/logins", json.dumps(body).encode(), self.action_timeout)

    def login(self, login_id: str) -> "dict[str, Any]":
        """How a login started with :meth:`start_login` is going: ``{"login": {...}}``."""
        return self._json("GET", "/v1/logins/" + quote_segment(login_id))

    def call(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        timeout: float | None = None,
        extra: str = "",
    ) -> bytes:
        """One request on a fresh connection; the body of a 200, else the daemon's error."""
        limit = self.timeout if timeout is None else timeout
        sock = connect(self.socket, limit)
        request = build_request(method, target, body, close=True, extra=extra)
        try:
            status, _, data = exchange(sock, request, limit)
        finally:
            sock.close()
        if status != 200:
            raise error_from_response(status, data)
        return data

    def _json(
        self, method: str, target: str, body: bytes | None = None, timeout: float | None = None
    ) -> "dict[str, Any]":
        import json

        data = self.call(method, target, body, timeout)
        try:
            result = json.loads(data)
        except ValueError:
            raise _unavailable(
                "the credd daemon sent an answer that is not JSON", hint="see the daemon's log"
            ) from None
        if not isinstance(result, dict):
            raise _unavailable("the credd daemon sent an unexpected answer", hint="see its log")
        return result


# -- Python programs: sessions fed by the daemon (boto3/aiobotocore imported only when called) --


def boto3_session(
    profile: str,
    *,
    socket: "str | Path | None" = None,
    region_name: "str | None" = None,
    **options: "Any",
) -> "boto3.Session":
    """A ``boto3.Session`` whose credentials for ``profile`` come from the daemon over the
    socket and refresh themselves (botocore ``RefreshableCredentials``). Region and endpoints
    come from the AWS profile of that name. See :func:`credd.sdk.boto3_session` and
    docs/python.md."""
    from credd.sdk import boto3_session as make

    return make(profile, socket=socket, region_name=region_name, **options)


def aiobotocore_session(
    profile: str,
    *,
    socket: "str | Path | None" = None,
    region_name: "str | None" = None,
    **options: "Any",
) -> "AioSession":
    """An ``aiobotocore`` ``AioSession`` with refreshing credentials from the daemon, for
    ``s3fs.S3FileSystem(session=...)``. See :func:`credd.sdk.aiobotocore_session`."""
    from credd.sdk import aiobotocore_session as make

    return make(profile, socket=socket, region_name=region_name, **options)
