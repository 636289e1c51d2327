"""Passing requests the sandbox does not answer itself on to moto, unchanged.

Method, path, query, headers and body go as received; the response is streamed back. One
keep-alive connection per gateway thread.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
_CHUNK = 64 * 1024


@dataclass
class Forwarded:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: Iterator[bytes]


class MotoForwarder:
    """Sends requests to the moto server at ``base_url``."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"moto URL needs a host and port: {base_url!r}")
        self.base_url = base_url
        self._host = parts.hostname
        self._port = parts.port
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self, fresh: bool) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def forward(
        self, method: str, raw_uri: str, headers: list[tuple[str, str]], body: bytes
    ) -> Forwarded:
        """Send one request; retry once on a stale keep-alive connection."""
        for attempt in (0, 1):
            conn = self._connection(fresh=attempt == 1)
            try:
                conn.putrequest(method, raw_uri, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if attempt == 1:
                    raise
        out_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        length = response.getheader("Content-Length")
        if length is not None:
            out_headers.append(("Content-Length", length))
        return Forwarded(response.status, response.reason, out_headers, _stream(response, conn))


def _stream(
    response: http.client.HTTPResponse, conn: http.client.HTTPConnection
) -> Iterator[bytes]:
    done = False
    try:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                done = True
                break
            yield chunk
    finally:
        if not done:
            conn.close()  # unread bytes would corrupt the next request on this connection
