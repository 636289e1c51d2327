"""The socket API: pure request handlers over a :class:`~credd.server.backend.Backend`.

Paths (version 1; see docs/socket-api.md)::

    GET  /v1/status                         daemon info and every managed profile
    GET  /v1/credentials/{profile}          credential_process JSON (Cache-Control: no-store)
    POST /v1/profiles/{profile}/mfa         {"code": "123456"} -> {"profile": status}
    POST /v1/profiles/{profile}/refresh     (empty body or {}) -> {"profile": status}
    POST /v1/imds/{profile}                 {"lease"?: bool} -> {"imds": endpoint} (docs/imds.md)
    POST /v1/forget                         {"profile": P} or {"all": true} -> {"forgot": {...}}
    POST /v1/logins                         {"profile": P} or {"sso_session": S} -> {"login": ...}
    GET  /v1/logins/{login}                 a device-code login's state -> {"login": ...}
    GET  /v1/metrics                        Prometheus text format (see docs/metrics.md)

No I/O happens here: a transport builds the :class:`Request` and writes the :class:`Response`.
The loopback container endpoint has its own handler (:mod:`credd.server.container`): its own
response shape, token, ``Host`` and proxy checks.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from credd import metrics
from credd.clock import Clock
from credd.errors import NotFound, RequestError
from credd.models import Credentials, ProfileStatus
from credd.plan import lifetime
from credd.server.backend import Backend
from credd.server.http import (
    JSON_TYPE,
    Handler,
    Peer,
    Request,
    Response,
    Router,
    decode_profile,
)

__all__ = ["API_VERSION", "Api", "Peer", "Request", "Response"]

API_VERSION = 1

_NO_STORE = (("cache-control", "no-store"),)
_CREDENTIALS_PREFIX = "/v1/credentials/"
_MAX_CODE_LENGTH = 16
_CREDENTIALS_ROUTE = "/v1/credentials/{profile}"
_LOGIN_ID = re.compile(r"[0-9a-f]{16}")


class ImdsControl(Protocol):
    """Starts (or reuses) a profile's IMDS endpoint:
    :class:`credd.server.imds_endpoints.ImdsEndpoints`."""

    def open(self, profile: str, *, lease_pid: int | None = None) -> dict[str, Any]: ...


class LoginView(Protocol):
    """A device-code login: :class:`credd.sso.device.DeviceLogin`."""

    def to_json(self, now: Any) -> dict[str, Any]: ...


class LoginControl(Protocol):
    """Device-code logins the daemon runs: :class:`credd.sso.device.DeviceLogins`."""

    def start(self, *, profile: str | None = None, sso_session: str | None = None) -> LoginView: ...

    def get(self, login_id: str) -> LoginView: ...


class Api:
    """Version 1 of the socket API."""

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        *,
        registry: metrics.Registry | None = None,
        imds: ImdsControl | None = None,
        logins: LoginControl | None = None,
        info: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        """``info``: the daemon's own facts for ``status`` (socket, endpoints), added to the
        backend's ``daemon_info()`` by whoever composes the daemon (never secrets)."""
        self.backend = backend
        self._info = info
        self.imds = imds
        self.logins = logins
        self.clock = clock
        self.metrics = registry or metrics.REGISTRY
        self._route = threading.local()  # the pattern the current request matched
        self.router = Router()
        self._add("GET", "/v1/status", self._status)
        self._add("GET", _CREDENTIALS_ROUTE, self._credentials)
        self._add("POST", "/v1/profiles/{profile}/mfa", self._mfa)
        self._add("POST", "/v1/profiles/{profile}/refresh", self._refresh)
        self._add("GET", "/v1/metrics", self._metrics)
        self._add("POST", "/v1/imds/{profile}", self._imds)
        self._add("POST", "/v1/forget", self._forget)
        self._add("POST", "/v1/logins", self._login_start)
        self._add("GET", "/v1/logins/{login}", self._login_get)

    def _add(self, method: str, pattern: str, handler: Handler) -> None:
        def routed(request: Request, params: dict[str, str]) -> Response:
            self._route.pattern = pattern
            return handler(request, params)

        self.router.add(method, pattern, routed)

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises. May block (run it in a worker thread)."""
        self._route.pattern = None
        response = self.router.dispatch(request)
        self.metrics.count_request(self._route.pattern, response.status)
        return response

    def handle_nowait(self, request: Request) -> Response | None:
        """Answer on the calling thread (the event loop) when that cannot block, else ``None``.

        Only for ``GET /v1/credentials/{profile}``, and only when the backend offers the optional
        ``credentials_nowait(profile) -> Credentials | None``: credentials it holds right now,
        or ``None`` when answering would mean waiting (no I/O, no lock held across I/O). Every
        other case, errors included, goes through :meth:`handle` in a worker thread. This saves
        the thread hand-off (~0.1 ms, a third of a fetch) on the hot path; see docs/socket-api.md.
        """
        nowait = getattr(self.backend, "credentials_nowait", None)
        if nowait is None or request.method != "GET" or request.header(lifetime.HEADER):
            return None  # a lifetime guard may refresh first: a worker thread
        path = request.path
        if not path.startswith(_CREDENTIALS_PREFIX):
            return None
        segment = path[len(_CREDENTIALS_PREFIX) :]
        try:
            creds = nowait(decode_profile(segment)) if "/" not in segment else None
        except Exception:  # the full path will raise (and report) it again
            return None
        if not isinstance(creds, Credentials):
            return None
        self.metrics.count_request(_CREDENTIALS_ROUTE, 200)
        return Response.json(200, creds.to_process_json(), _NO_STORE)

    # -- handlers ---------------------------------------------------------------------------

    def daemon_info(self) -> dict[str, Any]:
        """The backend's facts and the daemon's own (``info``)."""
        info = self.backend.daemon_info()
        return info if self._info is None else {**info, **self._info()}

    def _status(self, request: Request, params: dict[str, str]) -> Response:
        status_json = getattr(self.backend, "status_json", None)
        if status_json is not None:  # profiles as JSON text, rebuilt only where they changed
            head = json.dumps(
                {"version": API_VERSION, "daemon": self.daemon_info()}, separators=(",", ":")
            )
            body = head[:-1].encode() + b',"profiles":' + status_json() + b"}"
            return Response(200, (("content-type", JSON_TYPE), *_NO_STORE), body)
        now = self.clock.now()
        payload = {
            "version": API_VERSION,
            "daemon": self.daemon_info(),
            "profiles": [p.to_json(now) for p in self.backend.status()],
        }
        return Response.json(200, payload, _NO_STORE)

    def _credentials(self, request: Request, params: dict[str, str]) -> Response:
        profile = decode_profile(params["profile"])
        creds = lifetime.guarded(self.backend, profile, request.header(lifetime.HEADER))
        return Response.json(200, creds.to_process_json(), _NO_STORE)

    def _mfa(self, request: Request, params: dict[str, str]) -> Response:
        profile = decode_profile(params["profile"])
        data = request.json_body()
        _only_fields(data, {"code"})
        code = data.get("code")
        if not isinstance(code, str) or not code.strip() or len(code) > _MAX_CODE_LENGTH:
            raise RequestError(
                'the body needs a "code" string',
                hint='send {"code": "123456"} with the code your MFA device shows',
            )
        status = self.backend.push_mfa_code(profile, code.strip())
        return self._profile_response(status)

    def _refresh(self, request: Request, params: dict[str, str]) -> Response:
        profile = decode_profile(params["profile"])
        _only_fields(request.json_body(allow_empty=True), set())
        return self._profile_response(self.backend.refresh(profile))

    def _imds(self, request: Request, params: dict[str, str]) -> Response:
        profile = decode_profile(params["profile"])
        data = request.json_body(allow_empty=True)
        _only_fields(data, {"lease"})
        lease = data.get("lease", False)
        if not isinstance(lease, bool):
            raise RequestError('"lease" must be true or false')
        if self.imds is None:
            raise NotFound("this daemon serves no IMDS endpoints", hint="see docs/imds.md")
        # the lease belongs to the process on the other end of the socket (SO_PEERCRED)
        pid = request.peer.pid if lease and request.peer is not None else None
        if lease and pid is None:
            raise RequestError("a lease needs a caller whose process id is known")
        endpoint = self.imds.open(profile, lease_pid=pid)
        return Response.json(200, {"imds": endpoint}, _NO_STORE)

    def _forget(self, request: Request, params: dict[str, str]) -> Response:
        data = request.json_body()
        _only_fields(data, {"profile", "all"})
        profile, everything = data.get("profile"), data.get("all") is True
        if everything == isinstance(profile, str):
            raise RequestError('send {"profile": "NAME"} or {"all": true}')
        forget = getattr(self.backend, "forget", None)
        if forget is None:
            raise NotFound("this daemon cannot forget sessions")
        name = None if everything else decode_profile(str(profile))
        return Response.json(200, {"forgot": forget(name)}, _NO_STORE)

    def _login_control(self) -> LoginControl:
        if self.logins is None:
            raise NotFound("this daemon runs no SSO logins", hint="use: credd login PROFILE")
        return self.logins

    def _login_start(self, request: Request, params: dict[str, str]) -> Response:
        data = request.json_body()
        _only_fields(data, {"profile", "sso_session"})
        profile, session = data.get("profile"), data.get("sso_session")
        if (profile is None) == (session is None) or not isinstance(profile or session, str):
            raise RequestError('send {"profile": "NAME"} or {"sso_session": "NAME"}')
        control = self._login_control()
        if profile is not None:
            login = control.start(profile=decode_profile(str(profile)))
        else:
            login = control.start(sso_session=decode_profile(str(session)))
        return Response.json(200, {"login": login.to_json(self.clock.now())}, _NO_STORE)

    def _login_get(self, request: Request, params: dict[str, str]) -> Response:
        _only_fields(request.json_body(allow_empty=True), set())
        login_id = params["login"]
        if not _LOGIN_ID.fullmatch(login_id):
            raise NotFound("no such login", hint="login ids are 16 hex digits")
        login = self._login_control().get(login_id)
        return Response.json(200, {"login": login.to_json(self.clock.now())}, _NO_STORE)

    def _metrics(self, request: Request, params: dict[str, str]) -> Response:
        _only_fields(request.json_body(allow_empty=True), set())
        text = self.metrics.render(self.backend.status(), self.clock.now(), self.daemon_info())
        headers = (("content-type", metrics.CONTENT_TYPE), *_NO_STORE)
        return Response(200, headers, text.encode())

    def _profile_response(self, status: ProfileStatus) -> Response:
        return Response.json(200, {"profile": status.to_json(self.clock.now())}, _NO_STORE)


def _only_fields(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        shown = ", ".join(name[:40] for name in unknown[:5])
        raise RequestError(
            f"unknown field(s) in the request body: {shown}",
            hint=f"allowed: {', '.join(sorted(allowed)) or 'none'}",
        )
