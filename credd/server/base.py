"""The machinery every credd HTTP transport shares: one asyncio loop thread, a handler pool.

A transport subclasses :class:`HttpServer` and says how to open its listening socket
(:meth:`HttpServer.open`), whom to admit (:meth:`HttpServer.admit`) and how errors look on
the wire (:meth:`HttpServer.error_response`). Each accepted connection is a
:class:`~credd.server.connection.Connection` (h11, limits, timers, hand-off to the pool).

The handler object (``api``) needs two methods: ``handle(request) -> Response`` (may block;
runs in the pool, never raises) and ``handle_nowait(request) -> Response | None`` (runs on the
loop; answers only what cannot block).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from credd.errors import CreddError
from credd.server.connection import Connection
from credd.server.http import Peer, Request, Response
from credd.server.limits import Limits
from credd.server.refusals import RefusalLog

logger = logging.getLogger(__name__)

__all__ = ["Handler", "HttpServer", "Limits"]


class Handler(Protocol):
    def handle(self, request: Request) -> Response: ...

    def handle_nowait(self, request: Request) -> Response | None: ...


class HttpServer(abc.ABC):
    """Serves ``api`` on a listening socket from a background thread."""

    thread_name = "credd-http"
    #: what a client that spoke garbage is told to use instead
    client_hint = "talk to this server with credd's client"

    def __init__(
        self,
        api: Handler,
        *,
        limits: Limits,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.limits = limits
        self.stopping = False
        self.connections: set[Connection] = set()
        #: closed by us, reading what the peer still sends (see ``Connection.close``)
        self.lingering: set[Connection] = set()
        #: refusals are logged once per peer per minute, with a count (issue 8)
        self.refusals = RefusalLog(logging.getLogger(type(self).__module__), clock=monotonic)
        self._flush_timer: asyncio.TimerHandle | None = None
        self.executor: ThreadPoolExecutor | None = None
        self._sock: socket.socket | None = None
        self._cleanup: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopped: asyncio.Event | None = None
        self._drained: asyncio.Event | None = None

    # -- what a transport provides ----------------------------------------------------------

    @abc.abstractmethod
    def open(self) -> tuple[socket.socket, Callable[[], None]]:
        """A listening, non-blocking socket and a function that releases it (after close)."""

    def admit(self, sock: socket.socket) -> tuple[Peer | None, CreddError | None]:
        """Who connected, and the error to refuse them with (``None``: admitted).

        May raise ``OSError`` when the peer cannot be identified (the connection is dropped).
        """
        return None, None

    def error_response(self, err: CreddError) -> Response:
        """How an error raised by the transport itself (408, 413, 503...) is written."""
        return Response.error(err)

    async def create_server(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket
    ) -> asyncio.AbstractServer:
        return await loop.create_server(
            lambda: Connection(self), sock=sock, backlog=self.limits.backlog
        )

    def describe(self) -> str:
        return self.thread_name

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the socket and serve; returns once it is listening."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._sock, self._cleanup = self.open()
        self.executor = ThreadPoolExecutor(
            max_workers=self.limits.handler_threads, thread_name_prefix=self.thread_name
        )
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._finish()
            raise self._startup_error
        logger.info("listening on %s", self.describe())

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
        logger.info("stopped listening on %s", self.describe())

    def log_refusal(self, key: Hashable, label: str, msg: str, *args: object) -> None:
        """Log a refused connection, at most once per ``key`` per minute (event loop only)."""
        if self.refusals.refused(key, label, msg, *args) or self._flush_timer is not None:
            return
        # counted, not logged: make sure the count is reported even if the refusals stop
        self._flush_timer = asyncio.get_running_loop().call_later(
            self.refusals.interval, self._flush_refusals
        )

    def _flush_refusals(self) -> None:
        self._flush_timer = None
        if self.refusals.flush():
            self._flush_timer = asyncio.get_running_loop().call_later(
                self.refusals.interval, self._flush_refusals
            )

    def connection_counts(self, timeout: float = 5.0) -> tuple[int, int]:
        """(connections being served, connections lingering), read on the loop thread (so no
        callback is half-way through), for tests and benchmarks."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return len(self.connections), len(self.lingering)

        async def counts() -> tuple[int, int]:
            return len(self.connections), len(self.lingering)

        return asyncio.run_coroutine_threadsafe(counts(), loop).result(timeout)

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self.stopping and not self.connections and self._drained is not None:
            self._drained.set()

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
        assert self._sock is not None
        try:
            server = await self.create_server(loop, self._sock)
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
        for conn in list(self.lingering):
            conn.abort()  # everything they sent was read: the peer sees a plain close
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.refusals.flush(final=True)
        await asyncio.sleep(0)  # let connection_lost callbacks run
        self._stopped.set()

    def _finish(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
