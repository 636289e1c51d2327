"""credd.client: the stdlib client, against the real server and against broken peers."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from credd.client import Client, default_socket, quote_segment
from credd.errors import (
    CreddError,
    DaemonUnavailable,
    NeedsMfa,
    ProfileNotManaged,
    RequestError,
    UsageError,
)
from credd.paths import socket_path
from credd.server.unix import UnixServer

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {
    "boto3",
    "botocore",
    "keyring",
    "apscheduler",
    "h11",
    "asyncio",
    "http.client",
    "ssl",
    "email",
    "argparse",
    "typing",
    "pathlib",
    "json",
    "credd.errors",
    "credd.paths",
}


@pytest.mark.parametrize(
    "env",
    [
        {"CREDD_SOCKET": "/x/y.sock", "XDG_RUNTIME_DIR": "/run/user/7"},
        {"XDG_RUNTIME_DIR": "/run/user/7"},
        {"XDG_RUNTIME_DIR": ""},
        {},
    ],
)
def test_default_socket_agrees_with_credd_paths(env: dict[str, str]) -> None:
    assert default_socket(env) == str(socket_path(env))


def test_default_socket_follows_the_environment(
    server: UnixServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # conftest points XDG_RUNTIME_DIR at tmp/run; the server fixture listens there
    assert Client().socket == str(server.address)
    monkeypatch.setenv("CREDD_SOCKET", "/nowhere/credd.sock")
    assert Client().socket == "/nowhere/credd.sock"
    assert Client(server.address).status()["version"] == 1


@pytest.mark.parametrize("name", ["demo", "a b", "x/y", "é-ü", "%41", "a?b#c", "dev:ops@x.y"])
def test_quote_segment_matches_urllib(name: str) -> None:
    assert quote_segment(name) == quote(name, safe="@+=,:")


def test_errors_come_back_as_credd_errors(server: UnixServer) -> None:
    client = Client(server.address)
    with pytest.raises(NeedsMfa) as needs:
        client.credentials("demo-mfa")
    assert needs.value.hint == "run `credd mfa demo-mfa`"
    assert needs.value.exit_code == 4
    with pytest.raises(ProfileNotManaged):
        client.credentials("nope")
    with pytest.raises(RequestError):
        client.credentials("a b")
    with pytest.raises(UsageError):
        client.push_mfa("demo-mfa", "12")


def test_missing_socket_is_daemon_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DaemonUnavailable) as exc:
        Client(tmp_path / "none.sock").status()
    assert exc.value.hint == "start it: credd daemon"
    assert exc.value.exit_code == 5


def test_stale_socket_is_daemon_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    with pytest.raises(DaemonUnavailable, match="no credd daemon is listening"):
        Client(path).credentials("demo")


@pytest.fixture
def fake_peer(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A listener that answers each connection with the next canned reply (then closes)."""
    path = tmp_path / "fake.sock"
    replies: list[bytes] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                if replies:
                    conn.sendall(replies.pop(0))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield path, replies
    stop.set()
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(5)


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"", "closed the connection without answering"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "is not an answer from credd"),
        (b"HTTP/1.1 200 OK\r\n\r\n{}", "without a usable length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "closed the connection mid-answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "not JSON"),
    ],
)
def test_broken_answers_are_daemon_unavailable(
    fake_peer: tuple[Path, list[bytes]], reply: bytes, match: str
) -> None:
    path, replies = fake_peer
    replies.append(reply)
    with pytest.raises(DaemonUnavailable, match=match):
        Client(path).status()


def test_non_credd_error_bodies_still_raise(fake_peer: tuple[Path, list[bytes]]) -> None:
    path, replies = fake_peer
    replies.append(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops")
    with pytest.raises(CreddError, match="answered HTTP 502"):
        Client(path).status()


def test_a_daemon_that_never_answers_times_out(tmp_path: Path) -> None:
    path = tmp_path / "mute.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen(4)  # the kernel accepts the connection; nobody ever reads or answers
        with pytest.raises(DaemonUnavailable, match="did not answer in time"):
            Client(path, timeout=0.2).status()


def test_importing_the_client_stays_light() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import credd.client\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    loaded = set(ast.literal_eval(out))
    assert loaded <= {"credd", "credd.client", "_socket"}, loaded
    assert not loaded & HEAVY
