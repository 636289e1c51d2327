"""The unix-socket server against real clients on a real socket (server in a thread)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest

from credd.client import Client
from credd.errors import ConfigError
from credd.server.unix import Limits, UnixServer
from credd.testing.memory import MemoryBackend
from tests.fixtures.transport import (
    SECRET,
    ServerFactory,
    exchange,
    http_request,
    raw_connect,
    read_response,
    recv_until_closed,
)

ROOT = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_socket_is_0600_in_a_0700_directory(server: UnixServer) -> None:
    st = os.lstat(server.address)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(server.address.parent).st_mode) == 0o700


def test_every_route_through_the_real_client(server: UnixServer, backend: MemoryBackend) -> None:
    client = Client(server.address)
    assert [p["name"] for p in client.status()["profiles"]] == ["demo", "demo-mfa"]
    assert client.credentials("demo")["SecretAccessKey"] == SECRET
    assert client.push_mfa("demo-mfa", "654321")["profile"]["state"] == "fresh"
    assert client.credentials("demo-mfa")["AccessKeyId"].startswith("ASIAMEMORY")
    assert client.refresh("demo")["profile"]["name"] == "demo"
    assert backend.codes == [("demo-mfa", "654321")]


def test_keep_alive_and_pipelining(server: UnixServer) -> None:
    with raw_connect(server.address) as sock:
        conn = h11.Connection(h11.CLIENT)
        for _ in range(3):
            sock.sendall(
                conn.send(
                    h11.Request(
                        method="GET", target="/v1/credentials/demo", headers=[("host", "credd")]
                    )
                )
            )
            sock.sendall(conn.send(h11.EndOfMessage()))
            assert read_response(sock, conn).status == 200
            conn.start_next_cycle()
        # two requests in one write: two answers, in order
        sock.sendall(http_request("GET", "/v1/credentials/demo") * 2)
        conn2 = h11.Connection(h11.CLIENT)
        for _ in range(2):
            conn2.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            conn2.send(h11.EndOfMessage())
            assert read_response(sock, conn2).status == 200
            conn2.start_next_cycle()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\n\r\n",
    ],  # the last lacks the mandatory Host header
)
def test_garbage_gets_400_and_close_and_others_are_fine(server: UnixServer, garbage: bytes) -> None:
    with raw_connect(server.address) as sock:
        sock.sendall(garbage)
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b'"code":"bad_request"' in data
    assert Client(server.address).credentials("demo")["AccessKeyId"]


def test_oversized_requests_get_413(serve: ServerFactory) -> None:
    server = serve(limits=Limits(max_request_bytes=4096))
    big_body = b"{" + b" " * 5000 + b"}"
    for request in (
        http_request("POST", "/v1/profiles/demo-mfa/mfa", big_body),
        b"GET /v1/status HTTP/1.1\r\nHost: credd\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n",
    ):
        with raw_connect(server.address) as sock:
            sock.sendall(request)
            data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 413 "), data[:40]
        assert b"request_too_large" in data
    # a chunked body that grows past the limit without announcing its size
    with raw_connect(server.address) as sock:
        sock.sendall(
            b"POST /v1/profiles/demo/refresh HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + b"800\r\n"
            + b"x" * 2048
            + b"\r\n"
            + b"800\r\n"
            + b"x" * 2048
            + b"\r\n"
            + b"800\r\n"
            + b"x" * 2048
            + b"\r\n"
        )
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 413 ")


def test_stalled_client_does_not_block_others(serve: ServerFactory) -> None:
    server = serve(limits=Limits(header_timeout=0.5))
    stalled = raw_connect(server.address)
    stalled.sendall(b"GET /v1/credentials/demo HTTP/1.1\r\nHost: cre")  # ... and waits
    client = Client(server.address)
    for _ in range(20):  # answered while the stalled request is still open
        assert client.credentials("demo")["AccessKeyId"] == "ASIAFAKE0000000DEMO1"
    silent = raw_connect(server.address)  # connects and never sends a byte
    data = recv_until_closed(stalled)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"request_timeout" in data
    assert recv_until_closed(silent).startswith(b"HTTP/1.1 408 ")
    stalled.close()
    silent.close()


def test_idle_keep_alive_connection_is_closed_quietly(serve: ServerFactory) -> None:
    server = serve(limits=Limits(idle_timeout=0.2))
    with raw_connect(server.address) as sock:
        sock.sendall(http_request("GET", "/v1/status"))
        assert read_response(sock).status == 200
        assert recv_until_closed(sock) == b""


def test_200_concurrent_connections(server: UnixServer) -> None:
    socks = [raw_connect(server.address) for _ in range(200)]
    try:
        for sock in socks:
            sock.sendall(http_request("GET", "/v1/credentials/demo"))
        statuses = [read_response(sock).status for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert statuses == [200] * 200


def test_connections_beyond_the_limit_get_a_quick_503(serve: ServerFactory) -> None:
    server = serve(limits=Limits(max_connections=2))
    held = [raw_connect(server.address) for _ in range(2)]
    for sock in held:  # both accepted and alive
        sock.sendall(http_request("GET", "/v1/status"))
        assert read_response(sock).status == 200
    with raw_connect(server.address) as extra:
        data = recv_until_closed(extra)
    assert data.startswith(b"HTTP/1.1 503 ")
    for sock in held:
        sock.close()


def test_client_disconnecting_mid_request_hurts_nobody(
    server: UnixServer, backend: MemoryBackend
) -> None:
    with raw_connect(server.address) as sock:
        sock.sendall(
            b'POST /v1/profiles/demo-mfa/mfa HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"co'
        )
    backend.gate = threading.Event()
    with raw_connect(server.address) as sock:  # leaves while its handler is running
        sock.sendall(http_request("GET", "/v1/credentials/demo"))
        while ("credentials", "demo") not in backend.calls:
            threading.Event().wait(0.01)
    backend.gate.set()
    backend.gate = None
    assert Client(server.address).credentials("demo")["AccessKeyId"]
    assert backend.codes == []


def test_slow_handler_gets_503_at_the_deadline(
    serve: ServerFactory, backend: MemoryBackend
) -> None:
    server = serve(limits=Limits(handler_deadline=0.2))
    backend.gate = threading.Event()
    resp = exchange(server.address, http_request("GET", "/v1/credentials/demo"))
    backend.gate.set()
    assert (resp.status, resp.code) == (503, "not_ready")


def test_stale_socket_is_replaced(tmp_path: Path, serve: ServerFactory) -> None:
    path = tmp_path / "run" / "credd" / "credd.sock"
    path.parent.mkdir(mode=0o700, parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    server = serve(path)
    assert Client(server.address).status()["version"] == 1


def test_second_server_on_a_live_socket_is_refused(
    tmp_path: Path, server: UnixServer, serve: ServerFactory
) -> None:
    with pytest.raises(ConfigError, match="another credd is already listening on"):
        serve(server.address)
    assert Client(server.address).status()["version"] == 1  # the first one is untouched
    # a live listener that is not credd (no lock file) is refused too
    other = tmp_path / "other" / "x.sock"
    other.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(other))
        live.listen(1)
        with pytest.raises(ConfigError, match="another credd is already listening on"):
            serve(other)


def test_a_file_in_the_way_is_refused(tmp_path: Path, serve: ServerFactory) -> None:
    path = tmp_path / "run" / "credd" / "credd.sock"
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_text("keep me")
    with pytest.raises(ConfigError, match="is not a socket"):
        serve(path)
    assert path.read_text() == "keep me"


def test_stop_is_clean_with_connections_open(
    tmp_path: Path, backend: MemoryBackend, serve: ServerFactory
) -> None:
    server = serve()
    idle = raw_connect(server.address)
    idle.sendall(http_request("GET", "/v1/status"))
    assert read_response(idle).status == 200
    partial = raw_connect(server.address)
    partial.sendall(b"GET /v1/sta")
    backend.gate = threading.Event()
    busy = raw_connect(server.address)
    busy.sendall(http_request("GET", "/v1/credentials/demo"))
    while ("credentials", "demo") not in backend.calls:
        threading.Event().wait(0.01)
    stopper = threading.Thread(target=server.stop, args=(10.0,))
    stopper.start()
    assert recv_until_closed(idle) == b""  # idle connections close at once
    assert recv_until_closed(partial) == b""
    backend.gate.set()  # the in-flight request finishes and is answered
    resp = read_response(busy)
    stopper.join(15)
    assert not stopper.is_alive()
    assert resp.status == 200 and resp.headers.get("connection") == "close"
    assert not server.address.exists()
    for sock in (idle, partial, busy):
        sock.close()
    again = serve(server.address)  # lock released, path free
    assert Client(again.address).status()["version"] == 1


def _client_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from credd.client import Client\n"
        "from credd.errors import CreddError\n"
        "try:\n"
        f"    Client({str(path)!r}).status()\n"
        "    print('ok')\n"
        "except CreddError as exc:\n"
        "    print(exc.code, '|', exc.message)\n"
    )
    return subprocess.run(
        [*NOBODY, sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60
    )


needs_root = pytest.mark.skipif(
    os.getuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)


@needs_root
def test_other_uid_is_refused_by_the_filesystem(server: UnixServer) -> None:
    proc = _client_as_nobody(server.address)
    assert proc.stdout.startswith("daemon_unavailable | permission denied"), proc.stderr


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A world-accessible directory (outside pytest's 0700 temp root)."""
    path = Path(tempfile.mkdtemp(prefix="credd-open-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_root
def test_other_uid_is_refused_by_the_peer_check(
    open_dir: Path, serve: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # A test-only socket anyone may connect to, handed over as listen_fd (as systemd would).
    path = open_dir / "open.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o666)
    sock.listen(8)
    server = serve(path, listen_fd=sock.detach())
    with caplog.at_level(logging.WARNING, logger="credd.server"):
        proc = _client_as_nobody(path)
    assert proc.stdout.startswith("forbidden | uid 65534 may not use"), proc.stderr
    assert "refused a connection from uid 65534" in caplog.text
    assert Client(path).status()["version"] == 1  # root (the owner) is served
    server.stop(2.0)
    assert path.exists()  # an adopted socket is not ours to remove


def test_uids_not_allowed_get_403(serve: ServerFactory) -> None:
    server = serve(allowed_uids=frozenset({os.getuid() + 12345}))
    resp = exchange(server.address, http_request("GET", "/v1/credentials/demo"))
    assert (resp.status, resp.code) == (403, "forbidden")
    assert SECRET.encode() not in resp.body


def recv_all_strict(sock: socket.socket) -> bytes:
    """Everything until the server closes; a reset fails the test (unlike recv_until_closed)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_head_gets_the_headers_and_no_body(server: UnixServer) -> None:
    """Found by the request fuzz: h11 refuses a body after HEAD, and credd closed unanswered."""
    with raw_connect(server.address) as sock:
        sock.sendall(http_request("HEAD", "/v1/status") + http_request("GET", "/v1/status"))
        sock.shutdown(socket.SHUT_WR)
        data = recv_all_strict(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ") and b"content-length: " in head
    assert rest.startswith(b"HTTP/1.1 200 ")  # no body in between: the next answer follows
    with raw_connect(server.address) as sock:  # refused for its version: still an answer
        sock.sendall(b"HEAD /v1/status HTTP/0.9\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert recv_all_strict(sock).startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("refused", [True, False])
def test_error_answers_end_in_a_clean_close_not_a_reset(
    serve: ServerFactory, refused: bool
) -> None:
    """A peer still sending after the answer (a refused client sending its request, a body
    refused for its size) used to hit a closed socket: EPIPE or a reset instead of the answer.
    Now the server half-closes and reads what follows (a lingering close)."""
    if refused:
        server = serve(allowed_uids=frozenset({os.getuid() + 12345}))
        first, then = b"", http_request("GET", "/v1/credentials/demo")
    else:
        server = serve()
        first = (
            b"POST /v1/profiles/demo/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        )
        then = b"x" * 30_000
    with raw_connect(server.address) as sock:
        sock.sendall(first)
        resp = read_response(sock)  # the answer arrives before the rest is sent
        assert (resp.status, resp.code) == (
            (403, "forbidden") if refused else (413, "request_too_large")
        )
        sock.sendall(then)  # the server still reads: no EPIPE
        assert recv_all_strict(sock) == b""  # then a clean end, no reset
    assert server.connection_counts()[0] == 0
