"""Status apart from state (credd/engine/status.py): rebuilt only where a node changed, served as
JSON text whose relative times are filled per request, exactly as ``to_json(now)`` would say."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credd.clock import UTC
from credd.engine.status import Fragment
from credd.errors import AwsUnreachable
from credd.models import ProfileStatus
from credd.server.api import Api
from credd.server.http import Request
from credd.testing.clock import FakeClock
from tests.unit.test_manager import HOUR, ScriptedSource, make

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def dumped(status: ProfileStatus, now: datetime) -> str:
    return json.dumps(status.to_json(now), separators=(",", ":"))


def render(fragment: Fragment, now: datetime) -> str:
    return fragment.render((now - EPOCH) // timedelta(microseconds=1))


FULL = ProfileStatus(
    name="role-ünïcode",
    kind="assume-role",
    state="backoff",
    expires_at=NOW + timedelta(minutes=50, microseconds=7),
    next_refresh_at=NOW + timedelta(minutes=3, seconds=2, microseconds=999999),
    waiting_for='the "keyring" \\ to answer',
    error={"code": "aws_unreachable", "message": "down\nhard", "hint": None},
    mfa_source="person",
    file_profile="role",
    last_refresh_at=NOW - timedelta(hours=1),
    key_id="...ABCD",
    plan="MFA session of 'user' (GetSessionToken, 12 h).",
    longest={"seconds": 3600, "why": "role chaining caps it at 1 h"},
)


@pytest.mark.parametrize(
    "status",
    [
        FULL,
        ProfileStatus(name="bare", kind="unknown", state="error"),
        ProfileStatus(  # expired, and a refresh that is overdue: negative counts
            name="late",
            kind="session-token",
            state="refreshing",
            expires_at=NOW - timedelta(seconds=90, microseconds=1),
            next_refresh_at=NOW - timedelta(microseconds=500000),
        ),
    ],
    ids=["full", "bare", "late"],
)
def test_a_fragment_renders_what_to_json_says_byte_for_byte(status: ProfileStatus) -> None:
    fragment = Fragment(status)
    for later in (0, 1, 499999, 500000, 999999, 10**6, 61 * 10**6 + 3):
        now = NOW + timedelta(microseconds=later)
        assert render(fragment, now) == dumped(status, now)


@settings(max_examples=200, deadline=None, derandomize=True)  # the same cases every run
@given(
    expires=st.integers(-(10**12), 10**12),
    refresh=st.integers(-(10**12), 10**12),
    now=st.integers(0, 10**8),
)
def test_relative_times_match_to_json_at_every_microsecond(
    expires: int, refresh: int, now: int
) -> None:
    status = ProfileStatus(
        name="p",
        kind="k",
        state="fresh",
        expires_at=NOW + timedelta(microseconds=expires),
        next_refresh_at=NOW + timedelta(microseconds=refresh),
    )
    at = NOW + timedelta(microseconds=now)
    assert render(Fragment(status), at) == dumped(status, at)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_only_the_profile_whose_node_changed_is_rebuilt(clock: FakeClock) -> None:
    sources = {f"p{i}": ScriptedSource(clock, 12 * HOUR) for i in range(5)}
    manager, sched = make(clock, sources)
    sched.run_for(1)
    first = {s.name: s for s in manager.status()}
    assert all(s.state == "fresh" for s in first.values())
    assert {s.name: s for s in manager.status()} == first  # nothing changed: the same list

    changes = manager.changes
    sources["p3"].failures.append(AwsUnreachable("down"))
    manager.refresh("p3")
    assert manager.changes > changes
    second = {s.name: s for s in manager.status()}
    assert second["p3"].state == "backoff"
    for name in ("p0", "p1", "p2", "p4"):
        assert second[name] is first[name], name  # not rebuilt
    assert second["p3"] is not first["p3"]
    manager.stop()


def test_status_json_is_the_status_as_to_json_says(clock: FakeClock) -> None:
    sources = {f"p{i}": ScriptedSource(clock, 12 * HOUR) for i in range(3)}
    sources["p1"].failures.append(AwsUnreachable("down", hint="check the network"))
    manager, sched = make(clock, sources)
    sched.run_for(1)
    for step in (0, 1, 59, 3600):
        clock.advance(step)
        now = clock.now()
        expected = [s.to_json(now) for s in manager.status()]
        assert manager.status_json() == json.dumps(expected, separators=(",", ":")).encode()
    manager.stop()


def test_the_api_serves_the_same_status_and_adds_the_daemons_facts(clock: FakeClock) -> None:
    manager, sched = make(clock, {"a": ScriptedSource(clock, HOUR)})
    sched.run_for(1)
    facts = {"socket": "/run/credd.sock", "endpoint": {"state": "off"}}
    response = Api(manager, clock, info=lambda: facts).handle(Request("GET", "/v1/status"))
    body = json.loads(response.body)
    assert list(body) == ["version", "daemon", "profiles"]
    assert body["profiles"] == [s.to_json(clock.now()) for s in manager.status()]
    assert body["daemon"] == {**manager.daemon_info(), **facts}
    assert body["daemon"]["version"] and body["daemon"]["socket"] == "/run/credd.sock"
    manager.stop()
