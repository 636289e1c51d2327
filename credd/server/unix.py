"""HTTP/1.1 on a unix socket: h11 (sans-IO, no parser of our own) on asyncio, in its own thread.

One event loop thread owns every connection; handlers run in a bounded thread pool, because a
backend call may block a few seconds. Each connection:

1. is checked with ``SO_PEERCRED``: a uid not allowed gets a 403 and is closed (and logged);
2. beyond ``max_connections`` gets a quick 503 and is closed;
3. must deliver a whole request (head + body <= ``max_request_bytes``, else 413) within
   ``header_timeout`` of its first byte (or of connecting), else 408 and close;
4. may keep the connection alive between requests for ``idle_timeout``;
5. garbage gets a 400 and a close. One slow or broken client never blocks another: reading is
   non-blocking and a handler holds only its own connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from credd.server.api import Api
from credd.server.connection import Connection, Limits
from credd.server.listener import BoundSocket, adopt_fd, bind_unix

logger = logging.getLogger(__name__)

__all__ = ["Limits", "UnixServer"]


class UnixServer:
    """Serves an :class:`~credd.server.api.Api` on a unix socket from a background thread."""

    def __init__(
        self,
        path: Path,
        api: Api,
        *,
        limits: Limits = Limits(),  # noqa: B008 - frozen, so one shared default is safe
        allowed_uids: frozenset[int] | None = None,
        listen_fd: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.api = api
        self.limits = limits
        self.allowed_uids = frozenset({os.getuid()}) if allowed_uids is None else allowed_uids
        self.listen_fd = listen_fd
        self.stopping = False
        self.connections: set[Connection] = set()
        self.executor: ThreadPoolExecutor | None = None
        self._bound: BoundSocket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopped: asyncio.Event | None = None
        self._drained: asyncio.Event | None = None

    @property
    def address(self) -> Path:
        return self.path

    def start(self) -> None:
        """Bind (or adopt ``listen_fd``) and serve; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        if self.listen_fd is not None:
            self._bound = adopt_fd(self.listen_fd, self.path)
        else:
            self._bound = bind_unix(self.path, backlog=self.limits.backlog)
        self.executor = ThreadPoolExecutor(
            max_workers=self.limits.handler_threads, thread_name_prefix="credd-api"
        )
        self._thread = threading.Thread(target=self._run, name="credd-unix", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._finish()
            raise self._startup_error
        logger.info("listening on %s", self.path)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout``), close the rest."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            self._finish()
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), loop)
        future.result(timeout + 5.0)
        thread.join(timeout + 5.0)
        self._finish()
        logger.info("stopped listening on %s", self.path)

    # -- event loop thread ------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._drained = asyncio.Event()
        assert self._bound is not None
        try:
            server = await loop.create_unix_server(
                lambda: Connection(self), sock=self._bound.sock, backlog=self.limits.backlog
            )
        except BaseException as exc:  # reported to start()'s caller
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stopped.wait()
        server.close()

    async def _shutdown(self, timeout: float) -> None:
        assert self._stopped is not None and self._drained is not None
        self.stopping = True
        for conn in list(self.connections):
            if not conn.busy:
                conn.close()
        if self.connections:
            try:
                await asyncio.wait_for(self._drained.wait(), timeout)
            except asyncio.TimeoutError:
                logger.warning("closing %d connection(s) still busy at stop", len(self.connections))
                for conn in list(self.connections):
                    conn.abort()
        await asyncio.sleep(0)  # let connection_lost callbacks run
        self._stopped.set()

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self.stopping and not self.connections and self._drained is not None:
            self._drained.set()

    def _finish(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self._bound is not None:
            self._bound.sock.close()
            self._bound.cleanup()
