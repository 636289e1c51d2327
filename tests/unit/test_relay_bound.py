"""``credd relay`` carries at most a bounded number of connections at once: a flood of
connections waits in the listen backlog instead of starting two threads each without limit,
and the waiting ones are carried as soon as earlier ones end. Host loopback only (the relay's
accept loop and carrying do not depend on the namespace the listener was made in)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from credd.server import relay
from credd.server.relay import serve

BOUND = 4
FLOOD = 24


def relay_threads() -> int:
    """Threads carrying connections (two per connection), named by the relay."""
    return sum(1 for t in threading.enumerate() if t.name.startswith("credd-relay-conn"))


def accept_some(upstream: socket.socket, most: int, timeout: float) -> list[socket.socket]:
    """Connections the relay made to the upstream port: up to ``most``, waiting ``timeout``
    for each."""
    upstream.settimeout(timeout)
    got: list[socket.socket] = []
    while len(got) < most:
        try:
            conn, _ = upstream.accept()
        except TimeoutError:
            break
        got.append(conn)
    return got


@pytest.fixture
def upstream() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=FLOOD * 2)
    yield sock
    sock.close()


def test_a_flood_of_connections_does_not_grow_threads_without_limit(
    upstream: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay, "MAX_CONNECTIONS", BOUND, raising=False)
    port = upstream.getsockname()[1]
    listener = socket.create_server(("127.0.0.1", 0), backlog=FLOOD * 2)
    stop = threading.Event()
    server = threading.Thread(target=serve, args=({port: listener}, stop))
    before = threading.active_count()
    server.start()
    clients: list[socket.socket] = []
    carried: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            clients.append(socket.create_connection(listener.getsockname(), timeout=10))
        carried = accept_some(upstream, FLOOD, timeout=2.0)
        assert len(carried) == BOUND  # the rest wait, their threads not started
        assert relay_threads() <= 2 * BOUND
        assert threading.active_count() - before <= 2 * BOUND + 2  # + serve's accept loop
        for c in carried:  # the first connections end on both sides: their slots free up
            c.close()
        for c in clients[:BOUND]:
            c.close()
        more = accept_some(upstream, BOUND, timeout=10.0)
        carried += more
        assert len(more) == BOUND  # waiting ones are carried now, in turn
        more[0].sendall(b"ping")  # and bytes flow through them
        import select

        readable = select.select(clients[BOUND:], [], [], 5.0)[0]
        assert len(readable) == 1 and readable[0].recv(4) == b"ping"
        assert relay_threads() <= 2 * BOUND
    finally:
        stop.set()
        for s in clients + carried:
            s.close()
        server.join(10)
        listener.close()
    assert not server.is_alive()
