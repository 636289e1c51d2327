"""How much a client may ask of a credd HTTP server (see docs/socket-api.md#limits)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """How much a client may ask of the server. Defaults suit a per-user daemon."""

    max_request_bytes: int = 64 * 1024  # head + body of one request
    header_timeout: float = 10.0  # a request must arrive whole this long after it starts
    idle_timeout: float = 60.0  # keep-alive: an idle connection is closed after this
    max_connections: int = 256  # more at once get a 503
    handler_threads: int = 16  # backend calls running at once
    handler_deadline: float = 60.0  # a handler slower than this yields a 503 not_ready
    backlog: int = 512
    linger_timeout: float = 1.0  # after our FIN, what the peer still sends is dropped this long
    max_lingering: int = 256  # closing connections lingering at once; more are closed at once
