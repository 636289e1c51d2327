"""Transport-neutral HTTP values and a small route table shared by every credd endpoint.

A transport (the unix socket now, the loopback container endpoint later) turns bytes into a
:class:`Request`, hands it to a :class:`Router` and writes the :class:`Response` back. Nothing here
does I/O. Errors become ``{"error": {"code", "message", "hint"?}}`` with the error's HTTP status;
an unexpected exception becomes a generic 500 whose text never reaches the client (the exception
message could hold a secret), and whose log line carries the stack but not the message.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from credd.errors import CreddError, MethodNotAllowed, NotFound, RequestError
from credd.server.jsonbody import parse_object

logger = logging.getLogger(__name__)


def log_internal_error(log: logging.Logger, where: str, exc: BaseException) -> None:
    """Log an unexpected exception by its type and stack, never its text: that may hold a
    secret (a botocore message, a token). Every server's last-resort handler calls this."""
    stack = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    log.error("internal error in %s: %s\n%s", where, type(exc).__name__, stack)


JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request. Header names are lower case. ``body`` is never logged."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = field(default=b"", repr=False)
    peer: Peer | None = None

    @property
    def path(self) -> str:
        """The raw (still percent-encoded) path, without the query."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def json_body(self, *, allow_empty: bool = False) -> dict[str, Any]:
        """The body as a JSON object; ``RequestError`` (400, or 413 when too large) when it is
        not one. Bounded in size and nesting depth (:mod:`credd.server.jsonbody`)."""
        return parse_object(self.body, allow_empty=allow_empty)


@dataclass(frozen=True)
class Response:
    """Status, extra headers and a JSON body (the transport adds length and framing)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = field(default=b"", repr=False)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, (("content-type", JSON_TYPE), *headers), body)

    @classmethod
    def error(cls, err: CreddError, headers: Iterable[tuple[str, str]] = ()) -> Response:
        return cls.json(err.http_status, {"error": err.to_json()}, headers)


Handler = Callable[[Request, dict[str, str]], Response]

#: Profile names as credd accepts them in a path (after percent-decoding).
PROFILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+=,:-]{0,127}")

_PARAM_RE = re.compile(r"\{(\w+)\}")


def decode_profile(raw: str) -> str:
    """Percent-decode one path segment and check it is a sane profile name."""
    try:
        name = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        name = ""
    if not PROFILE_RE.fullmatch(name):
        raise RequestError(
            "that is not a valid profile name",
            hint="profile names are 1-128 characters: letters, digits and . _ - @ + = , :",
        )
    return name


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # e.g. "/v1/credentials/{profile}"; used in logs instead of the real path
    handler: Handler
    regex: re.Pattern[str]


class Router:
    """A route table: ``add("GET", "/v1/x/{name}", handler)`` then ``dispatch(request)``.

    A ``{param}`` matches one non-empty path segment, given to the handler still percent-encoded
    (handlers decode and validate it, e.g. with :func:`decode_profile`). A path that matches no
    route is a 404; a path that matches only for other methods is a 405 with ``Allow``.
    """

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.compile(
            "".join(
                f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part)
                for i, part in enumerate(_PARAM_RE.split(pattern))
            )
        )
        self._routes.append(Route(method.upper(), pattern, handler, regex))

    def dispatch(self, request: Request) -> Response:
        """Run the matching handler; every failure becomes a JSON error response."""
        route_name = "-"
        try:
            path = request.path
            allowed: list[str] = []
            for route in self._routes:
                match = route.regex.fullmatch(path)
                if match is None:
                    continue
                if route.method != request.method:
                    allowed.append(route.method)
                    continue
                route_name = route.pattern
                return route.handler(request, match.groupdict())
            if allowed:
                raise MethodNotAllowed(
                    f"{request.method} is not allowed here",
                    hint=f"use {' or '.join(sorted(set(allowed)))}",
                    allow=", ".join(sorted(set(allowed))),
                )
            raise NotFound("no such path", hint="see docs/socket-api.md for the paths credd serves")
        except CreddError as err:
            extra: tuple[tuple[str, str], ...] = ()
            if isinstance(err, MethodNotAllowed) and "allow" in err.fields:
                extra = (("allow", str(err.fields["allow"])),)
            return Response.error(err, extra)
        except Exception as exc:  # the one place every other failure is caught
            log_internal_error(logger, f"{request.method} {route_name}", exc)
            return Response.error(
                CreddError(
                    "credd hit an internal error",
                    hint="see the daemon's log; try again or restart it: credd daemon",
                )
            )
