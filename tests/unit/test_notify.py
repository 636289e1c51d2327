"""Desktop notifications against a real ``org.freedesktop.Notifications`` on a private bus.

:class:`NotificationService` is a small notification server written with jeepney: it owns the
well-known name on a private ``dbus-daemon``, answers ``Notify`` with fresh ids and records
every call, as a desktop's server would. The bus (:func:`bare_bus`) is configured with no
service directories, so a notification daemon installed on the machine running the tests can
never be activated behind the tests' back.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from credd.daemon.desktop import BUS_NAME, Notifier, needs_of
from credd.models import ProfileStatus
from credd.testing.clock import FakeClock
from tests.fixtures.keyring import connect, name_has_owner

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


@dataclass
class Notified:
    app: str
    replaces_id: int
    summary: str
    body: str
    hints: dict[str, Any]
    expire_timeout: int


class NotificationService:
    """A real notification server on ``address``, in a thread, recording what it is asked."""

    def __init__(self, address: str) -> None:
        from jeepney import DBus
        from jeepney.wrappers import unwrap_msg

        self.conn = connect(address)
        reply = self.conn.send_and_get_reply(DBus().RequestName(BUS_NAME, 4), timeout=5)
        assert unwrap_msg(reply)[0] == 1, "could not own the name"
        self.notified: list[Notified] = []
        self.closed: list[int] = []
        self._next_id = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        from jeepney import MessageType, new_error, new_method_return
        from jeepney.low_level import HeaderFields

        while not self._stop.is_set():
            try:
                msg = self.conn.receive(timeout=0.05)  # polls so stop() is seen; not a test wait
            except TimeoutError:
                continue
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "Notify":
                app, replaces, _icon, summary, body, _actions, hints, timeout = msg.body
                self._next_id += 1
                nid = replaces or self._next_id
                self.notified.append(Notified(app, replaces, summary, body, hints, timeout))
                reply = new_method_return(msg, "u", (nid,))
            elif member == "CloseNotification":
                self.closed.append(msg.body[0])
                reply = new_method_return(msg)
            elif member == "GetCapabilities":
                reply = new_method_return(msg, "as", (["body"],))
            else:
                reply = new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod")
            self.conn.send(reply)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


@dataclass
class Bus:
    address: str


@contextmanager
def bare_bus(directory: Path) -> Iterator[Bus]:
    """A private ``dbus-daemon`` listening on ``directory/bus``, with no service directories."""
    dbus_daemon = shutil.which("dbus-daemon")
    if dbus_daemon is None:
        pytest.fail("dbus-daemon is not installed (apt-get install dbus)")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "bus.conf"
    config.write_text(BUS_CONFIG.format(path=directory / "bus"))
    proc = subprocess.Popen(
        [dbus_daemon, f"--config-file={config}", "--print-address", "--nofork", "--nopidfile"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address, f"dbus-daemon exited with {proc.wait(timeout=5)}"
        yield Bus(address)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    with bare_bus(tmp_path / "dbus") as running:
        yield running


@pytest.fixture
def service(bus: Bus) -> Iterator[NotificationService]:
    server = NotificationService(bus.address)
    yield server
    server.stop()


def waiting_roles(n: int, user: str = "work") -> list[ProfileStatus]:
    """``n`` role profiles parked behind one MFA session (the manager's shape: every role
    carries its session's hint), plus the session's own profile."""
    hint = f"run: credd mfa {user}"
    roles = [
        ProfileStatus(name=f"r{i}", kind="assume-role", state="needs_mfa", waiting_for=hint)
        for i in range(n)
    ]
    return [*roles, ProfileStatus(user, "mfa-session", "needs_mfa", waiting_for=hint)]


def fresh(names: list[str]) -> list[ProfileStatus]:
    return [
        ProfileStatus(name=n, kind="assume-role", state="fresh", expires_at=START) for n in names
    ]


def notifier(bus: Bus, clock: FakeClock, **kwargs: Any) -> Notifier:
    return Notifier(clock, environ={"DBUS_SESSION_BUS_ADDRESS": bus.address}, **kwargs)


def test_needs_group_by_what_a_person_has_to_do() -> None:
    login = "run: credd login --sso-session corp"
    err = {"code": "secret_missing", "message": "no keys for 'ops'", "hint": "credd keys set ops"}
    statuses = [
        *waiting_roles(10),
        *[ProfileStatus(f"s{i}", "sso", "login_required", waiting_for=login) for i in range(3)],
        ProfileStatus("ops", "mfa-session", "error", error=err, waiting_for=err["hint"]),
        ProfileStatus("ops-role", "assume-role", "error", error=err, waiting_for=err["hint"]),
        # fresh, but its session asks a person ahead of expiry: the same need as the others
        ProfileStatus("ahead", "assume-role", "fresh", waiting_for="run: credd mfa work"),
        ProfileStatus("plain", "mfa-session", "fresh"),
        ProfileStatus("flaky", "assume-role", "backoff", waiting_for="credd retries with backoff"),
        ProfileStatus("pend", "assume-role", "pending"),
    ]
    needs = needs_of(statuses)
    assert set(needs) == {
        ("needs_mfa", "credd mfa work"),
        ("login_required", "credd login --sso-session corp"),
        ("secret_missing", "credd keys set ops"),
    }
    mfa = needs[("needs_mfa", "credd mfa work")]
    assert mfa.profiles == ("ahead", *sorted(f"r{i}" for i in range(10)), "work")
    assert "Run: credd mfa work" in mfa.body()
    assert needs[("secret_missing", "credd keys set ops")].profiles == ("ops", "ops-role")


def test_one_notification_per_need_then_again_when_it_returns(
    bus: Bus, service: NotificationService
) -> None:
    clock = FakeClock(START)
    note = notifier(bus, clock)
    waiting = waiting_roles(10)
    for _ in range(5):  # the daemon's loop looks every few seconds
        note.observe(waiting)
        clock.advance(5)
    assert len(service.notified) == 1
    first = service.notified[0]
    assert (first.app, first.replaces_id, first.expire_timeout) == ("credd", 0, 0)
    assert first.summary == "credd needs an MFA code"
    assert first.body.startswith("Run: credd mfa work\nFor 11 profiles (r0, r1, r2, r3 and 7 more)")
    assert first.hints["urgency"] == ("y", 1)

    note.observe(fresh([s.name for s in waiting]))  # a person ran credd mfa work
    assert service.closed == [1]
    note.observe(fresh([s.name for s in waiting]))
    assert note.pending() == []

    for _ in range(3):  # twelve hours later the session asks again
        note.observe(waiting)
    assert len(service.notified) == 2
    assert service.notified[1].replaces_id == 0
    assert service.closed == [1]


def test_separate_needs_get_separate_notifications(bus: Bus, service: NotificationService) -> None:
    note = notifier(bus, FakeClock(START))
    err = {"code": "secret_missing", "message": "no keys for 'ops'", "hint": "credd keys set ops"}
    statuses = [
        *waiting_roles(3, "work"),
        *waiting_roles(2, "home")[-1:],
        ProfileStatus("dev", "sso", "login_required", waiting_for="run: credd login dev"),
        ProfileStatus("ops", "mfa-session", "error", error=err, waiting_for=err["hint"]),
    ]
    note.observe(statuses)
    note.observe(statuses)
    bodies = sorted(n.body.splitlines()[0] for n in service.notified)
    assert bodies == [
        "Run: credd login dev",
        "Run: credd mfa home",
        "Run: credd mfa work",
        "no keys for 'ops' (secret_missing)",
    ]
    error = next(n for n in service.notified if "secret_missing" in n.body)
    assert error.summary == "credd stopped refreshing profile ops"
    assert "credd keys set ops" in error.body
    assert error.hints["urgency"] == ("y", 2)


def test_renotify_interval_replaces_the_shown_notification(
    bus: Bus, service: NotificationService
) -> None:
    clock = FakeClock(START)
    note = notifier(bus, clock, renotify_after=timedelta(hours=1))
    note.observe(waiting_roles(2))
    clock.advance(59 * 60)
    note.observe(waiting_roles(2))
    assert len(service.notified) == 1
    clock.advance(60)
    note.observe(waiting_roles(2))
    assert [n.replaces_id for n in service.notified] == [0, 1]


def test_no_service_is_silently_off_then_found_when_it_appears(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="credd.daemon.desktop")
    clock = FakeClock(START)
    note = notifier(bus, clock)
    for _ in range(4):
        note.observe(waiting_roles(10))
        clock.advance(30)
    off = [r for r in caplog.records if "notifications off" in r.getMessage()]
    assert len(off) == 1 and off[0].levelno == logging.DEBUG
    assert "no org.freedesktop.Notifications service" in off[0].getMessage()
    assert not name_has_owner(bus.address, BUS_NAME)

    server = NotificationService(bus.address)  # a desktop session starts later
    try:
        note.observe(waiting_roles(10))
        assert server.notified == []  # not looked for again yet
        clock.advance(5 * 60)
        note.observe(waiting_roles(10))
        note.observe(waiting_roles(10))
        assert len(server.notified) == 1
    finally:
        server.stop()


def test_no_session_bus_at_all(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="credd.daemon.desktop")
    clock = FakeClock(START)
    for environ in (
        {"XDG_RUNTIME_DIR": str(tmp_path)},  # no $XDG_RUNTIME_DIR/bus either
        {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path / 'nothing'}"},
    ):
        caplog.clear()
        note = Notifier(clock, environ=environ)
        for _ in range(3):
            note.observe(waiting_roles(2))
            clock.advance(600)
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        assert len(lines) == 1, lines
        assert len(note.pending()) == 1


def test_xdg_runtime_bus_is_used_without_the_variable(tmp_path: Path) -> None:
    runtime = tmp_path / "rt"
    with bare_bus(runtime) as running:  # its socket is runtime/bus, as systemd makes it
        server = NotificationService(running.address)
        try:
            Notifier(FakeClock(START), environ={"XDG_RUNTIME_DIR": str(runtime)}).observe(
                waiting_roles(1)
            )
            assert len(server.notified) == 1
        finally:
            server.stop()


def test_a_server_that_goes_away_turns_notifications_off(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="credd.daemon.desktop")
    clock = FakeClock(START)
    note = notifier(bus, clock)
    server = NotificationService(bus.address)
    note.observe(waiting_roles(1, "a"))
    server.stop()  # the name goes with its connection
    note.observe(waiting_roles(1, "a") + waiting_roles(1, "b"))  # b cannot be shown: no raise
    assert any("Notify failed" in r.getMessage() for r in caplog.records)
    server = NotificationService(bus.address)
    try:
        clock.advance(5 * 60)
        note.observe(waiting_roles(1, "a") + waiting_roles(1, "b"))
        assert [n.body.splitlines()[0] for n in server.notified] == ["Run: credd mfa b"]
    finally:
        server.stop()
