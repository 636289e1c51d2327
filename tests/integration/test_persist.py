"""Saved sessions in process: the restore/drop rules on a fake clock, against real gnome-keyring.

The manager, policy, planner, config loader and secret store are the real ones; only the STS
sources are scripted doubles (counting fetches), so a restart is two Manager objects in a row
sharing one keyring service.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.aws import config as awsconfig
from credd.clock import UTC
from credd.engine.manager import Manager
from credd.engine.persist import INDEX, Persist, fingerprint
from credd.engine.scheduler import RefreshPolicy
from credd.errors import NeedsMfa
from credd.models import Credentials
from credd.plan.nodes import Kind, Node
from credd.secrets.store import SecretStore
from credd.testing.clock import FakeClock
from credd.testing.scheduler import ManualScheduler

pytestmark = pytest.mark.integration  # the real Secret Service
HOUR = 3600
ARN = "arn:aws:iam::123456789012:role/"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Scripted:
    """A source double: new credentials per fetch, lasting the node's duration; counts calls."""

    def __init__(self, node: Node, clock: FakeClock, log: list[str], person: bool) -> None:
        self.kind = node.kind
        self.node = node
        self.clock = clock
        self.log = log
        self.person = person and node.with_code
        self.pushed: list[str] = []

    @property
    def unattended(self) -> bool:
        return not self.person

    @property
    def mfa_source(self) -> str | None:
        return ("person" if self.person else "totp") if self.node.with_code else None

    def push_code(self, code: str) -> None:
        self.pushed.append(code)

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        if self.person and not self.pushed:
            raise NeedsMfa("needs a code", hint=f"run: credd mfa {self.node.base}")
        if self.pushed:
            self.pushed.pop()
        self.log.append(self.node.key)
        n = len(self.log)
        return Credentials(
            f"ASIATEST{n:012d}",
            f"secret{n:034d}",
            f"token{n:0120d}",
            self.clock.now() + timedelta(seconds=self.node.duration),
        )


def write_config(home: Path, *roles: str, duration: str = "12h", extra: str = "") -> None:
    text = f"[profile user]\ncredd = true\ncredd_session_duration = {duration}\n{extra}"
    for role in roles:
        text += f"[profile {role}]\nrole_arn = {ARN}{role}\nsource_profile = user\ncredd = true\n"
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(text)


class Run:
    """One daemon lifetime in process: a Manager with persistence on ``store``."""

    def __init__(self, clock: FakeClock, store: SecretStore, *, person: bool = False) -> None:
        self.clock = clock
        self.fetches: list[str] = []
        self.scheduler = ManualScheduler(clock)
        self.persist = Persist(store, clock=clock)
        self.manager = Manager(
            source_factory=self._source,
            scheduler=self.scheduler,
            clock=clock,
            policy=RefreshPolicy(jitter=0.0),
            code_source_of=lambda _p: "person" if person else "totp",
            persist=self.persist,
        )
        self.person = person

    def _source(self, node: Node) -> Scripted:
        return Scripted(node, self.clock, self.fetches, self.person)

    def start(self) -> Run:
        self.manager.load(awsconfig.load())
        self.manager.start()
        self.scheduler.run_for(0)
        return self

    def view(self) -> dict[str, tuple[str, Any, Any, Any]]:
        return {
            s.name: (s.state, s.expires_at, s.key_id, s.last_refresh_at)
            for s in self.manager.status()
        }


@pytest.fixture
def store(keyring_env: Any) -> SecretStore:
    return keyring_env.store(allow_prompt=False)  # type: ignore[no-any-return]


def test_a_restart_restores_every_session_and_calls_nothing_until_due(
    clean_env: Path, store: SecretStore
) -> None:
    write_config(clean_env, "r0", "r1")
    clock = FakeClock(START)
    first = Run(clock, store).start()
    assert sorted(first.fetches) == ["role:r0", "role:r1", "session:user"]
    before = first.view()
    assert all(state == "fresh" for state, *_ in before.values())
    assert store.get_session(INDEX) == {"v": 1, "keys": ["role:r0", "role:r1", "session:user"]}
    first.manager.stop()  # what kill -9 leaves behind is the same: saved on every refresh

    clock.advance(600)
    second = Run(clock, store).start()
    assert second.fetches == []
    assert second.view() == before
    assert second.persist.info() == {
        "state": "on", "store": "SecretStore", "restored": 3, "saved": 0, "dropped": 0,
    }  # fmt: skip
    # the next refreshes are where a fetch would have put them: 1 h roles 20 min before expiry,
    # the 12 h TOTP session 1 h before
    pending = second.scheduler.pending()
    assert pending["role:r0"] == START + timedelta(minutes=40)
    assert pending["session:user"] == START + timedelta(hours=11)
    assert (
        second.manager.credentials("r1").access_key_id
        == first.manager.credentials("r1").access_key_id
    )
    second.scheduler.run_until(START + timedelta(minutes=39))
    assert second.fetches == []
    second.scheduler.run_until(START + timedelta(minutes=41))
    assert sorted(second.fetches) == ["role:r0", "role:r1"]
    # and those new role sessions were saved in turn
    third = Run(clock, store).start()
    assert third.fetches == [] and third.view() == second.view()


def test_expired_and_nearly_expired_sessions_are_dropped_and_fetched_again(
    clean_env: Path, store: SecretStore
) -> None:
    write_config(clean_env, "r0")
    clock = FakeClock(START)
    Run(clock, store).start().manager.stop()
    # 59 min 30 s later: the 1 h role has 30 s left (under the 60 s serve floor), the session 11 h
    clock.advance(HOUR - 30)
    later = Run(clock, store).start()
    assert later.fetches == ["role:r0"]  # the session was restored, the role fetched again
    assert later.persist.dropped == 1
    saved = store.get_session("role:r0")
    assert saved is not None and saved["issued_at"] == "2026-03-01T09:59:30Z"
    clock.advance(13 * HOUR)  # everything expired
    last = Run(clock, store).start()
    assert sorted(last.fetches) == ["role:r0", "session:user"]


def test_changed_settings_never_restore_credentials_made_for_other_settings(
    clean_env: Path, store: SecretStore
) -> None:
    write_config(clean_env, "r0")
    clock = FakeClock(START)
    Run(clock, store).start().manager.stop()
    write_config(clean_env, "r0", duration="8h")  # the user's session changed; r0 hangs off it
    again = Run(clock, store).start()
    assert sorted(again.fetches) == ["role:r0", "session:user"]
    assert again.persist.dropped == 2
    saved = store.get_session("session:user")
    assert saved is not None
    assert saved["credentials"]["Expiration"] == "2026-03-01T17:00:00Z"  # the new 8 h session


def test_sighup_reload_drops_saved_sessions_of_removed_and_changed_nodes_only(
    clean_env: Path, store: SecretStore
) -> None:
    write_config(clean_env, "r0", "r1", "r2")
    clock = FakeClock(START)
    run = Run(clock, store).start()
    before = run.view()
    kept = store.get_session("role:r0")
    # r1 removed, r2's role changed, r3 new, r0 and the user untouched
    (clean_env / ".aws" / "config").write_text(
        "[profile user]\ncredd = true\ncredd_session_duration = 12h\n"
        f"[profile r0]\nrole_arn = {ARN}r0\nsource_profile = user\ncredd = true\n"
        f"[profile r2]\nrole_arn = {ARN}other\nsource_profile = user\ncredd = true\n"
        f"[profile r3]\nrole_arn = {ARN}r3\nsource_profile = user\ncredd = true\n"
    )
    run.fetches.clear()
    run.manager.load(awsconfig.load())
    run.scheduler.run_for(0)
    assert sorted(run.fetches) == ["role:r2", "role:r3"]
    after = run.view()
    assert "r1" not in after
    assert after["r0"] == before["r0"] and after["user"] == before["user"]
    assert store.get_session("role:r1") is None
    assert store.get_session("role:r0") == kept
    r2 = store.get_session("role:r2")
    assert r2 is not None and r2["credentials"]["AccessKeyId"] != before["r2"][2]
    assert store.get_session(INDEX) == {
        "v": 1, "keys": ["role:r0", "role:r2", "role:r3", "session:user"],
    }  # fmt: skip


def test_a_profile_removed_while_the_daemon_was_down_is_pruned_at_start(
    clean_env: Path, store: SecretStore
) -> None:
    write_config(clean_env, "r0", "gone")
    clock = FakeClock(START)
    Run(clock, store).start().manager.stop()
    write_config(clean_env, "r0")
    again = Run(clock, store).start()
    assert again.fetches == []
    assert store.get_session("role:gone") is None
    assert store.get_session(INDEX) == {"v": 1, "keys": ["role:r0", "session:user"]}


def test_a_person_session_is_restored_fresh_and_nobody_is_asked(
    clean_env: Path, store: SecretStore
) -> None:
    write_config(clean_env)
    clock = FakeClock(START)
    first = Run(clock, store, person=True).start()
    assert first.manager.profile_status("user").state == "needs_mfa"
    assert store.get_session("session:user") is None
    first.manager.push_mfa_code("user", "123456")
    assert first.manager.profile_status("user").state == "fresh"
    clock.advance(2 * HOUR)
    second = Run(clock, store, person=True).start()
    status = second.manager.profile_status("user")
    assert status.state == "fresh" and status.waiting_for is None
    assert second.fetches == []
    assert second.scheduler.pending()["session:user"] == START + timedelta(hours=11)


def test_unreadable_saved_sessions_are_deleted_and_persistence_stays_on(
    clean_env: Path, store: SecretStore, keyring_env: Any
) -> None:
    write_config(clean_env, "r0")
    clock = FakeClock(START)
    Run(clock, store).start().manager.stop()
    store.set_session("role:r0", {"v": 1, "node": "role:r0"})  # no fingerprint, no credentials
    raw = keyring_env.store(service=store.service, allow_prompt=False)
    raw._set("session:session:user", "{not json")  # what a damaged entry looks like
    again = Run(clock, store).start()
    assert sorted(again.fetches) == ["role:r0", "session:user"]
    assert again.persist.enabled and again.persist.dropped == 2
    assert store.get_session("session:user") is not None  # saved again, readable


def test_a_locked_keyring_turns_persistence_off_with_one_warning(
    clean_env: Path,
    store: SecretStore,
    keyring_env: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_config(clean_env, "r0", "r1")
    clock = FakeClock(START)
    Run(clock, store).start().manager.stop()
    keyring_env.secret_service.lock()
    caplog.set_level(logging.INFO, logger="credd")
    run = Run(clock, store).start()
    assert sorted(run.fetches) == ["role:r0", "role:r1", "session:user"]  # fetched fresh
    assert all(state == "fresh" for state, *_ in run.view().values())
    run.scheduler.run_for(HOUR)  # more refreshes: still no more warnings
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "persist" in r.name]
    assert len(warnings) == 1
    assert "not saved across restarts" in warnings[0].getMessage()
    assert "locked" in warnings[0].getMessage()
    info = run.manager.daemon_info()["persistence"]
    assert info["state"] == "unavailable" and "unlock" in info["note"]


class SilentBackend:
    """A keyring backend that never answers, like a Secret Service stuck behind a prompt."""

    priority = 1

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def get_password(self, _service: str, _username: str) -> str | None:
        self.calls += 1
        self.release.wait(30)
        return None

    set_password = delete_password = get_password  # type: ignore[assignment]


def test_a_store_that_never_answers_costs_one_bounded_wait(clean_env: Path) -> None:
    write_config(clean_env, "r0")
    backend = SilentBackend()
    store = SecretStore(backend, service="credd-silent", timeout=0.2)  # type: ignore[arg-type]
    try:
        run = Run(FakeClock(START), store).start()
        assert sorted(run.fetches) == ["role:r0", "session:user"]
        assert backend.calls == 1  # every later call was skipped, not queued behind it
        assert run.persist.info()["state"] == "unavailable"
        assert "did not answer" in run.persist.info()["note"]
    finally:
        backend.release.set()


def test_fingerprint_follows_every_setting_of_the_chain(clean_env: Path) -> None:
    def node(role: str = "r0", **kw: str) -> Node:
        write_config(clean_env, role, **kw)
        config = awsconfig.load()
        from credd.plan.planner import plan_for

        return plan_for(config, role, lambda _p: "totp").target

    base = fingerprint(node())
    assert fingerprint(node()) == base
    assert fingerprint(node(duration="8h")) != base  # the parent session changed
    assert fingerprint(node(extra="region = eu-west-1\n")) != base
    assert fingerprint(node(), {"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1"}) != base
    assert fingerprint(node(), {"AWS_PROFILE": "x"}) == base  # unrelated variables do not count
    assert len(base) == 64


def test_sso_tokens_are_left_to_the_shared_cache(clean_env: Path, store: SecretStore) -> None:
    write_config(clean_env)
    profile = awsconfig.load().managed["user"]
    token = Node("sso-token:s", Kind.SSO_TOKEN, profile, None, "", False, HOUR)
    persist = Persist(store, clock=FakeClock(START))
    persist.save(token, Credentials("x" * 20, "y" * 40, "z", START + timedelta(hours=1)), START)
    assert store.get_session("sso-token:s") is None and persist.saved == 0
