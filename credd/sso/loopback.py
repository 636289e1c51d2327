"""The one-shot loopback HTTP server that receives the browser's OAuth redirect.

Binds ``127.0.0.1`` on a free port (the AWS CLI binds every interface; credd does not), serves
in a thread so the browser (or a test driving the redirect with urllib) can be started from the
caller's thread, accepts exactly one ``GET /oauth/callback`` carrying ``code`` and ``state`` (or
``error``), and answers every other path with 404. The state is compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

CALLBACK_PATH = "/oauth/callback"
#: The redirect URI registered with RegisterClient (the CLI's ``redirect_uri_without_port``).
REGISTERED_REDIRECT = "http://127.0.0.1/oauth/callback"

_DONE_PAGE = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>credd</title></head>"
    b"<body><h1>Signed in</h1><p>credd has your login. You can close this tab.</p></body></html>"
)
_FAILED_PAGE = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>credd</title></head>"
    b"<body><h1>Sign-in failed</h1><p>Return to your terminal.</p></body></html>"
)


@dataclass(frozen=True)
class Callback:
    """What the redirect carried: a code (state already checked), or an OAuth error code."""

    code: str | None
    error: str | None


class _Server(HTTPServer):
    expected_state: str
    result: Callback | None
    done: threading.Event


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "credd"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return  # the query holds the code: never log it

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH or self.server.done.is_set():
            self._answer(404, b"not found")
            return
        query = parse_qs(parts.query)
        state = (query.get("state") or [""])[0]
        if not hmac.compare_digest(state.encode(), self.server.expected_state.encode()):
            # A stray or forged request: refuse it and keep waiting for the real one.
            log.warning("ignored a login redirect whose state did not match")
            self._answer(400, _FAILED_PAGE)
            return
        if "error" in query:
            self.server.result = Callback(None, (query.get("error") or ["error"])[0][:100])
            self._answer(200, _FAILED_PAGE)
        elif query.get("code"):
            self.server.result = Callback(query["code"][0], None)
            self._answer(200, _DONE_PAGE)
        else:
            self._answer(400, _FAILED_PAGE)
            return
        self.server.done.set()


class CallbackServer:
    """``with CallbackServer(state) as srv: ... srv.redirect_uri ... srv.wait(timeout)``."""

    def __init__(self, expected_state: str) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.expected_state = expected_state
        self._server.result = None
        self._server.done = threading.Event()
        self._server.timeout = 0.5
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, timeout: float) -> Callback | None:
        """The callback, or ``None`` after ``timeout`` seconds. Wakes up often, so Ctrl-C
        interrupts it at once."""
        remaining = timeout
        while remaining > 0:
            step = min(remaining, 0.25)
            if self._server.done.wait(step):
                return self._server.result
            remaining -= step
        return None
