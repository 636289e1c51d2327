"""What every loopback TCP endpoint of credd shares: the bind, the peer-uid check, the header rules.

Both the container-credentials endpoint (:mod:`credd.server.container`) and the IMDS endpoint
(:mod:`credd.server.imds`) are a :class:`LoopbackServer`:

* it binds an IPv4 loopback address only (``127.0.0.1`` by default), nothing else, ever;
* each connection's owner is asked of the kernel (:mod:`credd.server.peeruid`; loopback TCP has
  no ``SO_PEERCRED``): only the daemon's own uid is served;
* :func:`header_refusal` refuses proxy (``Forwarded``, ``Via``, ``X-Forwarded-*``,
  ``X-Real-IP``) and browser (``Origin``, ``Sec-Fetch-*``) headers, and :func:`host_matches`
  requires a ``Host`` naming this endpoint (a DNS-rebinding defence).

What differs (paths, the token story, the shape of errors) stays in each endpoint's handler.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Protocol

from credd.errors import ConfigError, CreddError, Forbidden
from credd.server.base import Handler, HttpServer
from credd.server.http import Peer, Request
from credd.server.limits import Limits
from credd.server.peeruid import TcpOwner

logger = logging.getLogger(__name__)

__all__ = [
    "HOST",
    "LoopbackHandler",
    "LoopbackServer",
    "PortInUse",
    "header_refusal",
    "host_matches",
]

HOST = "127.0.0.1"
_PROXY_HEADERS = frozenset({"forwarded", "via", "x-real-ip"})
_BROWSER_HEADERS = frozenset({"origin"})


class PortInUse(ConfigError):
    """The endpoint's port is already taken by another program (or another user's credd)."""

    code = "port_in_use"


class LoopbackHandler(Handler, Protocol):
    """A handler that learns the port it is served on (part of its ``Host`` check)."""

    port: int


def header_refusal(request: Request) -> str | None:
    """Why the request's headers are refused (proxied, or from a browser), or ``None``."""
    for name, _ in request.headers:
        if name in _PROXY_HEADERS or name.startswith("x-forwarded-"):
            return "proxy"
        if name in _BROWSER_HEADERS or name.startswith("sec-fetch-"):
            return "browser"
    return None


def host_matches(request: Request, port: int, hosts: tuple[str, ...] = (HOST, "localhost")) -> bool:
    """Exactly one ``Host`` header, naming one of ``hosts`` with this ``port``."""
    sent = [value for name, value in request.headers if name == "host"]
    wanted = {f"{host}:{port}" for host in hosts}
    return len(sent) == 1 and sent[0].strip().lower() in wanted


class LoopbackServer(HttpServer):
    """Serves ``api`` on ``host:port`` (``0``: any free port) of the IPv4 loopback, to the
    daemon's own uid only."""

    thread_name = "credd-loopback"
    #: said when the port is taken: how to choose another one
    port_hint = "choose another port (0 = any free port)"

    def __init__(
        self,
        api: LoopbackHandler,
        *,
        port: int,
        host: str = HOST,
        limits: Limits,
        uid: int | None = None,
        owners: TcpOwner | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(api, limits=limits, monotonic=monotonic)
        self.handler = api
        self.host = host
        self.port = port
        self.uid = os.getuid() if uid is None else uid
        self.owners = owners or TcpOwner()

    def describe(self) -> str:
        return f"http://{self.host}:{self.port}"

    def check_host(self) -> None:
        """Refuse anything but an IPv4 loopback address (subclasses may widen it)."""
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            ip = None
        if ip is None or ip.version != 4 or not ip.is_loopback:
            raise ConfigError(
                f"the endpoint binds only to an IPv4 loopback address, not {self.host!r}",
                hint="use 127.0.0.1",
            )

    def open(self) -> tuple[socket.socket, Callable[[], None]]:
        self.check_host()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # lets a restarted daemon rebind while old connections linger in TIME_WAIT; on
            # Linux it never lets two sockets listen on one port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(self.limits.backlog)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {self.port} on {self.host} is already in use", hint=self.port_hint
                ) from None
            raise ConfigError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                hint=self.port_hint,
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.handler.port = self.port
        return sock, self.owners.close

    def admit(self, sock: socket.socket) -> tuple[Peer | None, CreddError | None]:
        remote = sock.getpeername()
        owner = self.owners.owner(sock.getsockname(), remote)
        if owner == self.uid:
            return None, None
        self.log_refusal(  # at most one line per uid per minute, with a count
            ("uid", owner),
            f"uid {owner}" if owner is not None else "peers of unknown uid",
            "refused a connection to %s from port %s: owned by uid %s, not %s",
            self.describe(),
            remote[1],
            owner if owner is not None else "?",
            self.uid,
        )
        return None, Forbidden(
            "this endpoint serves only the programs of the user running the daemon",
            hint="each user runs their own credd daemon",
        )
