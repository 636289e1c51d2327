"""One client connection of a credd HTTP server: h11 state, limits, timers, hand-off.

See :mod:`credd.server.unix` for the rules each connection follows; the server decides whom to
admit (:meth:`~credd.server.base.HttpServer.admit`) and how errors look on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Future
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import h11

from credd.errors import (
    CreddError,
    NotReady,
    RequestError,
    RequestTimeout,
    RequestTooLarge,
)
from credd.server.http import Peer, Request, Response

if TYPE_CHECKING:
    from credd.server.base import HttpServer

logger = logging.getLogger(__name__)


class Connection(asyncio.Protocol):
    """One client connection: h11 state, timers, and at most one request in flight."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=server.limits.max_request_bytes
        )
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.busy = False
        self.closed = False
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.cycle_bytes = 0
        self.timer: asyncio.TimerHandle | None = None
        self.pending: Future[Response] | None = None
        self.current: Request | None = None
        self.write_paused = False  # the peer does not read: the transport's buffer is full
        self.stalled = False  # an answer is written; the next one waits for the peer to read
        self.discarded = 0  # bytes dropped while lingering
        self.peer_eof = False  # the peer will send nothing more

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        try:
            self.peer, refusal = self.server.admit(transport.get_extra_info("socket"))
        except OSError:  # the peer is gone already (it reset the connection)
            self.server.log_refusal(
                "unidentified",
                "peers that could not be identified",
                "closing a connection whose peer could not be identified",
            )
            self.abort()
            return
        if refusal is not None:
            self.fail(refusal)
            return
        if self.server.stopping or len(self.server.connections) > self.limits.max_connections:
            self.server.log_refusal(
                "busy",
                "connections over the limit",
                "refused a connection from pid %s: more than %d connections",
                self.peer.pid if self.peer else "?",
                self.limits.max_connections,
            )
            self.fail(NotReady("credd has too many open connections", hint="try again shortly"))
            return
        self.arm(self.limits.header_timeout, self.on_header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.closed:  # lingering: drop it, up to a bound
            self.discarded += len(data)
            if self.discarded > self.limits.max_request_bytes:
                self.abort()
            return
        if self.cycle_bytes == 0 and not self.busy:
            self.arm(self.limits.header_timeout, self.on_header_timeout)
        self.cycle_bytes += len(data)
        self.h11.receive_data(data)
        if not self.busy:
            self.process()

    def eof_received(self) -> bool:
        self.peer_eof = True
        if self.closed:
            return False  # lingering, and the peer is done: close now
        self.h11.receive_data(b"")
        if not self.busy:
            self.process()
        return True  # keep the write side open: a response may still be due

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.cancel_timer()
        self.server.forget(self)
        self.server.lingering.discard(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.stalled and not self.closed:
            self.stalled = False
            self.next_cycle()

    # -- reading ----------------------------------------------------------------------------

    def process(self) -> None:
        limit = self.limits.max_request_bytes
        while not self.closed and not self.busy:
            if self.cycle_bytes > limit:
                self.fail(_too_large(limit))
                return
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                if exc.error_status_hint == 431:
                    self.fail(_too_large(limit))
                else:
                    self.fail(
                        RequestError(
                            "the request is not valid HTTP/1.1", hint=self.server.client_hint
                        )
                    )
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.request = event  # before any answer: a HEAD request's has no body
                if event.http_version not in (b"1.1", b"1.0"):
                    self.fail(
                        RequestError("only HTTP/1.1 is spoken here", hint=self.server.client_hint)
                    )
                    return
                self.body.clear()
                length = _content_length(event)
                if length is not None and length > limit:
                    self.fail(_too_large(limit))
                    return
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.dispatch()
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def dispatch(self) -> None:
        """Hand the complete request to the handler pool; reading pauses until it answers.

        Plain executor futures and loop callbacks (not a task per request plus ``wait_for``)
        keep the per-request overhead low; the deadline is a timer on the connection.
        """
        assert self.request is not None and self.transport is not None
        event = self.request
        request = Request(
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("ascii", "replace"),
            headers=tuple(
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers
            ),
            body=bytes(self.body),
            peer=self.peer,
        )
        self.busy = True
        self.transport.pause_reading()
        self.current = request
        loop = asyncio.get_running_loop()
        quick = self.server.api.handle_nowait(request)
        if quick is not None:
            loop.call_soon(self.answer, quick)  # not inline: pipelined requests must not recurse
            return
        assert self.server.executor is not None
        try:
            future = self.server.executor.submit(self.server.api.handle, request)
        except RuntimeError:  # the pool is shutting down
            self.answer(
                self.server.error_response(NotReady("credd is stopping", hint="try again shortly"))
            )
            return
        self.pending = future
        self.arm(self.limits.handler_deadline, self.on_deadline)

        def done(fut: Future[Response]) -> None:  # runs in a pool thread
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self.on_done, fut)

        future.add_done_callback(done)

    def on_done(self, future: Future[Response]) -> None:
        if self.pending is not future:
            return  # the deadline already answered
        self.pending = None
        self.cancel_timer()
        if future.cancelled() or future.exception() is not None:
            # Api.handle never raises; this is the pool failing underneath it.
            response = self.server.error_response(
                NotReady("credd is stopping", hint="try again shortly")
            )
        else:
            response = future.result()
        self.answer(response)

    def on_deadline(self) -> None:
        self.timer = None
        if self.pending is None:
            return
        self.pending.cancel()
        self.pending = None
        logger.warning(
            "%s %s took longer than %.1f s; answered 503",
            self.current.method if self.current else "?",
            self.current.path if self.current else "?",
            self.limits.handler_deadline,
        )
        self.answer(
            self.server.error_response(
                NotReady("credd did not answer in time", hint="try again; see credd status")
            )
        )

    def answer(self, response: Response) -> None:
        """Write the response, then get ready for the next request on this connection."""
        request = self.current
        self.current = None
        if request is not None and logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s (pid %s uid %s)",
                request.method,
                request.path,
                response.status,
                self.peer.pid if self.peer else "?",
                self.peer.uid if self.peer else "?",
            )
        if self.closed:
            return  # the client went away; nothing to answer
        if not self.send(response, close=self.server.stopping):
            return
        try:
            self.h11.start_next_cycle()
        except h11.LocalProtocolError:
            self.close()
            return
        if self.write_paused:  # the peer does not read what it asked for: ask it to first
            self.stalled = True
            self.arm(self.limits.idle_timeout, self.abort)
            return
        self.next_cycle()

    def next_cycle(self) -> None:
        """Read (and answer) the next request on this connection, if there is one."""
        self.busy = False
        self.request = None
        self.cycle_bytes = len(self.h11.trailing_data[0])
        assert self.transport is not None
        self.transport.resume_reading()
        if self.cycle_bytes:
            self.arm(self.limits.header_timeout, self.on_header_timeout)
        else:
            self.arm(self.limits.idle_timeout, self.close)
        self.process()

    # -- writing ----------------------------------------------------------------------------

    def send(self, response: Response, *, close: bool = False) -> bool:
        """Write ``response``; ``True`` when the connection stays open for another request."""
        if self.closed or self.transport is None:
            return False
        headers: list[tuple[str, str]] = [
            *response.headers,
            ("content-length", str(len(response.body))),
        ]
        if close:
            headers.append(("connection", "close"))
        try:
            data = self.h11.send(
                h11.Response(
                    status_code=response.status,
                    headers=headers,
                    reason=_reason(response.status),
                )
            )
            if self.request is None or self.request.method != b"HEAD":  # HEAD: headers only
                data = (data or b"") + (self.h11.send(h11.Data(data=response.body)) or b"")
            data += self.h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            self.close()
            return False
        self.transport.write(data)
        if close or self.h11.our_state is h11.MUST_CLOSE:
            self.close()
            return False
        return True

    def fail(self, err: CreddError) -> None:
        """Answer with ``err`` (if HTTP still allows an answer) and close."""
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.send(self.server.error_response(err), close=True)
        self.close()

    def close(self) -> None:
        """Stop serving this connection, politely ("lingering close").

        What is written goes out, then a FIN; what the peer still sends (the request a refused
        client sent after we answered it, a body we refused to read) is read and dropped for
        up to ``linger_timeout``, ``max_request_bytes`` at most. Closing a socket with unread
        data makes the kernel send a reset, which can destroy the answer before the peer reads
        it. A lingering connection leaves ``server.connections`` at once (it takes no slot from
        anyone); over ``max_lingering`` of them, a connection is closed without lingering. A
        peer that reads nothing cannot hold the socket: the timer aborts it.
        """
        if self.closed or self.transport is None:
            return
        self.closed = True
        self.server.forget(self)
        transport = self.transport
        if self.peer_eof:  # nothing more will come: nothing to linger for
            transport.close()
        elif len(self.server.lingering) < self.limits.max_lingering and transport.can_write_eof():
            self.server.lingering.add(self)
            transport.write_eof()
            transport.resume_reading()
        else:
            transport.close()
        self.arm(self.limits.linger_timeout, self.abort)

    def abort(self) -> None:
        self.cancel_timer()
        self.closed = True
        self.server.forget(self)
        if self.transport is not None:
            self.transport.abort()

    # -- timers -----------------------------------------------------------------------------

    def arm(self, delay: float, callback: Any) -> None:
        self.cancel_timer()
        self.timer = asyncio.get_running_loop().call_later(delay, callback)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def on_header_timeout(self) -> None:
        self.timer = None
        if self.busy or self.closed:
            return
        logger.info(
            "closing a connection from pid %s: no complete request within %.1f s",
            self.peer.pid if self.peer else "?",
            self.limits.header_timeout,
        )
        self.fail(
            RequestTimeout(
                "the request did not arrive in time", hint="send the whole request at once"
            )
        )


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"the request is larger than {limit} bytes", hint="send a smaller request"
    )


def _content_length(event: h11.Request) -> int | None:
    for name, value in event.headers:
        if name == b"content-length":
            return int(value)
    return None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
