"""A node's state and the pure rules that move it.

:class:`State` names what a node is doing; its values are the strings ``status`` shows and the
socket sends (:data:`credd.models.STATES`). The transitions are pure functions of the outcome of
a refresh, the node's counters and the clock: no locks, no threads, no I/O. The manager applies
what they return (:class:`Change`) to its entry; ``tests/unit/test_engine_state.py`` pins them
with a table.

- success: ``fresh``, counters reset;
- a person must act (:class:`~credd.errors.NeedsPerson`): ``needs_mfa`` / ``login_required``,
  parked (a login may say when to look at the shared cache again);
- the parent could not give credentials: its hint, backing off only when its error is transient;
- an unattended MFA code AWS rejected: retried once at the next code step, then ``error``;
- a code a person typed, rejected: ``needs_mfa`` again;
- a transient failure (network, throttling, 5xx, a locked keyring): ``backoff``, exponential;
- anything else: ``error``, parked until ``credd refresh`` (or a fix and a reload).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from credd.errors import (
    CreddError,
    LoginRequired,
    MfaCodeRejected,
    NeedsPerson,
    SecretStoreError,
    SecretStoreLocked,
)

#: how long an unattended code source waits for the next code after AWS rejected one
#: one TOTP step (credd.sources.mfa.STEP; kept free of its imports)
CODE_STEP = timedelta(seconds=30)


class State(str, Enum):
    """A node's state; each value is the string on the wire (``models.STATES``, same order).

    A ``str``: it compares, hashes, formats and serialises as its value (``enum.StrEnum`` from
    Python 3.11, spelled out for 3.10)."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(self, spec)

    PENDING = "pending"  # no credentials yet; a fetch is scheduled or running
    FRESH = "fresh"  # credentials held with plenty of time left
    REFRESHING = "refreshing"  # a refresh is running (only ever shown, never stored)
    NEEDS_MFA = "needs_mfa"  # parked: a person must give an MFA code
    LOGIN_REQUIRED = "login_required"  # parked: an IAM Identity Center login is needed
    BACKOFF = "backoff"  # a transient failure; retried with backoff
    ERROR = "error"  # parked: needs a fix; never retried in a loop


#: states a request never restarts: a person must act, or a named permanent error
PARKED = frozenset({State.ERROR, State.NEEDS_MFA, State.LOGIN_REQUIRED})
#: states in which a person is asked for something
PERSON = frozenset({State.NEEDS_MFA, State.LOGIN_REQUIRED})


@dataclass(frozen=True)
class Failure:
    """What a failed refresh tells the transition: the error and where it came from."""

    error: CreddError
    transient: bool  # retry with backoff (the error's own flag, or an unexpected exception)
    from_parent: bool = False  # the parent node could not give credentials
    unattended: bool = True  # the node's code source needs nobody (TOTP, mfa_process)


@dataclass(frozen=True)
class Names:
    """What the messages of a transition name: the profile, and its base (``credd mfa BASE``)."""

    profile: str
    base: str


@dataclass(frozen=True)
class Change:
    """A node's new state after a refresh's outcome; the manager stores every field."""

    state: State
    error: CreddError | None  # shown in status and raised to callers (None: nothing to show)
    waiting_for: str | None
    failures: int
    mfa_failures: int
    blocked_by_parent: bool
    retry_at: datetime | None  # when to try again (None: only when asked)


def succeeded() -> Change:
    """A refresh gave credentials: fresh, every counter reset, nothing awaited."""
    return Change(State.FRESH, None, None, 0, 0, False, None)


def failed(
    failure: Failure,
    *,
    failures: int,
    mfa_failures: int,
    now: datetime,
    names: Names,
    backoff: Callable[[int], timedelta],
    mfa_retries: int,
) -> Change:
    """The node's state after ``failure``; ``failures``/``mfa_failures`` are its counters so far,
    ``backoff(n)`` the delay before retry ``n`` (1-based)."""
    exc = failure.error

    def change(state: State, waiting: str | None, retry_at: datetime | None = None) -> Change:
        return Change(state, exc, waiting, failures, mfa_failures, failure.from_parent, retry_at)

    if isinstance(exc, NeedsPerson):
        login = isinstance(exc, LoginRequired)
        # A login elsewhere (aws sso login) lands in the shared cache: look again, locally.
        recheck = exc.recheck_after if isinstance(exc, LoginRequired) else None
        return Change(
            State.LOGIN_REQUIRED if login else State.NEEDS_MFA,
            None,
            exc.hint or "a person",
            failures,
            mfa_failures,
            failure.from_parent,
            now + recheck if recheck is not None else None,
        )
    if failure.from_parent and not failure.transient:
        return change(State.ERROR, exc.hint)
    if failure.from_parent:
        failures += 1
        return change(State.BACKOFF, exc.hint, now + backoff(failures))
    if isinstance(exc, MfaCodeRejected) and failure.unattended:
        mfa_failures += 1
        if mfa_failures <= mfa_retries:
            return change(State.BACKOFF, None, now + CODE_STEP)
        return change(State.ERROR, f"a fix of the MFA setup, then: credd refresh {names.profile}")
    if isinstance(exc, MfaCodeRejected):
        return change(State.NEEDS_MFA, f"a correct MFA code: run credd mfa {names.base}")
    if failure.transient:
        failures += 1
        return change(State.BACKOFF, retry_reason(exc), now + backoff(failures))
    return change(State.ERROR, exc.hint)


def retry_reason(exc: CreddError) -> str | None:
    """What a node backing off waits for, for ``status`` (``None``: just the next retry)."""
    if isinstance(exc, SecretStoreLocked):
        return "the keyring to be unlocked (by its owner's login); retried automatically"
    if isinstance(exc, SecretStoreError):
        return "the keyring (Secret Service) to answer again; retried automatically"
    return None


def may_start(state: State, retry_at: datetime | None, now: datetime) -> bool:
    """Whether a request may start a refresh of a node in ``state``: never a parked one, nor
    one backing off until a time still ahead (no storm of calls)."""
    if state in PARKED:
        return False
    return not (state is State.BACKOFF and retry_at is not None and retry_at > now)


def shown(state: State, *, refreshing: bool) -> State:
    """The state ``status`` shows: ``refreshing`` while a refresh runs."""
    return State.REFRESHING if refreshing else state
