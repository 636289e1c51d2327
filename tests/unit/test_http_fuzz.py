"""Generated hostile requests against the real servers: never a 500, never a reset.

Each case is one connection to the real :class:`UnixServer` or :class:`LoopbackServer` (in this
process, over the in-memory backend) carrying what :class:`~tests.fixtures.httpfuzz.Fuzzer`
generates; the client half-closes and reads until the server closes. Every case must get back
well-formed HTTP/1.1 responses (``Content-Length`` framed, JSON bodies that parse), none with a
status of 500 or more, at least one unless nothing but line breaks was sent (HTTP ignores those),
and never a reset; the daemon logs no ERROR; a good request is served every 25 cases and at
the end. ``make test`` runs 500 cases per server; ``CREDD_SOAK=1`` (``make soak``) 10,000.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from credd.server.api import Api
from credd.server.base import HttpServer
from credd.server.container import ContainerApi, LoopbackServer
from credd.server.endpoint import PATH_PREFIX
from credd.server.unix import UnixServer
from credd.testing.clock import FakeClock
from credd.testing.memory import MemoryBackend
from tests.fixtures.httpfuzz import Fuzzer, Target, parse_responses
from tests.fixtures.transport import demo_credentials

SOAK = os.environ.get("CREDD_SOAK") == "1"
CASES = 10_000 if SOAK else 500  # per server
GOOD_EVERY = 25
TOKEN = "fuzz-endpoint-token-" + "x" * 30


@pytest.fixture
def fuzz_backend() -> MemoryBackend:
    """Fresh profiles only: every 5xx the fuzz sees is the server's fault, not a state."""
    clock = FakeClock(datetime.now(timezone.utc))
    mem = MemoryBackend(clock, socket="fuzz")
    live = replace(demo_credentials(), expiration=clock.now() + timedelta(hours=12))
    mem.add_profile("demo", live)
    mem.add_profile("live", live)
    return mem


Connect = Callable[[], socket.socket]


@pytest.fixture(params=["socket", "endpoint"])
def fuzz_target(
    request: pytest.FixtureRequest, fuzz_backend: MemoryBackend, tmp_path: Path
) -> Iterator[tuple[HttpServer, Target, Connect]]:
    server: HttpServer
    if request.param == "socket":
        path = tmp_path / "run" / "credd.sock"
        server = UnixServer(path, Api(fuzz_backend, fuzz_backend.clock))
        target = Target(
            host="credd",
            paths=("/v1/status", "/v1/credentials/demo", "/v1/metrics"),
            post_paths=("/v1/profiles/demo/mfa", "/v1/profiles/demo/refresh"),
        )

        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(str(path))
            return sock

    else:
        loopback = LoopbackServer(ContainerApi(fuzz_backend, TOKEN), port=0)
        server = loopback
        server.start()
        target = Target(
            host=f"127.0.0.1:{loopback.port}",
            paths=(PATH_PREFIX + "demo", PATH_PREFIX + "live"),
            auth=TOKEN,
        )

        def connect() -> socket.socket:
            return socket.create_connection(("127.0.0.1", loopback.port), timeout=30)

    if not isinstance(server, LoopbackServer):
        server.start()
    yield server, target, connect
    server.stop(2.0)


def exchange(connect: Connect, pieces: list[bytes]) -> bytes:
    """Send the pieces, half-close, read until the server closes; a reset raises."""
    with connect() as sock:
        with contextlib.suppress(BrokenPipeError):  # answered and closed before all was sent
            for piece in pieces:
                sock.sendall(piece)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def good_request(connect: Connect, target: Target) -> int:
    auth = f"Authorization: {target.auth}\r\n" if target.auth else ""
    data = exchange(
        connect,
        [f"GET {target.paths[-1]} HTTP/1.1\r\nHost: {target.host}\r\n{auth}\r\n".encode()],
    )
    return parse_responses(data)[0].status


def shown(pieces: list[bytes], secret: str) -> str:
    text = repr(b"".join(pieces).replace(secret.encode(), b"<token>"))
    return text if len(text) < 300 else text[:300] + "..."


def pieces_sent(pieces: list[bytes]) -> bytes:
    return b"".join(pieces)


def check_case(pieces: list[bytes], data: bytes) -> str | None:
    """What is wrong with this answer, or ``None``."""
    try:
        replies = parse_responses(data, head=b"HEAD " in pieces_sent(pieces))
    except (AssertionError, ValueError) as exc:
        return f"malformed answer ({exc}): {data[:120]!r}"
    sent = pieces_sent(pieces)
    if not replies and sent.strip(b"\r\n"):
        return "no answer"
    bad = [r.status for r in replies if r.status >= 500]
    return f"status {bad}" if bad else None


@pytest.mark.soak
@pytest.mark.timeout(1800 if SOAK else 120)
def test_generated_requests_never_get_a_500(
    fuzz_target: tuple[HttpServer, Target, Connect], caplog: pytest.LogCaptureFixture
) -> None:
    _server, target, connect = fuzz_target
    caplog.set_level(logging.ERROR)
    fuzzer = Fuzzer(seed=8 + len(target.paths), target=target)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for case in range(CASES):
        pieces = fuzzer.case()
        try:
            data = exchange(connect, pieces)
        except OSError as exc:  # a reset: the answer may be lost
            problem: str | None = f"{type(exc).__name__}"
            data = b""
        else:
            problem = check_case(pieces, data)
        if problem is None:
            for reply in parse_responses(data, head=b"HEAD " in pieces_sent(pieces)):
                statuses[reply.status] = statuses.get(reply.status, 0) + 1
        elif len(failures) < 10:
            failures.append(f"case {case}: {problem}; sent {shown(pieces, TOKEN)}")
        if case % GOOD_EVERY == GOOD_EVERY - 1:
            assert good_request(connect, target) == 200, f"not served after case {case}"
    assert not failures, "\n".join(failures)
    assert good_request(connect, target) == 200
    errors = [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[:5]
    assert 200 in statuses and 400 in statuses  # the generator reaches both ends
    print(f"{CASES} cases, statuses {sorted(statuses.items())}")  # figures for docs
