"""The engine's state rules (credd/engine/state.py), pinned by a table: pure functions of an
outcome, the node's counters and the clock; no manager, no threads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from credd.clock import UTC
from credd.engine.state import (
    CODE_STEP,
    PARKED,
    Failure,
    Names,
    State,
    failed,
    may_start,
    shown,
    succeeded,
)
from credd.errors import (
    AwsAccessDenied,
    AwsThrottled,
    AwsUnreachable,
    CreddError,
    LoginRequired,
    MfaCodeRejected,
    NeedsMfa,
    SecretMissing,
    SecretStoreError,
    SecretStoreLocked,
)
from credd.models import STATES
from credd.sources import mfa

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NAMES = Names(profile="admin", base="user")


def backoff(n: int) -> timedelta:
    return timedelta(seconds=10 * n)


def login(recheck: timedelta | None) -> LoginRequired:
    exc = LoginRequired("log in", hint="run: credd login dev")
    exc.recheck_after = recheck
    return exc


MFA_FIX = "a fix of the MFA setup, then: credd refresh admin"
MFA_AGAIN = "a correct MFA code: run credd mfa user"
KEYRING = "the keyring to be unlocked (by its owner's login); retried automatically"
STORE = "the keyring (Secret Service) to answer again; retried automatically"

# error, from_parent, unattended, (failures, mfa_failures) before ->
#   state, error kept, waiting_for, (failures, mfa_failures) after, retry in (None: no retry)
TABLE: list[tuple[Any, ...]] = [
    # a person must act: parked, nothing kept as the error, the hint is what is awaited
    (NeedsMfa("code", hint="run: credd mfa user"), False, False, (0, 0),
     State.NEEDS_MFA, False, "run: credd mfa user", (0, 0), None),
    (NeedsMfa("code"), False, True, (2, 1),
     State.NEEDS_MFA, False, "a person", (2, 1), None),
    (login(None), False, True, (0, 0),
     State.LOGIN_REQUIRED, False, "run: credd login dev", (0, 0), None),
    (login(timedelta(seconds=60)), False, True, (0, 0),
     State.LOGIN_REQUIRED, False, "run: credd login dev", (0, 0), timedelta(seconds=60)),
    # the parent's person need reaches the child as its own
    (login(timedelta(seconds=60)), True, True, (0, 0),
     State.LOGIN_REQUIRED, False, "run: credd login dev", (0, 0), timedelta(seconds=60)),
    # the parent failed: its hint; backoff only when its error is transient
    (AwsUnreachable("down", hint="check the network"), True, True, (0, 0),
     State.BACKOFF, True, "check the network", (1, 0), timedelta(seconds=10)),
    (AwsUnreachable("down", hint="check the network"), True, True, (3, 0),
     State.BACKOFF, True, "check the network", (4, 0), timedelta(seconds=40)),
    (SecretMissing("no keys", hint="credd keys set user"), True, True, (0, 0),
     State.ERROR, True, "credd keys set user", (0, 0), None),
    # an unattended code AWS rejected: once more at the next code step, then parked
    (MfaCodeRejected("bad code"), False, True, (0, 0),
     State.BACKOFF, True, None, (0, 1), CODE_STEP),
    (MfaCodeRejected("bad code"), False, True, (0, 1),
     State.ERROR, True, MFA_FIX, (0, 2), None),
    # a code a person typed, rejected: ask again
    (MfaCodeRejected("bad code"), False, False, (0, 0),
     State.NEEDS_MFA, True, MFA_AGAIN, (0, 0), None),
    # transient: backoff, exponential in the failures so far
    (AwsThrottled("slow down"), False, True, (0, 0),
     State.BACKOFF, True, None, (1, 0), timedelta(seconds=10)),
    (AwsThrottled("slow down"), False, True, (4, 1),
     State.BACKOFF, True, None, (5, 1), timedelta(seconds=50)),
    (SecretStoreLocked("locked"), False, True, (0, 0),
     State.BACKOFF, True, KEYRING, (1, 0), timedelta(seconds=10)),
    (SecretStoreError("no answer"), False, True, (0, 0),
     State.BACKOFF, True, STORE, (1, 0), timedelta(seconds=10)),
    # anything else: parked with the error's hint
    (AwsAccessDenied("denied", hint="check the role's trust policy"), False, True, (2, 0),
     State.ERROR, True, "check the role's trust policy", (2, 0), None),
    (SecretMissing("no keys", hint="credd keys set user"), False, True, (0, 0),
     State.ERROR, True, "credd keys set user", (0, 0), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("exc", "from_parent", "unattended", "before", "state", "kept", "waiting", "after", "retry"),
    TABLE,
    ids=[f"{type(r[0]).__name__}-{'parent' if r[1] else 'own'}-{i}" for i, r in enumerate(TABLE)],
)
def test_failed(
    exc: CreddError,
    from_parent: bool,
    unattended: bool,
    before: tuple[int, int],
    state: State,
    kept: bool,
    waiting: str | None,
    after: tuple[int, int],
    retry: timedelta | None,
) -> None:
    change = failed(
        Failure(exc, exc.transient, from_parent=from_parent, unattended=unattended),
        failures=before[0],
        mfa_failures=before[1],
        now=NOW,
        names=NAMES,
        backoff=backoff,
        mfa_retries=1,
    )
    assert change.state is state
    assert change.error is (exc if kept else None)
    assert change.waiting_for == waiting
    assert (change.failures, change.mfa_failures) == after
    assert change.retry_at == (NOW + retry if retry is not None else None)
    assert change.blocked_by_parent is from_parent


def test_an_unexpected_exception_counts_as_transient() -> None:
    """The manager wraps a bug as a plain CreddError marked transient: backoff, not error."""
    exc = CreddError("unexpected ValueError while refreshing 'admin'", hint="see the log")
    change = failed(
        Failure(exc, transient=True),
        failures=0,
        mfa_failures=0,
        now=NOW,
        names=NAMES,
        backoff=backoff,
        mfa_retries=1,
    )
    assert (change.state, change.error, change.retry_at) == (
        State.BACKOFF,
        exc,
        NOW + timedelta(seconds=10),
    )


def test_success_resets_everything() -> None:
    change = succeeded()
    assert change.state is State.FRESH
    assert (change.error, change.waiting_for, change.retry_at) == (None, None, None)
    assert (change.failures, change.mfa_failures, change.blocked_by_parent) == (0, 0, False)


LATER, EARLIER = NOW + timedelta(seconds=5), NOW - timedelta(seconds=5)


@pytest.mark.parametrize(
    ("state", "retry_at", "starts"),
    [
        (State.PENDING, None, True),
        (State.FRESH, LATER, True),
        (State.BACKOFF, None, True),
        (State.BACKOFF, EARLIER, True),
        (State.BACKOFF, NOW, True),
        (State.BACKOFF, LATER, False),  # no storm of calls while backing off
        (State.NEEDS_MFA, None, False),
        (State.LOGIN_REQUIRED, EARLIER, False),
        (State.ERROR, None, False),
    ],
)
def test_a_request_starts_a_refresh_unless_parked(
    state: State, retry_at: datetime | None, starts: bool
) -> None:
    assert may_start(state, retry_at, NOW) is starts


def test_states_are_the_wire_strings() -> None:
    assert tuple(State) == STATES
    assert [s.value for s in State] == list(STATES)
    assert {"error", "needs_mfa", "login_required"} == PARKED
    assert f"{State.NEEDS_MFA}" == str(State.NEEDS_MFA) == "needs_mfa"
    assert shown(State.FRESH, refreshing=True) is State.REFRESHING
    assert shown(State.BACKOFF, refreshing=False) is State.BACKOFF


def test_the_code_step_is_the_totp_step() -> None:
    assert timedelta(seconds=mfa.STEP) == CODE_STEP
