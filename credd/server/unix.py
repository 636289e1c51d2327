"""HTTP/1.1 on a unix socket: h11 (sans-IO, no parser of our own) on asyncio, in its own thread.

One event loop thread owns every connection; handlers run in a bounded thread pool, because a
backend call may block a few seconds (see :mod:`credd.server.base`). Each connection:

1. is checked with ``SO_PEERCRED``: a uid not allowed gets a 403 and is closed (logged once
   per uid per minute, with a count: :mod:`credd.server.refusals`);
2. beyond ``max_connections`` gets a quick 503 and is closed;
3. must deliver a whole request (head + body <= ``max_request_bytes``, else 413) within
   ``header_timeout`` of its first byte (or of connecting), else 408 and close;
4. may keep the connection alive between requests for ``idle_timeout``;
5. garbage gets a 400 and a close. One slow or broken client never blocks another: reading is
   non-blocking and a handler holds only its own connection.

Every close after an answer is a lingering close (:meth:`Connection.close`), so the answer
reaches the peer instead of being destroyed by a reset.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from credd.errors import CreddError, Forbidden
from credd.server.api import Api
from credd.server.base import HttpServer
from credd.server.connection import Connection
from credd.server.http import Peer
from credd.server.limits import Limits
from credd.server.listener import adopt_fd, bind_unix, peer_of

logger = logging.getLogger(__name__)

__all__ = ["Limits", "UnixServer"]


class UnixServer(HttpServer):
    """Serves an :class:`~credd.server.api.Api` on a unix socket from a background thread."""

    thread_name = "credd-unix"
    client_hint = "talk to this socket with credd's client (credd status)"

    def __init__(
        self,
        path: Path,
        api: Api,
        *,
        limits: Limits = Limits(),  # noqa: B008 - frozen, so one shared default is safe
        allowed_uids: frozenset[int] | None = None,
        listen_fd: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(api, limits=limits, monotonic=monotonic)
        self.path = Path(path)
        self.allowed_uids = frozenset({os.getuid()}) if allowed_uids is None else allowed_uids
        self.listen_fd = listen_fd

    @property
    def address(self) -> Path:
        return self.path

    def describe(self) -> str:
        return str(self.path)

    def open(self) -> tuple[socket.socket, Callable[[], None]]:
        if self.listen_fd is not None:
            bound = adopt_fd(self.listen_fd, self.path)
        else:
            bound = bind_unix(self.path, backlog=self.limits.backlog)
        return bound.sock, bound.cleanup

    async def create_server(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket
    ) -> asyncio.AbstractServer:
        return await loop.create_unix_server(
            lambda: Connection(self), sock=sock, backlog=self.limits.backlog
        )

    def admit(self, sock: socket.socket) -> tuple[Peer | None, CreddError | None]:
        peer = peer_of(sock)
        if peer.uid in self.allowed_uids:
            return peer, None
        self.log_refusal(
            ("uid", peer.uid),
            f"uid {peer.uid}",
            "refused a connection from uid %s (pid %s): not allowed on this socket",
            peer.uid,
            peer.pid,
        )
        return peer, Forbidden(
            f"uid {peer.uid} may not use this credd socket",
            hint="each user runs their own credd daemon",
        )
