"""credd.daemon.systemd against real datagram sockets, and the STATUS= summary."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from credd.daemon.main import summary
from credd.daemon.systemd import Notifier, listen_fds, watchdog_interval
from credd.models import ProfileStatus


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def test_messages_reach_a_path_socket(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("2 fresh")
    assert sock.recv(4096) == b"READY=1\nSTATUS=2 fresh"
    assert notifier.status("one\nline")
    assert sock.recv(4096) == b"STATUS=one line"  # a newline would start a new assignment
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.reloading()
    lines = sock.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert int(lines[1].split("=")[1]) > 0
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_abstract_namespace_address() -> None:
    name = f"credd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("READY=1")
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent_and_a_dead_socket_is_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not Notifier({}).enabled
    assert Notifier({}).ready() is False
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.send("READY=1") is False
    assert gone.send("WATCHDOG=1") is False
    assert sum("cannot notify" in r.getMessage() for r in caplog.records) == 1
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_watchdog_interval_is_half_the_timeout_for_this_pid_only() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    me = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": me}) == 0.2
    assert watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_listen_fds_only_for_this_pid_and_the_variables_are_removed() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x", "OTHER": "y"}
    assert listen_fds(env) == []
    assert env == {"OTHER": "y"}
    assert listen_fds({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}) == []
    assert listen_fds({}) == []
    # fd 3 handed over for real is covered by test_service_daemon (systemd-socket-activate)


def _status(state: str) -> ProfileStatus:
    return ProfileStatus(name=state + uuid.uuid4().hex[:4], kind="session", state=state)


def test_summary_counts_states_in_a_fixed_order() -> None:
    states = ["needs_mfa", *["fresh"] * 5, "login_required", "error", "backoff", "odd"]
    assert summary(_status(s) for s in states) == (
        "5 fresh, 1 needs MFA, 1 needs login, 1 backing off, 1 in error, 1 odd"
    )
    assert summary([]) == "no managed profiles"
    assert summary([_status("pending"), _status("refreshing")]) == "1 refreshing, 1 pending"
