"""Data flows one way (credd/engine/refresh.py): the engine resolves a node's parent credentials
before it calls ``source.fetch(parent)``; a source never calls back. The real manager, planner
and config loader; the sources are doubles that record what they were handed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from credd.aws import config as awsconfig
from credd.engine.manager import Manager
from credd.engine.scheduler import RefreshPolicy
from credd.errors import AwsUnreachable, LoginRequired, NeedsMfa
from credd.models import Credentials
from credd.plan.planner import Node
from credd.sources import ParentRefused
from credd.testing.clock import FakeClock
from credd.testing.scheduler import ManualScheduler
from tests.integration.test_persist import write_config


class Recording:
    """A source double: new credentials per fetch; records the parent each fetch was handed."""

    def __init__(self, node: Node, clock: FakeClock) -> None:
        self.kind = node.kind
        self.node = node
        self.clock = clock
        self.handed: list[Credentials | None] = []
        self.failures: list[Exception] = []
        self.refuse: set[str] = set()  # parents' key ids this source says AWS refused

    unattended = True
    mfa_source = None

    def push_code(self, code: str) -> None:
        pass

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        self.handed.append(parent)
        if self.failures:
            raise self.failures.pop(0)
        if parent is not None and parent.access_key_id in self.refuse:
            raise ParentRefused(LoginRequired("refused", hint="run: credd login r0"))
        n = len(self.handed)
        return Credentials(
            f"ASIA{self.node.key.replace(':', '').upper()[:8]}{n:08d}",
            "s" * 40,
            "t" * 120,
            self.clock.now() + timedelta(seconds=self.node.duration),
        )


@pytest.fixture
def run(clean_env: Path) -> tuple[Manager, ManualScheduler, dict[str, Recording]]:
    write_config(clean_env, "r0")
    clock = FakeClock()
    sources: dict[str, Recording] = {}

    def factory(node: Node) -> Recording:
        sources[node.key] = Recording(node, clock)
        return sources[node.key]

    scheduler = ManualScheduler(clock)
    manager = Manager(
        source_factory=factory,
        scheduler=scheduler,
        clock=clock,
        policy=RefreshPolicy(jitter=0.0),
        code_source_of=lambda _p: "totp",
    )
    manager.load(awsconfig.load())
    return manager, scheduler, sources


def test_a_child_is_handed_its_parents_current_credentials(
    run: tuple[Manager, ManualScheduler, dict[str, Recording]],
) -> None:
    manager, scheduler, sources = run
    manager.start()
    scheduler.run_for(0)
    session, role = sources["session:user"], sources["role:r0"]
    assert session.handed == [None]  # a node without a parent gets None
    assert role.handed == [manager.credentials("user")]
    manager.refresh("r0")  # the held session is reused: no second session fetch
    assert len(session.handed) == 1
    assert role.handed[-1] == manager.credentials("user")
    manager.stop()


def test_a_parked_parent_fails_the_child_without_calling_its_source(
    run: tuple[Manager, ManualScheduler, dict[str, Recording]],
) -> None:
    manager, scheduler, sources = run
    sources["session:user"].failures.append(NeedsMfa("code", hint="run: credd mfa user"))
    manager.start()
    scheduler.run_for(0)
    assert sources["role:r0"].handed == []
    status = manager.profile_status("r0")
    assert (status.state, status.waiting_for) == ("needs_mfa", "run: credd mfa user")
    with pytest.raises(NeedsMfa):
        manager.credentials("r0")
    manager.stop()


def test_a_transient_parent_failure_backs_the_child_off_and_the_session_wakes_it(
    run: tuple[Manager, ManualScheduler, dict[str, Recording]],
) -> None:
    manager, scheduler, sources = run
    sources["session:user"].failures.append(AwsUnreachable("down", hint="check the network"))
    manager.start()
    scheduler.run_for(0)
    assert manager.profile_status("r0").state == "backoff"
    assert sources["role:r0"].handed == []
    scheduler.run_for(60)  # the session's retry succeeds and wakes the role
    assert manager.profile_status("r0").state == "fresh"
    assert sources["role:r0"].handed == [manager.credentials("user")]
    manager.stop()


def test_a_refused_parent_is_resolved_again_once(
    run: tuple[Manager, ManualScheduler, dict[str, Recording]],
) -> None:
    """``ParentRefused``: the parent is fetched anew (its source withdrew the value) and the
    child's fetch runs once more with the new value; refused again, its error is recorded."""
    manager, scheduler, sources = run
    manager.start()
    scheduler.run_for(0)
    session, role = sources["session:user"], sources["role:r0"]
    first = manager.credentials("user")
    role.refuse.add(first.access_key_id)
    session.still_valid = lambda creds: creds.access_key_id not in role.refuse  # type: ignore[attr-defined]
    manager.refresh("r0")
    second = manager.credentials("user")
    assert second != first
    assert role.handed[-2:] == [first, second]
    assert manager.profile_status("r0").state == "fresh"

    role.refuse.add(second.access_key_id)  # and the renewed value too
    session.failures.append(LoginRequired("log in", hint="run: credd login user"))
    manager.refresh("r0")
    status = manager.profile_status("r0")
    assert (status.state, status.waiting_for) == ("login_required", "run: credd login user")
    assert role.handed[-1] == second  # never handed a value the parent could not give
    manager.stop()

