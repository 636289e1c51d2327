"""The manager under faults, on a fake clock: clock jumps (suspend), reloads racing a refresh,
a secret store that goes away and comes back, and what the log keeps of a failure.

Sources here are test doubles (the real ones are tested against the sandbox, see
``integration/test_faults.py``); the manager, policy, scheduler and credentials file are real.
"""

from __future__ import annotations

import configparser
import logging
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from credd.aws.config import AwsConfig, ManagedProfile
from credd.clock import ClockWatch
from credd.engine.manager import Manager
from credd.engine.scheduler import RefreshPolicy
from credd.errors import (
    AwsUnreachable,
    CreddError,
    NeedsMfa,
    SecretMissing,
    SecretStoreError,
    SecretStoreLocked,
)
from credd.files.credentials import CredentialsFileWriter
from credd.models import Credentials
from credd.plan.planner import Node
from credd.testing.clock import FakeClock
from credd.testing.scheduler import ManualScheduler

HOUR = 3600


def profile(name: str, duration: int = HOUR, file_profile: str | None = None) -> ManagedProfile:
    return ManagedProfile(
        name=name,
        kind="session-token",
        mfa_serial="arn:aws:iam::123456789012:mfa/" + name,
        mfa_source=None,
        mfa_process=None,
        duration_seconds=duration,
        file_profile=file_profile,
        region=None,
        has_file_keys=False,
    )


class Source:
    """Scripted outcomes; key ids start with ``prefix`` so tests can tell sources apart.
    ``gate`` (when set) holds every fetch until it is opened."""

    kind = "session-token"

    def __init__(self, clock: FakeClock, duration: int, prefix: str, *, person: bool = False):
        self.clock = clock
        self.duration = duration
        self.prefix = prefix
        self.person = person
        self.calls = 0
        self.failures: list[Exception] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    @property
    def unattended(self) -> bool:
        return not self.person

    @property
    def mfa_source(self) -> str:
        return "person" if self.person else "totp"

    def push_code(self, code: str) -> None:
        self.person = False

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.failures:
            raise self.failures.pop(0)
        if self.person:
            raise NeedsMfa("needs a code", hint="run: credd mfa p")
        return Credentials(
            f"ASIA{self.prefix}{self.calls:012d}",
            "s" * 40,
            "t" * 120,
            self.clock.now() + timedelta(seconds=self.duration),
        )


def build(
    clock: FakeClock,
    sources: dict[tuple[str, int], Source],
    profiles: list[ManagedProfile],
    writer: CredentialsFileWriter | None = None,
) -> tuple[Manager, ManualScheduler]:
    """A started manager; the source of a node is looked up by (profile, duration)."""
    scheduler = ManualScheduler(clock)

    def factory(node: Node) -> Source:
        return sources[(node.profile.name, node.duration)]

    manager = Manager(
        source_factory=factory, scheduler=scheduler, clock=clock, writer=writer, wait_timeout=10
    )
    manager.load(config(*profiles))
    manager.start()
    return manager, scheduler


def config(*profiles: ManagedProfile) -> AwsConfig:
    return AwsConfig(profiles={}, managed={p.name: p for p in profiles}, broken={})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- time: a jump of the wall clock (resume from suspend) --------------------------------------


def test_clock_watch_sees_wall_clock_jumps_not_time_passing(clock: FakeClock) -> None:
    watch = ClockWatch(clock, tolerance=2.0)
    clock.advance(600)
    assert watch.check() is None  # both clocks moved: time passed normally
    clock.set(clock.now() + timedelta(hours=2))
    assert watch.check() is None
    clock.jump(8 * HOUR)  # a night asleep: the monotonic clock stood still
    assert watch.check() == pytest.approx(8 * HOUR)
    assert watch.check() is None  # reported once
    clock.jump(-90)
    assert watch.check() == pytest.approx(-90)


def test_a_request_after_a_jump_refreshes_and_never_gets_expired_credentials(
    clock: FakeClock,
) -> None:
    src = Source(clock, HOUR, "A")
    manager, sched = build(clock, {("p", HOUR): src}, [profile("p")])
    sched.run_for(1)
    first = manager.credentials("p")
    clock.jump(3 * HOUR)  # resumed: the held session expired during the sleep, no job ran
    served = manager.credentials("p")  # before: NotReady forever (state "fresh", no refresh)
    assert served != first
    assert served.expiration is not None and served.expiration > clock.now()
    assert src.calls == 2
    assert manager.status()[0].state == "fresh"
    manager.stop()


def test_wake_runs_every_overdue_job_at_once(clock: FakeClock) -> None:
    a, b = Source(clock, HOUR, "A"), Source(clock, 12 * HOUR, "B")
    manager, sched = build(
        clock, {("a", HOUR): a, ("b", 12 * HOUR): b}, [profile("a"), profile("b", 12 * HOUR)]
    )
    sched.run_for(1)
    clock.jump(2 * HOUR)  # a's refresh (40 min ahead of expiry) is overdue, b's is not
    b_job = sched.pending()["session:b"]
    manager.wake()
    assert sched.woken == 1
    assert sched.pending()["session:a"] == clock.now()  # status no longer shows a past time
    assert sched.pending()["session:b"] == b_job
    sched.run_until(clock.now())
    assert (a.calls, b.calls) == (2, 1)
    status = {s.name: s for s in manager.status()}
    assert status["a"].next_refresh_at is not None
    assert status["a"].next_refresh_at > clock.now()
    manager.stop()


def test_parked_and_backing_off_nodes_answer_at_once_without_calls(clock: FakeClock) -> None:
    person = Source(clock, HOUR, "P", person=True)
    flaky = Source(clock, HOUR, "F")
    flaky.failures = [AwsUnreachable("down"), AwsUnreachable("down")]
    manager, sched = build(
        clock, {("p", HOUR): person, ("f", HOUR): flaky}, [profile("p"), profile("f")]
    )
    sched.run_for(1)
    for _ in range(20):  # a burst of clients: no call each
        with pytest.raises(NeedsMfa):
            manager.credentials("p")
        with pytest.raises(AwsUnreachable):
            manager.credentials("f")
    assert (person.calls, flaky.calls) == (1, 1)
    clock.jump(HOUR)  # the backoff's retry time passed while asleep: the next request retries
    with pytest.raises(AwsUnreachable):
        manager.credentials("f")
    assert flaky.calls == 2
    sched.run_for(RefreshPolicy().backoff_cap.total_seconds())  # its next retry succeeds
    assert manager.credentials("f").expiration is not None
    assert (person.calls, flaky.calls) == (1, 3)
    manager.stop()


# -- reload racing a refresh -------------------------------------------------------------------


def read_file(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return parser


def test_reload_during_a_refresh_drops_the_old_outcome(clock: FakeClock, tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    old, new = Source(clock, HOUR, "OLD"), Source(clock, 2 * HOUR, "NEW")
    sources = {("p", HOUR): old, ("p", 2 * HOUR): new}
    manager, sched = build(
        clock, sources, [profile("p", HOUR, "p")], writer=CredentialsFileWriter(path)
    )
    sched.run_for(1)
    assert manager.credentials("p").access_key_id.startswith("ASIAOLD")
    old.gate, old.entered = threading.Event(), threading.Event()
    asker = threading.Thread(target=manager.refresh, args=("p",))  # `credd refresh p`
    asker.start()
    assert old.entered.wait(10)  # the old settings' AssumeRole is in flight
    manager.load(config(profile("p", 2 * HOUR, "p")))  # SIGHUP with a new duration
    assert "p" not in read_file(path)  # the old settings' credentials left the file
    old.gate.set()  # the old call returns now, after the reload
    asker.join(20)
    sched.run_for(1)  # the new entry's first fetch
    served = manager.credentials("p")
    assert served.access_key_id.startswith("ASIANEW")
    assert read_file(path)["p"]["aws_access_key_id"] == served.access_key_id
    (st,) = manager.status()
    assert st.state == "fresh"
    assert st.next_refresh_at is not None and st.next_refresh_at > clock.now()
    sched.run_for(10 * HOUR)  # the old entry's job must not have replaced the new one's
    assert old.calls == 2  # no orphaned refresh ever again
    assert new.calls >= 6
    assert manager.credentials("p").access_key_id.startswith("ASIANEW")
    assert read_file(path)["p"]["aws_access_key_id"].startswith("ASIANEW")
    manager.stop()


def test_a_request_waiting_on_a_replaced_entry_gets_the_new_one(clock: FakeClock) -> None:
    old, new = Source(clock, HOUR, "OLD"), Source(clock, 2 * HOUR, "NEW")
    old.gate = threading.Event()
    manager = Manager(
        source_factory=lambda node: {HOUR: old, 2 * HOUR: new}[node.duration],
        scheduler=ManualScheduler(clock),
        clock=clock,
        wait_timeout=10,
    )
    manager.load(config(profile("p", HOUR)))
    got: list[Credentials | BaseException] = []

    def ask() -> None:
        try:
            got.append(manager.credentials("p"))
        except CreddError as exc:
            got.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    assert old.entered.wait(10)
    manager.load(config(profile("p", 2 * HOUR)))
    old.gate.set()
    asker.join(20)
    (result,) = got
    assert isinstance(result, Credentials) and result.access_key_id.startswith("ASIANEW")
    manager.stop()


def test_reload_of_an_unchanged_node_during_a_refresh_keeps_its_outcome(clock: FakeClock) -> None:
    src = Source(clock, HOUR, "A")
    manager, sched = build(clock, {("p", HOUR): src}, [profile("p")])
    sched.run_for(1)
    src.gate, src.entered = threading.Event(), threading.Event()
    asker = threading.Thread(target=manager.refresh, args=("p",))
    asker.start()
    assert src.entered.wait(10)
    manager.load(config(profile("p")))  # same settings: the same entry stays
    src.gate.set()
    asker.join(20)
    assert manager.credentials("p").access_key_id == f"ASIAA{2:012d}"
    assert sched.pending()["session:p"] > clock.now()
    manager.stop()


# -- the secret store: transient, with a capped backoff ----------------------------------------


@pytest.mark.parametrize(
    ("error", "waits_for"),
    [
        (SecretStoreError("no Secret Service is reachable"), "keyring (Secret Service)"),
        (SecretStoreLocked("the keyring is locked"), "keyring to be unlocked"),
    ],
)
def test_secret_store_outage_backs_off_capped_and_recovers_alone(
    clock: FakeClock, error: SecretStoreError, waits_for: str
) -> None:
    src = Source(clock, HOUR, "K")
    src.failures = [error] * 1000  # down for a long while
    manager, sched = build(clock, {("p", HOUR): src}, [profile("p")])
    sched.run_for(HOUR)
    (st,) = manager.status()
    assert st.state == "backoff"  # before: "error", parked until `credd refresh`
    assert st.waiting_for is not None and waits_for in st.waiting_for
    cap = RefreshPolicy().backoff_cap.total_seconds()
    assert src.calls <= HOUR / (cap / 2) + 8  # no storm: about one call per capped step
    src.failures.clear()  # the keyring is back
    sched.run_for(cap)  # within one backoff step
    assert manager.status()[0].state == "fresh"
    assert manager.credentials("p").access_key_id.startswith("ASIAK")
    manager.stop()


def test_a_missing_secret_parks_for_a_person(clock: FakeClock) -> None:
    src = Source(clock, HOUR, "K")
    src.failures = [SecretMissing("no keys for 'p'", hint="store them: credd keys set p")]
    manager, sched = build(clock, {("p", HOUR): src}, [profile("p")])
    sched.run_for(24 * HOUR)
    (st,) = manager.status()
    assert (st.state, st.waiting_for, src.calls) == ("error", "store them: credd keys set p", 1)


def test_error_classes_transient_or_not() -> None:
    assert SecretStoreError("x").transient and SecretStoreLocked("x").transient
    assert not SecretMissing("x").transient


# -- the log: tracebacks at DEBUG ---------------------------------------------------------------


def raise_from_deep_inside() -> None:
    raise AwsUnreachable("cannot reach sts")


def test_failures_log_their_traceback_at_debug(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    src = Source(clock, HOUR, "A")
    try:
        raise_from_deep_inside()
    except AwsUnreachable as exc:
        src.failures = [exc, ValueError("a bug")]
    caplog.set_level(logging.DEBUG, logger="credd.engine")
    manager, sched = build(clock, {("p", HOUR): src}, [profile("p")])
    sched.run_for(HOUR)
    records = [r for r in caplog.records if r.name.startswith("credd.engine.")]
    warning = next(r for r in records if r.levelno == logging.WARNING)
    assert warning.getMessage() == "session:p: refresh failed: cannot reach sts"
    assert warning.exc_info is None  # the WARNING line stays one line
    traced = [r for r in records if r.levelno == logging.DEBUG and r.exc_info]
    assert any(r.exc_info and r.exc_info[0] is AwsUnreachable for r in traced)
    text = "\n".join(logging.Formatter().format(r) for r in traced)
    assert "raise_from_deep_inside" in text
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in traced)  # the bug's origin
    manager.stop()


def test_tracebacks_in_the_log_are_masked_too() -> None:
    from credd.daemon.main import RedactingFilter

    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYxx"
    try:
        raise ValueError(f"oops {secret}")
    except ValueError as exc:
        record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "boom", None, (
            type(exc), exc, exc.__traceback__))  # fmt: skip
    RedactingFilter().filter(record)
    assert secret not in logging.Formatter().format(record)


def test_a_parent_removed_by_a_reload_is_a_named_not_ready_for_its_stale_child(
    clock: FakeClock,
) -> None:
    """A child's refresh that asks for its parent after a reload removed the parent (found by
    the SIGHUP fuzz: a KeyError logged as an unexpected error) is told it is stale."""
    from credd.errors import NotReady

    manager, _sched = build(clock, {("p", HOUR): Source(clock, HOUR, "P")}, [profile("p")])
    told = manager.refresher.node_credentials("role:removed-by-a-reload")
    assert isinstance(told, NotReady)
    assert "removed by a reload" in told.message
    manager.stop()
