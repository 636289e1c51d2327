"""The AWS federation endpoint (``https://signin.aws.amazon.com/federation``), played locally.

``GET /federation?Action=getSigninToken&Session={"sessionId","sessionKey","sessionToken"}``
[``&SessionDuration=900..43200``, role credentials only] answers ``{"SigninToken": "..."}`` for
credentials AWS accepts there: AssumeRole (role, SSO) and GetFederationToken sessions that are
known, unexpired and whose secret and token match. GetSessionToken credentials and long-term keys
are refused (400), as AWS does. ``GET /federation?Action=login&SigninToken=...&Destination=URL``
answers 302 to ``Destination`` (header ``x-sandbox-console-principal``: who signed in) while the
token is unused and younger than 15 minutes (sandbox clock); else 400.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request

from credd_sandbox.state import KeyRecord, SandboxState

PATH = "/federation"
TOKEN_LIFETIME = timedelta(minutes=15)
StartResponse = Callable[..., Any]


@dataclass
class _Token:
    principal: str
    issued: datetime
    used: bool = False


class FederationService:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Request, start_response: StartResponse) -> Iterable[bytes]:
        action = request.args.get("Action", "")
        try:
            if action == "getSigninToken":
                return _json(start_response, 200, {"SigninToken": self._issue(request.args)})
            if action == "login":
                principal = self._login(request.args.get("SigninToken", ""))
                destination = request.args.get("Destination", "")
                if not destination.startswith("https://"):
                    raise _Bad("Destination must be an https:// console URL")
                start_response(
                    "302 Found",
                    [("Location", destination), ("x-sandbox-console-principal", principal),
                     ("Content-Length", "0")],
                )  # fmt: skip
                return [b""]
            raise _Bad(f"unknown Action {action!r}")
        except _Bad as bad:
            return _json(start_response, 400, {"Error": str(bad)})

    def _issue(self, args: Any) -> str:
        try:
            session = json.loads(args.get("Session", ""))
            key_id, secret, token = (
                session["sessionId"], session["sessionKey"], session["sessionToken"]
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            raise _Bad("Session must be JSON with sessionId, sessionKey, sessionToken") from None
        record = self.state.key(str(key_id))
        if record is None or not _matches(record, str(secret), str(token)):
            raise _Bad("The credentials in the Session are not valid")
        if record.kind == "user" or (
            record.kind == "session" and ":federated-user/" not in record.arn
        ):
            raise _Bad(
                "Only credentials from AssumeRole or GetFederationToken can sign in to the "
                "console (not long-term keys, not GetSessionToken)"
            )
        now = self.state.clock.now()
        if record.expiration is not None and now >= record.expiration:
            raise _Bad("The credentials in the Session have expired")
        duration = args.get("SessionDuration")
        if duration is not None:
            if record.kind != "role":
                raise _Bad("SessionDuration is only allowed with role credentials")
            if not str(duration).isdigit() or not 900 <= int(duration) <= 43200:
                raise _Bad("SessionDuration must be 900..43200")
        signin = "sbx-signin-" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[signin] = _Token(record.arn, now)
        return signin

    def _login(self, signin: str) -> str:
        now = self.state.clock.now()
        with self._lock:
            token = self._tokens.get(signin)
            if token is None or token.used or now - token.issued > TOKEN_LIFETIME:
                raise _Bad("The sign-in token is invalid, used or expired")
            token.used = True
            return token.principal


class _Bad(Exception):
    pass


def _matches(record: KeyRecord, secret: str, token: str) -> bool:
    return hmac.compare_digest(record.secret.encode(), secret.encode()) and (
        record.token is not None and hmac.compare_digest(record.token.encode(), token.encode())
    )


def _json(start_response: StartResponse, status: int, body: dict[str, str]) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = "OK" if status == 200 else "Bad Request"
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]
