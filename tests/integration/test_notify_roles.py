"""The proof of issue 5's notifications: ten roles behind one MFA session that needs a person,
the real manager against the sandbox's STS, a real notification server on a private bus.
Exactly one notification per need; the person does what it says; it comes back a session later."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest

from credd.clock import UTC
from credd.daemon.desktop import Notifier
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.test_roles import SandboxClock, calls, in_process_manager, setup_roles
from tests.unit.test_notify import Bus, NotificationService, bare_bus

pytestmark = pytest.mark.integration


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    with bare_bus(tmp_path / "dbus") as running:
        yield running


@pytest.fixture
def service(bus: Bus) -> Iterator[NotificationService]:
    server = NotificationService(bus.address)
    yield server
    server.stop()


@pytest.mark.timeout(180)
def test_ten_roles_one_mfa_session_one_notification_per_need(
    clean_env: Path,
    sandbox_clean: SandboxHandle,
    keyring_env: Any,
    bus: Bus,
    service: NotificationService,
) -> None:
    store = keyring_env.store()
    _user, device = setup_roles(clean_env, sandbox_clean, store, 10, seed=False)
    clock = SandboxClock(sandbox_clean, datetime.now(UTC).replace(microsecond=0))
    manager, sched = in_process_manager(clock, store)
    note = Notifier(clock, environ={"DBUS_SESSION_BUS_ADDRESS": bus.address})
    answered = 0
    most_waiting = 0
    for _ in range(12 * 6):  # twelve hours in ten-minute steps, the notifier looking each time
        sched.run_for(600)
        statuses = manager.status()
        note.observe(statuses)
        most_waiting = max(most_waiting, sum(s.waiting_for is not None for s in statuses))
        if len(service.notified) > answered:  # a person reads it and does what it says
            command = service.notified[-1].body.splitlines()[0]
            assert command == "Run: credd mfa user"
            manager.push_mfa_code("user", pyotp.TOTP(device.seed).at(clock.now()))
            answered += 1
            note.observe(manager.status())
    # t = 0 (all eleven profiles waiting) and t = 11 h (the session asks ahead, roles fresh)
    assert most_waiting == 11
    assert [n.summary for n in service.notified] == ["credd needs an MFA code"] * 2
    assert "For 11 profiles (r0, r1, r2, r3 and 7 more)." in service.notified[0].body
    assert service.closed == [1, 2]  # each withdrawn once the session (and its roles) renewed
    assert note.pending() == []
    assert calls(sandbox_clean)[0] == 2  # two GetSessionToken: one per code typed
    manager.stop()
