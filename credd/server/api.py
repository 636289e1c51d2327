"""The socket API: pure request handlers over a :class:`~credd.server.backend.Backend`.

Paths (version 1; see docs/socket-api.md)::

    GET  /v1/status                         daemon info and every managed profile
    GET  /v1/credentials/{profile}          credential_process JSON (Cache-Control: no-store)
    POST /v1/profiles/{profile}/mfa         {"code": "123456"} -> {"profile": status}
    POST /v1/profiles/{profile}/refresh     (empty body or {}) -> {"profile": status}

No I/O happens here: a transport builds the :class:`Request` and writes the :class:`Response`.
The loopback container endpoint has its own handler (:mod:`credd.server.container`): its own
response shape, token, ``Host`` and proxy checks.
"""

from __future__ import annotations

from typing import Any

from credd.clock import Clock
from credd.errors import RequestError
from credd.models import Credentials, ProfileStatus
from credd.server.backend import Backend
from credd.server.http import Peer, Request, Response, Router, decode_profile

__all__ = ["API_VERSION", "Api", "Peer", "Request", "Response"]

API_VERSION = 1

_NO_STORE = (("cache-control", "no-store"),)
_CREDENTIALS_PREFIX = "/v1/credentials/"
_MAX_CODE_LENGTH = 16


class Api:
    """Version 1 of the socket API."""

    def __init__(self, backend: Backend, clock: Clock) -> None:
        self.backend = backend
        self.clock = clock
        self.router = Router()
        self.router.add("GET", "/v1/status", self._status)
        self.router.add("GET", "/v1/credentials/{profile}", self._credentials)
        self.router.add("POST", "/v1/profiles/{profile}/mfa", self._mfa)
        self.router.add("POST", "/v1/profiles/{profile}/refresh", self._refresh)

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises. May block (run it in a worker thread)."""
        return self.router.dispatch(request)

    def handle_nowait(self, request: Request) -> Response | None:
        """Answer on the calling thread (the event loop) when that cannot block, else ``None``.

        Only for ``GET /v1/credentials/{profile}``, and only when the backend offers the optional
        ``credentials_nowait(profile) -> Credentials | None``: credentials it holds right now,
        or ``None`` when answering would mean waiting (no I/O, no lock held across I/O). Every
        other case, errors included, goes through :meth:`handle` in a worker thread. This saves
        the thread hand-off (~0.1 ms, a third of a fetch) on the hot path; see docs/socket-api.md.
        """
        nowait = getattr(self.backend, "credentials_nowait", None)
        if nowait is None or request.method != "GET":
            return None
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
        return Response.json(200, creds.to_process_json(), _NO_STORE)

    # -- handlers ---------------------------------------------------------------------------

    def _status(self, request: Request, params: dict[str, str]) -> Response:
        now = self.clock.now()
        payload = {
            "version": API_VERSION,
            "daemon": self.backend.daemon_info(),
            "profiles": [p.to_json(now) for p in self.backend.status()],
        }
        return Response.json(200, payload, _NO_STORE)

    def _credentials(self, request: Request, params: dict[str, str]) -> Response:
        profile = decode_profile(params["profile"])
        creds = self.backend.credentials(profile)
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
