"""Hostile neighbours (issue 8 item 10): refused connections get their 403 (not a reset), their
logging is rate-limited per uid, and a flood of them does not starve the owner.

The refused clients really run under another uid (``setpriv``, as root) against a socket anyone
may connect to (handed over as ``listen_fd``, as systemd would) and against the loopback
endpoint. The rate limiter runs on an injected clock that the tests move by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from credd.client import Client
from credd.server.api import Api
from credd.server.container import ContainerApi, LoopbackServer
from credd.server.refusals import OVERFLOW_KEY, RefusalLog
from credd.server.unix import Limits, UnixServer
from credd.testing.clock import FakeClock
from credd.testing.memory import MemoryBackend
from tests.fixtures.transport import (
    SECRET,
    ServerFactory,
    http_request,
    raw_connect,
    read_response,
)

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
FLOOD = 300  # refused connections per transport in the flood tests

needs_root = pytest.mark.skipif(
    os.getuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the rate limiter -----------------------------------------------------------------------


def make_log(caplog: pytest.LogCaptureFixture) -> tuple[RefusalLog, Ticks]:
    caplog.set_level(logging.WARNING, logger="test.refusals")
    ticks = Ticks()
    return RefusalLog(logging.getLogger("test.refusals"), clock=ticks), ticks


def test_one_line_per_uid_per_minute_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    log, ticks = make_log(caplog)
    for i in range(1000):
        log.refused(("uid", 1001), "uid 1001", "refused uid %s pid %s", 1001, i)
        ticks.now += 0.01  # 1,000 refusals in 10 s
    assert [r.getMessage() for r in caplog.records] == [
        "refused uid 1001 pid 0; more from uid 1001 are counted and logged once per 60 s"
    ]
    assert (log.lines, log.suppressed_total, log.pending) == (1, 999, 999)
    log.refused(("uid", 1002), "uid 1002", "refused uid %s", 1002)  # another uid: its own line
    assert log.lines == 2
    ticks.now = 1060.0  # 60 s after the first line: the next refusal logs, with the count
    assert log.refused(("uid", 1001), "uid 1001", "refused uid %s pid %s", 1001, 5000)
    assert caplog.records[-1].getMessage() == (
        "refused uid 1001 pid 5000 (and 999 more from uid 1001 not logged in the 60 s before)"
    )
    assert log.pending == 0


def test_flush_reports_counts_when_the_flood_stops(caplog: pytest.LogCaptureFixture) -> None:
    log, ticks = make_log(caplog)
    for _ in range(3):
        log.refused(7, "uid 7", "refused")
    assert log.flush()  # nothing due yet; the window stays
    assert log.lines == 1
    ticks.now += 60.0
    assert log.flush()  # due: one line with the count, and a new window for a flood that goes on
    assert (
        caplog.records[-1].getMessage()
        == "refused 2 more connection(s) from uid 7 in the last 60 s"
    )
    log.refused(7, "uid 7", "refused")  # within the new window: counted only
    assert log.lines == 2
    ticks.now += 60.0
    assert log.flush()
    assert log.lines == 3
    ticks.now += 60.0
    assert not log.flush()  # a quiet window is forgotten: the next refusal is logged in full
    assert log.refused(7, "uid 7", "refused")
    log.refused(7, "uid 7", "refused")
    log.flush(final=True)  # at stop: every count, due or not
    assert caplog.records[-1].getMessage().startswith("refused 1 more connection(s) from uid 7")
    assert log.pending == 0


def test_tracked_keys_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    log, _ = make_log(caplog)
    log.max_keys = 4
    for uid in range(100):
        log.refused(uid, f"uid {uid}", "refused %s", uid)
    assert log.lines == 5  # 4 uids, then one line for every other peer
    assert OVERFLOW_KEY in caplog.records[-1].getMessage()
    assert log.pending == 95


# -- refused for real, by another uid ---------------------------------------------------------

FLOOD_CLIENT = """
import socket, sys
kind, where, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
request = sys.argv[4].encode()
answers = []
for _ in range(count):
    if kind == "tcp":
        sock = socket.create_connection(("127.0.0.1", int(where)), timeout=30)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(where)
    data = b""
    try:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            data += chunk
        head, body = data.split(b"\\r\\n", 1)[0], data.rsplit(b"\\r\\n", 1)[-1]
        answers.append(head.decode() + " " + body.decode())
    except OSError as exc:
        answers.append(type(exc).__name__ + (" after data" if data else ""))
    sock.close()
print("\\n".join(answers))
"""


def flood_as_nobody(kind: str, where: str, count: int, request: bytes) -> list[str]:
    done = subprocess.run(
        [*NOBODY, sys.executable, "-c", FLOOD_CLIENT, kind, where, str(count), request.decode()],
        capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


@pytest.fixture
def open_socket() -> Iterator[tuple[Path, int]]:
    """A listening socket anyone may connect to, as a file descriptor (socket activation)."""
    where = Path(tempfile.mkdtemp(prefix="credd-open-", dir="/tmp"))
    where.chmod(0o755)
    path = where / "open.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o666)
    sock.listen(512)
    yield path, sock.detach()
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def unix_open(
    open_socket: tuple[Path, int], backend: MemoryBackend, clock: FakeClock, ticks: Ticks
) -> Iterator[UnixServer]:
    path, fd = open_socket
    server = UnixServer(path, Api(backend, clock), listen_fd=fd, monotonic=ticks)
    server.start()
    yield server
    server.stop(2.0)


@pytest.fixture
def loopback(backend: MemoryBackend, ticks: Ticks) -> Iterator[LoopbackServer]:
    server = LoopbackServer(ContainerApi(backend, "t" * 43), port=0, monotonic=ticks)
    server.start()
    yield server
    server.stop(2.0)


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]


@needs_root
def test_a_flood_of_refused_unix_connections_each_gets_its_403_and_one_log_line(
    unix_open: UnixServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="credd.server")
    answers = flood_as_nobody(
        "unix", str(unix_open.address), FLOOD, http_request("GET", "/v1/credentials/demo")
    )
    assert len(answers) == FLOOD
    bad = [a for a in answers if not a.startswith("HTTP/1.1 403 ")]
    assert not bad, bad[:5]  # no resets, no broken pipes: every refused client read its 403
    assert '"code":"forbidden"' in answers[0] and "uid 65534 may not use" in answers[0]
    assert all(SECRET not in a for a in answers)
    assert len(refusal_lines(caplog)) == 1  # the clock did not move: one line for the flood
    assert Client(unix_open.address).credentials("demo")["AccessKeyId"]  # the owner is served
    unix_open.stop(2.0)  # at stop, the count of what was not logged
    lines = refusal_lines(caplog)
    assert lines[1] == f"refused {FLOOD - 1} more connection(s) from uid 65534 in the last 0 s"
    assert len(lines) == 2


@needs_root
def test_a_flood_of_refused_endpoint_connections_each_gets_its_403_and_one_log_line(
    loopback: LoopbackServer, ticks: Ticks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="credd.server")
    request = (
        f"GET /v1/container-credentials/demo HTTP/1.1\r\nHost: 127.0.0.1:{loopback.port}\r\n"
        f"Authorization: {'t' * 43}\r\n\r\n"  # even with the right token
    ).encode()
    answers = flood_as_nobody("tcp", str(loopback.port), FLOOD, request)
    bad = [a for a in answers if not a.startswith("HTTP/1.1 403 ")]
    assert not bad, bad[:5]
    assert '"code":"forbidden"' in answers[0] and "user running the daemon" in answers[0]
    assert len(refusal_lines(caplog)) == 1
    ticks.now += 61  # a minute later: one more line, carrying the count
    answers = flood_as_nobody("tcp", str(loopback.port), 10, request)
    assert all(a.startswith("HTTP/1.1 403 ") for a in answers)
    lines = refusal_lines(caplog)
    assert len(lines) == 2
    assert f"and {FLOOD - 1} more from uid 65534 not logged in the 61 s before" in lines[1]


@needs_root
def test_refused_flood_does_not_starve_the_owner(
    unix_open: UnixServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="credd.server")
    request = http_request("GET", "/v1/credentials/demo").decode()
    flooders = [
        subprocess.Popen(
            [
                *NOBODY,
                sys.executable,
                "-c",
                FLOOD_CLIENT,
                "unix",
                str(unix_open.address),
                str(FLOOD),
                request,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        for _ in range(3)
    ]
    client = Client(unix_open.address)
    served = 0
    while any(p.poll() is None for p in flooders) or served < 50:
        assert client.credentials("demo")["AccessKeyId"] == "ASIAFAKE0000000DEMO1"
        served += 1
    for proc in flooders:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert all(a.startswith("HTTP/1.1 403 ") for a in out.splitlines())
    assert len(refusal_lines(caplog)) == 1
    served, lingering = unix_open.connection_counts()
    assert served == 0 and lingering <= unix_open.limits.max_lingering


def test_refused_peers_that_never_read_or_close_are_let_go(serve: ServerFactory) -> None:
    """A refused peer that sends and never reads nor closes costs a bounded linger, no slot."""
    server = serve(
        allowed_uids=frozenset({os.getuid() + 12345}),
        limits=Limits(linger_timeout=0.2, max_lingering=4, max_connections=8),
    )
    held = []
    for _ in range(20):  # more than max_lingering and max_connections
        sock = raw_connect(server.address)
        sock.sendall(http_request("GET", "/v1/status"))
        held.append(sock)
    for sock in held:  # each got its 403 (read late: it waited in the socket buffer)
        resp = read_response(sock)
        assert (resp.status, resp.code) == (403, "forbidden")
    served, lingering = server.connection_counts()
    assert served == 0 and lingering <= 4
    for sock in held:
        sock.close()


def test_a_pipelining_client_that_never_reads_is_not_buffered_without_bound(
    server: UnixServer,
) -> None:
    sock = raw_connect(server.address)
    request = http_request("GET", "/v1/status")
    stop = threading.Event()

    def pump() -> None:
        try:
            while not stop.is_set():
                sock.sendall(request * 100)
        except OSError:
            pass

    sender = threading.Thread(target=pump)
    sender.start()
    try:
        conns: list[object] = []
        for _ in range(400):  # a bound for the failure case only
            conns = [c for c in list(server.connections) if getattr(c, "stalled", False)]
            if conns:
                break
            stop.wait(0.05)
        assert conns, "the server never stopped answering a peer that does not read"
        (conn,) = conns
        buffered = conn.transport.get_write_buffer_size()  # type: ignore[attr-defined]
        assert buffered < 1024 * 1024
    finally:
        stop.set()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        sender.join(10)
