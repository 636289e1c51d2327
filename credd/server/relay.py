"""``credd relay``: the daemon's loopback endpoints, reachable inside a container's network.

A container (Docker, Podman, a bare ``ip netns``) has its own network namespace: its
``127.0.0.1`` is not the host's, and SDKs accept a container-credentials host only on loopback
(or 169.254.170.2). The relay listens on ``127.0.0.1:PORT`` *inside* the container's namespace
and carries each connection, byte for byte, to ``127.0.0.1:PORT`` on the host, where the daemon's
container (or IMDS) endpoint runs. Nothing is bound to a bridge address, nothing is reachable from
the network, and no key is copied into the container:

* the listening socket is made inside the target namespace (``setns``, bind, ``setns`` back), and
  every connection to the daemon is made from the host's namespace by the relay's own process, so
  the daemon's peer-uid check sees the relay's uid: run it as the daemon's user;
* the container still needs the endpoint token (``AWS_CONTAINER_AUTHORIZATION_TOKEN``) for the
  container endpoint; IMDS needs none (its PUT token is obtained through the relay), so anything
  in the container's namespace can read credentials: relay into containers you trust;
* the ``Host`` the container sends is ``127.0.0.1:PORT``, the same port as the host's, so the
  endpoints' Host check passes unchanged.

See docs/containers.md. Linux only; entering a namespace needs the right to (root, or the user
namespace that owns it: rootless Podman).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import threading
from collections.abc import Iterator

from credd.errors import ConfigError

__all__ = ["listen_in_netns", "netns_path", "serve"]

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
#: Connections carried at once (two threads each); more wait in the backlog (docs/containers.md).
MAX_CONNECTIONS = 64
NETNS_DIR = "/run/netns"


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise ConfigError(
            f"cannot enter the network namespace: {os.strerror(err)}",
            hint="run as root, or inside the user namespace that owns it (podman unshare)",
        )


def netns_path(name: str) -> str:
    """``ip netns`` names live in /run/netns; a path (``/proc/PID/ns/net``) is used as it is."""
    return name if "/" in name else os.path.join(NETNS_DIR, name)


@contextlib.contextmanager
def _inside(path: str) -> Iterator[None]:
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(home)
        raise ConfigError(f"cannot open the network namespace {path}: {exc.strerror}") from None
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def listen_in_netns(path: str, port: int) -> socket.socket:
    """A listening socket on ``127.0.0.1:port`` inside the namespace at ``path``."""
    with _inside(path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot listen on 127.0.0.1:{port} in {path}: {exc.strerror or exc}",
                hint="is the namespace's loopback up (ip link set lo up)? is the port free there?",
            ) from None
    return sock


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _carry(client: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    name = threading.current_thread().name + "-back"
    back = threading.Thread(target=_pipe, args=(upstream, client), name=name, daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join(120)
    client.close()
    upstream.close()


def serve(
    listeners: dict[int, socket.socket],
    stop: threading.Event | None = None,
    *,
    max_connections: int | None = None,
) -> None:
    """Accept on every listener (host port -> socket) and carry connections to the host's port.

    At most ``max_connections`` (default :data:`MAX_CONNECTIONS`, all listeners together) are
    carried at once, two threads each; while all are busy the relay accepts nothing more, so
    new connections wait in the listening socket's backlog (64) and are carried in turn as
    earlier ones end, and beyond the backlog the kernel makes clients wait or refuses them."""
    stop = stop or threading.Event()
    bound = max_connections or MAX_CONNECTIONS
    slots = threading.BoundedSemaphore(bound)
    full = threading.Event()  # logged once per busy spell

    def carry(client: socket.socket, port: int) -> None:
        try:
            _carry(client, port)
        finally:
            slots.release()

    def take_slot() -> bool:
        if slots.acquire(blocking=False):
            full.clear()
            return True
        if not full.is_set():
            full.set()
            log.warning("relay: %d connections are being carried; new ones wait", bound)
        return slots.acquire(timeout=0.5)

    def accept_loop(port: int, sock: socket.socket) -> None:
        sock.settimeout(0.5)
        while not stop.is_set():
            if not take_slot():
                continue
            try:
                client, _ = sock.accept()
            except TimeoutError:
                slots.release()
                continue
            except OSError:
                slots.release()
                return
            client.settimeout(None)
            worker = threading.Thread(
                target=carry, args=(client, port), name=f"credd-relay-conn-{port}", daemon=True
            )
            try:
                worker.start()
            except RuntimeError:  # no thread to be had: refuse this one, go on
                client.close()
                slots.release()

    threads = [
        threading.Thread(target=accept_loop, args=item, daemon=True) for item in listeners.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
