"""The manager over simulated days, on a fake clock: schedules, backoff, parking, single flight.

The source here is a test double (the real sources are tested against the sandbox); everything
else is the real manager, policy and ManualScheduler.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from credd.aws.config import AwsConfig, BrokenProfile, ManagedProfile
from credd.engine.manager import Manager
from credd.engine.scheduler import RefreshPolicy
from credd.errors import (
    AwsAccessDenied,
    AwsUnreachable,
    ConfigError,
    CreddError,
    MfaCodeRejected,
    NeedsMfa,
    NotReady,
    ProfileNotManaged,
)
from credd.files.credentials import CredentialsFileWriter
from credd.models import Credentials
from credd.plan.planner import Node
from credd.testing.clock import FakeClock
from credd.testing.scheduler import ManualScheduler

HOUR = 3600


def profile(name: str, duration: int = 12 * HOUR) -> ManagedProfile:
    return ManagedProfile(
        name=name,
        kind="session-token",
        mfa_serial="arn:aws:iam::123456789012:mfa/" + name,
        mfa_source=None,
        mfa_process=None,
        duration_seconds=duration,
        file_profile=None,
        region=None,
        has_file_keys=False,
    )


class ScriptedSource:
    """A source whose outcomes are scripted; counts calls. ``unattended`` like TOTP by default."""

    kind = "session-token"

    def __init__(self, clock: FakeClock, duration: int, *, unattended: bool = True) -> None:
        self.clock = clock
        self.duration = duration
        self._unattended = unattended
        self.calls = 0
        self.failures: list[CreddError] = []
        self.pushed: list[str] = []
        self.gate: threading.Event | None = None

    @property
    def unattended(self) -> bool:
        return self._unattended

    @property
    def mfa_source(self) -> str:
        return "totp" if self._unattended else "person"

    def push_code(self, code: str) -> None:
        self.pushed.append(code)

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.failures:
            raise self.failures.pop(0)
        if not self._unattended:
            if not self.pushed:
                raise NeedsMfa("needs a code", hint="run: credd mfa p")
            self.pushed.pop(0)
        return Credentials(
            f"ASIA{self.calls:016d}",
            "s" * 40,
            "t" * 120,
            self.clock.now() + timedelta(seconds=self.duration),
        )


def make(
    clock: FakeClock,
    sources: dict[str, ScriptedSource],
    broken: dict[str, BrokenProfile] | None = None,
    policy: RefreshPolicy | None = None,
) -> tuple[Manager, ManualScheduler]:
    scheduler = ManualScheduler(clock)

    def factory(node: Node) -> ScriptedSource:
        return sources[node.profile.name]

    manager = Manager(source_factory=factory, scheduler=scheduler, clock=clock, policy=policy)
    config = AwsConfig(
        profiles={},
        managed={n: profile(n, s.duration) for n, s in sources.items()},
        broken=broken or {},
    )
    manager.load(config)
    manager.start()
    return manager, scheduler


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_unattended_sessions_refresh_ahead_of_expiry_for_two_days(clock: FakeClock) -> None:
    src = ScriptedSource(clock, 12 * HOUR)
    manager, sched = make(clock, {"p": src})
    end = clock.now() + timedelta(hours=48)
    served_keys = set()
    while clock.now() < end:
        sched.run_for(60)
        creds = manager.credentials("p")
        assert creds.expiration is not None
        left = creds.expiration - clock.now()
        # always comfortably outside botocore's 15 min advisory window
        assert left > timedelta(minutes=15), left
        served_keys.add(creds.access_key_id)
    # 12 h sessions refreshed 1 h (+ up to 10 % jitter) before expiry: 1 + 48/~11 fetches
    assert 5 <= src.calls <= 6, src.calls
    assert len(served_keys) == src.calls
    manager.stop()


def test_short_sessions_stay_out_of_the_advisory_window(clock: FakeClock) -> None:
    src = ScriptedSource(clock, HOUR)
    manager, sched = make(clock, {"p": src})
    for _ in range(6 * 60):
        sched.run_for(60)
        creds = manager.credentials("p")
        assert creds.expiration - clock.now() > timedelta(minutes=15)
    assert 9 <= src.calls <= 11  # 1 h sessions renewed 20-22 min early: every ~39 min over 6 h
    manager.stop()


def test_person_is_asked_once_per_session_and_old_credentials_served_meanwhile(
    clock: FakeClock,
) -> None:
    src = ScriptedSource(clock, 12 * HOUR, unattended=False)
    manager, sched = make(clock, {"p": src})
    sched.run_for(1)
    (st,) = manager.status()
    assert st.state == "needs_mfa" and "credd mfa" in (st.waiting_for or "")
    with pytest.raises(NeedsMfa):
        manager.credentials("p")
    calls_before = src.calls
    sched.run_for(3 * HOUR)  # parked: nobody retries in a loop
    assert src.calls == calls_before

    asks = 0
    for _ in range(4):  # four sessions, each answered when asked
        status = manager.push_mfa_code("p", "123456")
        assert status.state == "fresh"
        first = manager.credentials("p")
        # the next request comes 1 h before expiry, not earlier
        sched.run_until(first.expiration - timedelta(hours=1, seconds=1))
        assert manager.status()[0].state == "fresh"
        sched.run_for(2)
        assert manager.status()[0].state == "needs_mfa"
        asks += 1
        assert manager.credentials("p") == first  # still served while waiting for the person
    assert asks == 4
    manager.stop()


def test_transient_failures_back_off_exponentially_and_keep_serving(clock: FakeClock) -> None:
    src = ScriptedSource(clock, 12 * HOUR)
    manager, sched = make(clock, {"p": src})
    sched.run_for(1)
    held = manager.credentials("p")
    sched.run_until(sched.pending()["session:p"] - timedelta(seconds=1))
    src.failures = [AwsUnreachable("down") for _ in range(8)]
    times = []
    start_calls = src.calls
    while src.calls < start_calls + 9:
        before = src.calls
        sched.run_for(1)
        if src.calls > before:
            times.append(clock.now())
        assert manager.credentials("p") == held or src.calls == start_calls + 9
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps[0] < gaps[3]  # grows
    assert max(gaps) <= RefreshPolicy().backoff_cap.total_seconds() + 1  # capped
    assert manager.status()[0].state == "fresh"
    assert manager.credentials("p") != held
    manager.stop()


def test_rejected_unattended_code_is_retried_once_then_parked(clock: FakeClock) -> None:
    src = ScriptedSource(clock, 12 * HOUR)
    src.failures = [MfaCodeRejected("bad code"), MfaCodeRejected("bad code")]
    manager, sched = make(clock, {"p": src})
    sched.run_for(24 * HOUR)
    assert src.calls == 2  # no loop of failing calls: AWS can lock the device
    (st,) = manager.status()
    assert st.state == "error"
    assert st.error is not None and st.error["code"] == "mfa_code_rejected"
    with pytest.raises(MfaCodeRejected):
        manager.credentials("p")
    assert manager.refresh("p").state == "fresh"  # a person fixed it and asked again
    manager.stop()


def test_permanent_errors_park_without_retrying(clock: FakeClock) -> None:
    src = ScriptedSource(clock, 12 * HOUR)
    src.failures = [AwsAccessDenied("keys rejected", hint="credd keys set p")]
    manager, sched = make(clock, {"p": src})
    sched.run_for(48 * HOUR)
    assert src.calls == 1
    st = manager.status()[0]
    assert st.state == "error" and st.waiting_for == "credd keys set p"
    manager.stop()


def test_many_callers_at_once_share_one_refresh(clock: FakeClock) -> None:
    src = ScriptedSource(clock, 12 * HOUR)
    src.gate = threading.Event()
    scheduler = ManualScheduler(clock)
    manager = Manager(
        source_factory=lambda node: src, scheduler=scheduler, clock=clock, wait_timeout=10
    )
    manager.load(AwsConfig(profiles={}, managed={"p": profile("p")}, broken={}))
    results: list[Credentials] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append(manager.credentials("p"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(64)]
    for t in threads:
        t.start()
    while src.calls == 0:
        threading.Event().wait(0.001)
    src.gate.set()
    for t in threads:
        t.join()
    assert errors == []
    assert src.calls == 1
    assert len({c.access_key_id for c in results}) == 1 and len(results) == 64
    manager.stop()


def test_one_broken_profile_does_not_stop_the_others(clock: FakeClock) -> None:
    good = ScriptedSource(clock, 12 * HOUR)
    bad = BrokenProfile("bad", ConfigError("profile 'bad': credd_session_duration: nope"))
    manager, sched = make(clock, {"good": good}, broken={"bad": bad})
    sched.run_for(1)
    by_name = {s.name: s for s in manager.status()}
    assert by_name["good"].state == "fresh"
    assert by_name["bad"].state == "error"
    assert by_name["bad"].error == {"code": "config_invalid", "message": bad.error.message}
    with pytest.raises(ConfigError):
        manager.credentials("bad")
    with pytest.raises(ProfileNotManaged):
        manager.credentials("nobody")
    manager.stop()


def test_reload_keeps_unchanged_sessions_and_drops_removed(clock: FakeClock) -> None:
    a, b = ScriptedSource(clock, 12 * HOUR), ScriptedSource(clock, 12 * HOUR)
    c = ScriptedSource(clock, 12 * HOUR)
    sources = {"a": a, "b": b}
    manager, sched = make(clock, sources)
    sources["c"] = c  # the factory looks sources up when the new config arrives
    sched.run_for(1)
    held = manager.credentials("a")
    manager.load(AwsConfig(profiles={}, managed={n: profile(n) for n in ("a", "c")}, broken={}))
    sched.run_for(1)
    assert [s.name for s in manager.status()] == ["a", "c"]
    assert manager.credentials("a") == held and a.calls == 1
    assert manager.credentials("c").access_key_id and c.calls == 1
    assert "session:b" not in sched.pending()
    manager.stop()


def test_first_request_waits_for_the_first_fetch_or_says_not_ready(clock: FakeClock) -> None:
    src = ScriptedSource(clock, 12 * HOUR)
    src.gate = threading.Event()
    manager = Manager(
        source_factory=lambda node: src,
        scheduler=ManualScheduler(clock),
        clock=clock,
        wait_timeout=0.05,
    )
    manager.load(AwsConfig(profiles={}, managed={"p": profile("p")}, broken={}))
    with pytest.raises(NotReady):
        manager.credentials("p")
    assert manager.status()[0].state == "refreshing"
    src.gate.set()
    assert manager.credentials("p").access_key_id.startswith("ASIA")
    manager.stop()


def test_policy_leads() -> None:
    policy = RefreshPolicy()
    assert policy.lead(timedelta(hours=12), unattended=True) == timedelta(hours=1)
    assert policy.lead(timedelta(hours=1), unattended=True) == timedelta(minutes=20)
    assert policy.lead(timedelta(minutes=15), unattended=True) == timedelta(minutes=7.5)
    assert policy.lead(timedelta(hours=12), unattended=False) == timedelta(hours=1)
    assert policy.lead(timedelta(minutes=30), unattended=False) == timedelta(minutes=15)
    delays = [policy.backoff(n).total_seconds() for n in range(1, 20)]
    assert all(d <= policy.backoff_cap.total_seconds() for d in delays)
    assert delays[0] <= 5 and delays[-1] >= policy.backoff_cap.total_seconds() / 2


def test_a_reload_that_drops_many_profiles_rewrites_the_file_once(
    clock: FakeClock, tmp_path: Path
) -> None:
    """Dropping N profiles removed their credentials-file sections one locked rewrite at a time
    (a 1,000-hop config fuzz case spent 66 s there); now it is one rewrite for all of them."""
    names = [f"p{i}" for i in range(20)]
    sources = {n: ScriptedSource(clock, 12 * HOUR) for n in names}
    writer = CredentialsFileWriter(tmp_path / "credentials", clock=clock)
    scheduler = ManualScheduler(clock)
    manager = Manager(
        source_factory=lambda node: sources[node.profile.name],
        scheduler=scheduler,
        clock=clock,
        writer=writer,
    )
    filed = {n: replace(profile(n), file_profile=f"{n}-credd") for n in names}
    manager.load(AwsConfig(profiles={}, managed=filed, broken={}))
    manager.start()
    scheduler.run_for(1)
    text = writer.path.read_text()
    assert all(f"[{n}-credd]" in text for n in names)
    commits: list[Path] = []
    writer.before_commit = commits.append
    keep = {"p0": filed["p0"]}
    manager.load(AwsConfig(profiles={}, managed=keep, broken={}))
    text = writer.path.read_text()
    assert "[p0-credd]" in text
    assert not any(f"[{n}-credd]" in text for n in names[1:])
    assert len(commits) == 1, f"{len(commits)} rewrites to drop {len(names) - 1} sections"
    manager.stop()
