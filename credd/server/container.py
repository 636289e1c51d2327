"""The loopback container-credentials endpoint: botocore's ``ContainerProvider`` contract.

``GET http://127.0.0.1:PORT/v1/container-credentials/{profile}`` with ``Authorization: TOKEN``
answers ``{"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"?}``, the shape
every AWS SDK reads from ``AWS_CONTAINER_CREDENTIALS_FULL_URI``. It shares the h11 connection
machinery of the unix socket (:mod:`credd.server.base`) and the loopback bind, peer-uid and
header rules of :mod:`credd.server.loopback`; what differs:

* it binds an IPv4 loopback address only (``127.0.0.1``), nothing else, ever;
* each connection's owner is asked of the kernel (:mod:`credd.server.peeruid`; loopback TCP
  has no ``SO_PEERCRED``): only the daemon's own uid is served, so a token that leaks to another
  local user is useless to them;
* every request must carry the token (compared with :func:`hmac.compare_digest`), a ``Host``
  naming this endpoint (``127.0.0.1:PORT`` or ``localhost:PORT``; a DNS-rebinding defence), and
  no proxy (``Forwarded``, ``Via``, ``X-Forwarded-*``, ``X-Real-IP``) or browser (``Origin``,
  ``Sec-Fetch-*``) headers;
* errors are ``{"code", "message", "hint"?}`` (the message says what to run), the shape the
  ECS agent uses; botocore puts the body into the error it raises.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from credd.errors import CreddError, RequestError
from credd.models import Credentials
from credd.plan import lifetime
from credd.server.backend import Backend
from credd.server.endpoint import HOST, PATH_PREFIX
from credd.server.http import Request, Response, decode_profile, log_internal_error
from credd.server.limits import Limits
from credd.server.loopback import LoopbackServer as _Loopback
from credd.server.loopback import PortInUse, header_refusal, host_matches
from credd.server.peeruid import TcpOwner, tcp_owner

logger = logging.getLogger(__name__)

__all__ = [
    "ENDPOINT_LIMITS",
    "ContainerApi",
    "LoopbackServer",
    "PortInUse",
    "container_json",
    "tcp_owner",
]

#: GET requests only: a small request limit; otherwise as the socket.
ENDPOINT_LIMITS = Limits(max_request_bytes=16 * 1024)

_NO_STORE = (("cache-control", "no-store"),)
_USE_CREDD = "run the program under `credd exec PROFILE -- ...` or eval `credd env PROFILE`"


def container_json(creds: Credentials) -> dict[str, Any]:
    """The ``ContainerProvider`` shape (``Token``, not ``SessionToken``)."""
    from credd.clock import isoformat_z

    out: dict[str, Any] = {
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.session_token or "",
    }
    if creds.expiration is not None:
        out["Expiration"] = isoformat_z(creds.expiration)
    if creds.account_id:
        out["AccountId"] = creds.account_id
    return out


def flat_error(
    status: int,
    code: str,
    message: str,
    hint: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    body: dict[str, Any] = {"code": code, "message": f"{message} ({hint})" if hint else message}
    if hint:
        body["hint"] = hint
    return Response.json(status, body, (*_NO_STORE, *headers))


def error_json(err: CreddError) -> Response:
    return flat_error(err.http_status, err.code, err.message, err.hint)


class ContainerApi:
    """Checks and answers endpoint requests over a :class:`~credd.server.backend.Backend`.

    ``port`` is set by the server once bound (it is part of the ``Host`` check).
    """

    def __init__(self, backend: Backend, token: str, *, port: int = 0) -> None:
        if not token or any(c in token for c in "\r\n"):
            raise ValueError("the endpoint token must be a non-empty single line")
        self.backend = backend
        self._token = token.encode("ascii")
        self.port = port

    def check(self, request: Request) -> str | Response:
        """The profile asked for, or the error answer. Security checks come first, in order."""
        refusal = header_refusal(request)
        if refusal == "proxy":
            return flat_error(
                403, "forbidden", "requests through a proxy are refused",
                "talk to the endpoint directly; add 127.0.0.1 and localhost to NO_PROXY",
            )  # fmt: skip
        if refusal == "browser":
            return flat_error(403, "forbidden", "requests from a web browser are refused")
        if not host_matches(request, self.port):
            return flat_error(
                403, "forbidden", "the Host header does not name this endpoint",
                f"use http://{HOST}:{self.port}{PATH_PREFIX}PROFILE",
            )  # fmt: skip
        tokens = [value for name, value in request.headers if name == "authorization"]
        if not tokens:
            return flat_error(401, "unauthorized", "this endpoint needs its token", _USE_CREDD)
        sent = tokens[0].encode("latin-1", "replace")
        if len(tokens) != 1 or not hmac.compare_digest(sent, self._token):
            return flat_error(403, "forbidden", "the token is not this endpoint's", _USE_CREDD)
        path = request.path
        if not path.startswith(PATH_PREFIX) or "/" in path[len(PATH_PREFIX) :]:
            return flat_error(404, "not_found", "no such path", f"GET {PATH_PREFIX}PROFILE")
        if request.method != "GET":
            return flat_error(
                405, "method_not_allowed", f"{request.method} is not allowed here", "use GET",
                (("allow", "GET"),),
            )  # fmt: skip
        try:
            return decode_profile(path[len(PATH_PREFIX) :])
        except RequestError as err:
            return error_json(err)

    def handle_nowait(self, request: Request) -> Response | None:
        """Refusals and credentials held right now, on the event loop; else ``None``."""
        checked = self.check(request)
        if isinstance(checked, Response):
            return checked
        nowait = getattr(self.backend, "credentials_nowait", None)
        if nowait is None or request.header(lifetime.HEADER):
            return None  # a lifetime guard may refresh first: a worker thread
        try:
            creds = nowait(checked)
        except Exception:  # the full path reports it
            return None
        if not isinstance(creds, Credentials):
            return None
        return Response.json(200, container_json(creds), _NO_STORE)

    def handle(self, request: Request) -> Response:
        """The full path (may block while a first fetch runs); never raises."""
        checked = self.check(request)
        if isinstance(checked, Response):
            return checked
        try:
            creds = lifetime.guarded(self.backend, checked, request.header(lifetime.HEADER))
        except CreddError as err:
            return error_json(err)
        except Exception as exc:  # its text may hold a secret: log the type and the stack only
            log_internal_error(logger, "the endpoint", exc)
            return flat_error(500, "error", "credd hit an internal error", "see the daemon's log")
        return Response.json(200, container_json(creds), _NO_STORE)


class LoopbackServer(_Loopback):
    """Serves a :class:`ContainerApi` on ``127.0.0.1:port`` (``0``: any free port)."""

    thread_name = "credd-endpoint"
    client_hint = "the endpoint speaks HTTP/1.1 (botocore's container provider)"
    port_hint = "choose another with --endpoint-port N or CREDD_ENDPOINT_PORT (0 = any free port)"

    def __init__(
        self,
        api: ContainerApi,
        *,
        port: int,
        host: str = HOST,
        limits: Limits = ENDPOINT_LIMITS,
        uid: int | None = None,
        owners: TcpOwner | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            api, port=port, host=host, limits=limits, uid=uid, owners=owners, monotonic=monotonic
        )
        self.container = api

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH_PREFIX}"

    def error_response(self, err: CreddError) -> Response:
        return error_json(err)
