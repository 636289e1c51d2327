"""Roles against the sandbox's strict STS: shared MFA sessions, exact call counts over simulated
days (the manager's fake clock and the sandbox clock move together), caps, and the real daemon."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from credd.aws import config as awsconfig
from credd.aws.clients import ClientFactory
from credd.clock import UTC
from credd.engine.manager import Manager
from credd.engine.scheduler import RefreshPolicy
from credd.plan.planner import Node
from credd.sources import build_source
from credd.sources.codes import ProfileCodes
from credd.sources.mfa import CodeLedger
from credd.testing.clock import FakeClock
from credd.testing.scheduler import ManualScheduler
from tests.fixtures.daemon import DaemonFactory, remember, services_section
from tests.fixtures.sandbox import SandboxHandle

pytestmark = pytest.mark.integration
HOUR = 3600


class SandboxClock(FakeClock):
    """A fake clock that moves the sandbox's clock with it."""

    def __init__(self, sandbox: SandboxHandle, start: datetime) -> None:
        super().__init__(start)
        self.sandbox = sandbox
        sandbox.admin.set_totp_clock("sandbox")
        sandbox.admin.set_now(start)

    def advance(self, seconds: float) -> datetime:
        now = super().advance(seconds)
        self.sandbox.admin.set_now(now)
        return now

    def set(self, when: datetime) -> None:
        super().set(when)
        self.sandbox.admin.set_now(when)


def setup_roles(
    home: Path, sandbox: SandboxHandle, store: Any, n: int, *, seed: bool
) -> tuple[Any, Any]:
    user, device = sandbox.new_user_with_mfa("sci")
    remember(user.secret_access_key, device.seed)
    store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    if seed:
        store.set_totp_seed("user", device.seed)
    text = "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
    for i in range(n):
        r = sandbox.admin.create_role(f"r{i}-{user.name}", trusted=[user.arn], mfa_required=True)
        text += (
            f"[profile r{i}]\nrole_arn = {r.arn}\nsource_profile = user\nregion = us-east-1\n"
            "services = sandbox\ncredd = true\ncredd_file_profile = off\n"
        )
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(text + services_section(sandbox.endpoint))
    return user, device


def in_process_manager(clock: FakeClock, store: Any) -> tuple[Manager, ManualScheduler]:
    clients = ClientFactory()
    ledger = CodeLedger(clock)

    def factory(node: Node) -> Any:
        return build_source(node, secrets=store, clients=clients, ledger=ledger, clock=clock
        )

    scheduler = ManualScheduler(clock)
    manager = Manager(
        source_factory=factory,
        scheduler=scheduler,
        clock=clock,
        policy=RefreshPolicy(jitter=0.0),
        code_source_of=lambda p: ProfileCodes(p, store, clock).configured().name,
        wait_timeout=30,
    )
    manager.load(awsconfig.load())
    manager.start()
    return manager, scheduler


def calls(sandbox: SandboxHandle) -> tuple[int, int]:
    return sandbox.admin.calls("GetSessionToken"), sandbox.admin.calls("AssumeRole")


@pytest.mark.timeout(300)
def test_ten_roles_totp_two_days_exact_sts_calls_and_nobody_asked(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any
) -> None:
    store = keyring_env.store()
    setup_roles(clean_env, sandbox_clean, store, 10, seed=True)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = SandboxClock(sandbox_clean, start)
    manager, sched = in_process_manager(clock, store)
    asked = 0
    # 48 h 10 min in 10 min steps, checking what a client would get. The end is 10 min past the
    # last due refresh: the sandbox's clock also runs in real time between steps, so expiries
    # drift by milliseconds, and an end exactly on a refresh time would be a coin toss.
    for _ in range(48 * 6 + 1):
        sched.run_for(600)
        states = {s.name: s.state for s in manager.status()}
        asked += sum(state == "needs_mfa" for state in states.values())
        for i in range(10):
            creds = manager.credentials(f"r{i}")
            assert creds.expiration - clock.now() > timedelta(minutes=15)
    # 12 h MFA sessions renewed 1 h early: t = 0, 11, 22, 33, 44 h. 1 h role sessions renewed
    # 20 min early: every 40 min, t = 0 .. 48 h -> 73 each (the next is due at 48 h 40 min).
    assert calls(sandbox_clean) == (5, 730)
    assert asked == 0
    status = manager.profile_status("r3")
    assert status.mfa_source == "totp" and "Unattended: nobody is asked" in (status.plan or "")
    manager.stop()


@pytest.mark.timeout(300)
def test_ten_roles_with_a_person_one_code_per_mfa_session(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any
) -> None:
    store = keyring_env.store()
    _user, device = setup_roles(clean_env, sandbox_clean, store, 10, seed=False)
    clock = SandboxClock(sandbox_clean, datetime.now(UTC).replace(microsecond=0))
    manager, sched = in_process_manager(clock, store)
    codes_typed = 0
    for _ in range(48 * 6):
        sched.run_for(600)
        waiting = [s for s in manager.status() if s.waiting_for and "credd mfa" in s.waiting_for]
        if waiting:  # the person answers the (one, de-duplicated) request
            assert all("credd mfa user" in (s.waiting_for or "") for s in waiting)
            manager.push_mfa_code(waiting[0].name, pyotp.TOTP(device.seed).at(clock.now()))
            codes_typed += 1
    assert codes_typed == 5  # t = 0, then 1 h before each 12 h session ends
    assert calls(sandbox_clean)[0] == 5
    for i in range(10):
        assert manager.credentials(f"r{i}").expiration > clock.now()
    manager.stop()


def test_role_caps_are_respected_and_a_wrong_duration_is_a_clear_error(
    daemons: DaemonFactory,
) -> None:
    user, _device = daemons.sandbox.new_user_with_mfa("cap")
    daemons.store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    _u, dev = user, _device
    daemons.store.set_totp_seed("user", dev.seed)
    remember(user.secret_access_key, dev.seed)
    short = daemons.sandbox.admin.create_role(
        f"short-{user.name}", trusted=[user.arn], max_session_duration=3600
    )
    long = daemons.sandbox.admin.create_role(
        f"long-{user.name}", trusted=[user.arn], max_session_duration=43200, mfa_required=True
    )
    chained = daemons.sandbox.admin.create_role(f"chain-{user.name}", trusted=[long.arn])
    daemons.write_config(
        "[profile user]\nregion = us-east-1\nservices = sandbox\n"
        f"[profile toolong]\nrole_arn = {short.arn}\nsource_profile = user\n"
        "duration_seconds = 7200\nmfa_serial = " + dev.serial + "\ncredd = true\n"
        "region = us-east-1\nservices = sandbox\n"
        f"[profile long]\nrole_arn = {long.arn}\nsource_profile = user\nduration_seconds = 28800\n"
        f"mfa_serial = {dev.serial}\ncredd = true\nregion = us-east-1\nservices = sandbox\n"
        f"[profile chained]\nrole_arn = {chained.arn}\nsource_profile = long\ncredd = true\n"
        "region = us-east-1\nservices = sandbox\n"
    )
    d = daemons.start()
    long_status = d.wait_state("long", "fresh")
    assert 28000 < long_status["expires_in_seconds"] <= 28800  # direct AssumeRole with a code
    assert "straight from the keys of 'user'" in long_status["plan"]
    chained_status = d.wait_state("chained", "fresh")
    assert chained_status["expires_in_seconds"] <= 3600
    bad = d.wait_state("toolong", "error")
    # 2 h asked of a role whose MaxSessionDuration is 1 h: STS refuses; parked, no loop
    assert bad["error"]["code"] in {"aws_error", "aws_access_denied"}
    assert "DurationSeconds" in bad["error"]["message"] or "duration" in bad["error"]["message"]
    before = daemons.sandbox.admin.calls("AssumeRole")
    assert d.run("get", "toolong").returncode == 7
    assert daemons.sandbox.admin.calls("AssumeRole") == before


def test_role_through_the_daemon_cli_and_the_aws_cli(daemons: DaemonFactory) -> None:
    user, dev = daemons.sandbox.new_user_with_mfa("desk")
    remember(user.secret_access_key, dev.seed)
    daemons.store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    role = daemons.sandbox.admin.create_role(
        f"ro-{user.name}", trusted=[user.arn], mfa_required=True
    )
    daemons.write_config(
        "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        "credd_mfa_source = person\n"
        f"[profile ro]\nrole_arn = {role.arn}\nsource_profile = user\ncredd = true\n"
        "region = us-east-1\nservices = sandbox\n"
    )
    d = daemons.start()
    waiting = d.wait_state("ro", "needs_mfa")
    assert "credd mfa user" in waiting["waiting_for"]
    assert "A person is needed now" in waiting["plan"]
    got = d.run("get", "ro")
    assert got.returncode == 4 and "credd mfa user" in got.stderr
    # the code can be given through the role's name too
    done = d.run("mfa", "ro", pyotp.TOTP(dev.seed).now())
    assert done.returncode == 0, done.stderr
    ro = d.wait_state("ro", "fresh")
    assert ro["mfa_source"] == "person" and "Next request:" in ro["plan"]
    assert d.profile("user")["state"] == "fresh"
    creds = d.get("ro")
    assert creds["AccountId"] == role.arn.split(":")[4]
    status_text = d.run("status", "ro").stdout
    assert "ro" in status_text and "assume-role" in status_text
    assert "plan: MFA session of 'user'" in status_text and "AssumeRole" in status_text
    data = json.loads(d.run("status", "--json").stdout)
    assert {p["name"] for p in data["profiles"]} == {"user", "ro"}
    assert (daemons.aws / "credentials").read_text().count("credd_managed_by = ro") == 1
