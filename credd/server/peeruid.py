"""Which uid owns the other end of a loopback TCP connection (Linux).

Loopback TCP has no ``SO_PEERCRED``, but the kernel knows the owner of the client's socket.
:class:`TcpOwner` asks it with one exact ``sock_diag`` netlink query (what ``ss`` uses; a few
microseconds, however many sockets exist), and falls back to scanning ``/proc/net/tcp`` (which
grows with every socket on the host, TIME_WAIT ones included) when netlink is unavailable.
Used on the event loop thread only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct

logger = logging.getLogger(__name__)

__all__ = ["TcpOwner", "tcp_owner"]

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NO_COOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2 before its sockid
_UID_OFFSET = _HEADER.size + 64  # inet_diag_msg: 4 bytes, sockid (48), expires, rq, wq, uid


def _sockid(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    return (
        struct.pack("!HH", src[1], dst[1])
        + socket.inet_aton(src[0]).ljust(16, b"\0")
        + socket.inet_aton(dst[0]).ljust(16, b"\0")
        + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    )


def _hex_addr(addr: tuple[str, int]) -> str:
    """An IPv4 address as ``/proc/net/tcp`` prints it (host byte order) with its port."""
    (raw,) = struct.unpack("=I", socket.inet_aton(addr[0]))
    return f"{raw:08X}:{addr[1]:04X}"


def tcp_owner(local: tuple[str, int], remote: tuple[str, int], table: str) -> int | None:
    """The uid owning the socket at ``remote`` connected to ``local`` (our end), from the text
    of ``/proc/net/tcp`` (the client's entry has its own address first)."""
    want_local, want_remote = _hex_addr(remote), _hex_addr(local)
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == want_local and fields[2] == want_remote:
            return int(fields[7])
    return None


class TcpOwner:
    """``owner(local, remote) -> uid | None`` for IPv4 TCP connections on this host."""

    def __init__(self, proc_tcp: str = "/proc/net/tcp", *, netlink: bool = True) -> None:
        self.proc_tcp = proc_tcp
        self._nl: socket.socket | None = None
        self._seq = 0
        self.use_netlink = netlink

    @property
    def available(self) -> bool:
        return self.use_netlink or os.path.exists(self.proc_tcp)

    def owner(self, local: tuple[str, int], remote: tuple[str, int]) -> int | None:
        if self.use_netlink:
            try:
                return self._ask_kernel(local, remote)
            except OSError as exc:
                logger.warning(
                    "sock_diag lookup failed (%s); reading %s instead", exc, self.proc_tcp
                )
                self.use_netlink = False
                self.close()
        try:
            with open(self.proc_tcp, encoding="ascii") as f:
                table = f.read()
        except OSError:
            return None
        return tcp_owner(local, remote, table)

    def _ask_kernel(self, local: tuple[str, int], remote: tuple[str, int]) -> int | None:
        if self._nl is None:
            self._nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
            self._nl.settimeout(1.0)
        self._seq += 1
        body = _REQUEST.pack(socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
        body += _sockid(remote, local)  # the client's socket: its source is our peer
        head = _HEADER.pack(
            _HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, self._seq, 0
        )
        self._nl.send(head + body)
        while True:
            data = self._nl.recv(65536)
            _length, kind, _flags, seq, _pid = _HEADER.unpack_from(data)
            if seq != self._seq:
                continue  # a late answer to an earlier query
            if kind == _NLMSG_ERROR or len(data) < _UID_OFFSET + 4:
                return None  # no such socket (it is gone already)
            (uid,) = struct.unpack_from("=I", data, _UID_OFFSET)
            return int(uid)

    def close(self) -> None:
        if self._nl is not None:
            with contextlib.suppress(OSError):
                self._nl.close()
            self._nl = None
