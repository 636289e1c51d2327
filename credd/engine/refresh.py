"""Refreshing nodes: one refresh at a time per node, its outcome committed, the next one scheduled.

Data flows one way: before a node's source is called, its parent's credentials are resolved
here (held and servable, or the parent's own refresh started and waited for), and handed to
``source.fetch(parent)``; a source never calls back. A parent that cannot give credentials
fails the child with the parent's error, without calling the child's source.

The refresh runs on its own thread (a role waiting on its MFA session can never starve a
bounded pool); everyone who asks meanwhile shares its future. Its outcome is committed under the
shared side of the table's commit lock, and only while its entry is still the current one; a
reload that replaced the entry meanwhile makes the outcome stale: dropped unseen.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta

from credd import metrics
from credd.engine import state
from credd.engine.entry import Entry, Snapshot
from credd.engine.persist import Persist
from credd.engine.scheduler import RefreshPolicy, Scheduler
from credd.engine.state import Failure, State
from credd.engine.table import Table
from credd.errors import CreddError, LoginRequired, MfaCodeRejected, NeedsMfa, NotReady
from credd.files.credentials import CredentialsFileWriter, SectionWrite
from credd.models import Credentials
from credd.sources import ParentRefused
from credd.sources.mfa import STEP

log = logging.getLogger(__name__)

#: how long a child waits for its parent's refresh (a person may be typing a code meanwhile)
WAIT_FOR_PARENT = 2 * STEP + 60.0
#: a value that is either credentials or why there are none
Obtained = Credentials | CreddError


class Refresher:
    """Starts, runs, commits and schedules the refreshes of the table's nodes."""

    def __init__(
        self,
        table: Table,
        *,
        scheduler: Scheduler,
        clock: Callable[[], datetime],
        policy: RefreshPolicy,
        rng: random.Random,
        writer: CredentialsFileWriter | None,
        persist: Persist | None,
    ) -> None:
        self.table = table
        self.scheduler = scheduler
        self.now = clock
        self.policy = policy
        self.rng = rng
        self.writer = writer
        self.persist = persist
        self.running = False

    # -- asking for credentials ---------------------------------------------------------------

    def obtain(
        self, entry: Entry, reason: str, *, timeout: float, slow: Callable[[], CreddError]
    ) -> Obtained | None:
        """The node's credentials when usable; else its refresh, started unless parked, waited
        for (``slow()`` when it outlasts ``timeout``). ``None``: a reload replaced the entry
        meanwhile (ask its successor)."""
        snap = entry.snap
        if self.usable(entry, snap):
            assert snap.creds is not None
            return snap.creds
        inflight = self.start_unless_parked(entry, reason)
        if inflight is None:
            return unavailable(entry, entry.snap)
        try:
            inflight.result(timeout=timeout)
        except FutureTimeout:
            return slow()
        except CreddError:
            pass  # recorded on the entry; reported below
        if not self.table.current(entry):
            return None
        snap = entry.snap
        if self.usable(entry, snap):
            assert snap.creds is not None
            return snap.creds
        return unavailable(entry, snap)

    def node_credentials(self, key: str) -> Obtained:
        """A parent's credentials for a child's refresh; never restarts a parked parent.

        A reload may have removed the parent while the child's refresh ran: that child is
        stale (its outcome is dropped), and is told so rather than failing on a lookup."""
        entry = self.table.entries.get(key)
        obtained = None
        if entry is not None:
            name = entry.node.profile.name
            obtained = self.obtain(
                entry,
                "needed by a role",
                timeout=WAIT_FOR_PARENT,
                slow=lambda: NotReady(f"{name!r} is still refreshing"),
            )
        if obtained is None:
            return NotReady(f"{key} was removed by a reload", hint="try again in a moment")
        return obtained

    def usable(self, entry: Entry, snap: Snapshot) -> bool:
        """Held, servable, and not withdrawn by its source."""
        creds = snap.creds
        if creds is None or not self.servable(creds, snap.last_refresh_at):
            return False
        return still_valid(entry, creds)

    def servable(self, creds: Credentials, issued: datetime | None) -> bool:
        lifetime = creds.expiration - issued if creds.expiration and issued else None
        return self.policy.servable(creds.expiration, self.now(), lifetime)

    # -- starting a refresh -----------------------------------------------------------------

    def start_unless_parked(self, entry: Entry, reason: str) -> Future[Credentials] | None:
        """The running refresh, or a new one, unless the node waits for a person, holds a
        named permanent error, or backs off until a time still ahead (no storm of calls)."""
        inflight, snap = entry.inflight, entry.snap
        if inflight is not None:
            return inflight
        if not state.may_start(snap.state, snap.next_refresh_at, self.now()):
            return None
        return self.start(entry, reason)

    def start(self, entry: Entry, reason: str) -> Future[Credentials]:
        """Refresh ``entry`` now, or join the refresh already running (single flight)."""
        future, started = entry.begin()
        if started:
            log.info("%s: refreshing (%s)", entry.key, reason)
            threading.Thread(
                target=self._run,
                args=(entry, future),
                daemon=True,
                name=f"credd-refresh-{entry.key}",
            ).start()
        return future

    def wait(self, future: Future[Credentials]) -> None:
        with contextlib.suppress(FutureTimeout, CreddError):
            future.result(timeout=WAIT_FOR_PARENT)

    # -- running one ------------------------------------------------------------------------

    def _run(self, entry: Entry, future: Future[Credentials]) -> None:
        outcome, failure = self._outcome(entry)
        with self.table.commit.shared():
            if not self.table.current(entry):
                # Started before a reload replaced the node: its result is the old settings'.
                log.info("%s: outcome of a refresh started before a reload dropped", entry.key)
                outcome = NotReady(
                    f"the settings of {entry.node.profile.name!r} changed during the refresh",
                    hint="try again in a moment",
                )
            elif failure is not None:
                self._failed(entry, failure)
            else:
                assert isinstance(outcome, Credentials)
                issued = self._succeeded(entry, outcome)
                # Saved before the refresh counts as done, so "fresh" in status means "saved"
                # (the new credentials are served meanwhile; the store's calls are bounded).
                self._save(entry, outcome, issued)
        entry.end()
        if isinstance(outcome, CreddError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def _outcome(self, entry: Entry) -> tuple[Obtained, Failure | None]:
        """Resolve the parent, then fetch; any failure as a :class:`~state.Failure`."""
        try:
            parent = self._parent(entry)
            if isinstance(parent, CreddError):
                return parent, Failure(parent, parent.transient, from_parent=True)
            try:
                return entry.source.fetch(parent), None
            except ParentRefused as refused:
                again = self._parent(entry)  # the source withdrew it: fetched anew
                if isinstance(again, CreddError):
                    return again, Failure(again, again.transient, from_parent=True)
                if again is None or again == parent:
                    raise refused.error from None
                log.info("%s: the parent's value was renewed meanwhile; using it", entry.key)
                try:
                    return entry.source.fetch(again), None
                except ParentRefused as twice:
                    raise twice.error from None
        except CreddError as exc:
            return exc, self._failure(entry, exc)
        except Exception as exc:  # a bug or an unexpected library error: never leak its text
            log.error("%s: unexpected %s during refresh", entry.key, type(exc).__name__)
            log.debug("%s: traceback of the unexpected error", entry.key, exc_info=True)
            error = CreddError(
                f"unexpected {type(exc).__name__} while refreshing {entry.node.profile.name!r}",
                hint="see the daemon's log; credd retries with backoff",
            )
            return error, Failure(error, transient=True)

    def _parent(self, entry: Entry) -> Credentials | CreddError | None:
        parent = entry.node.parent
        return self.node_credentials(parent.key) if parent is not None else None

    @staticmethod
    def _failure(entry: Entry, exc: CreddError) -> Failure:
        # Whether the code source needs nobody matters only for a rejected code; unknown (the
        # keyring is down) counts as needing a person.
        rejected = isinstance(exc, MfaCodeRejected)
        unattended = safe_flag(lambda: entry.source.unattended) if rejected else True
        return Failure(exc, exc.transient, unattended=unattended)

    # -- committing the outcome -------------------------------------------------------------

    def _succeeded(self, entry: Entry, creds: Credentials) -> datetime:
        now = self.now()
        entry.apply(state.succeeded(), creds=creds, last_refresh_at=now)
        metrics.record_refresh(entry.node.profile.name, "success")
        self.write_files(entry, creds)
        if creds.expiration is not None and self.running:
            self.schedule_next(entry, now, creds.expiration)
        for child_key in entry.children:  # roles that were waiting on this session
            child = self.table.entries.get(child_key)
            if child is not None and child.snap.blocked_by_parent and self.running:
                self.schedule(child, now)
        return now

    def _failed(self, entry: Entry, failure: Failure) -> None:
        snap, exc = entry.snap, failure.error
        change = state.failed(
            failure,
            failures=snap.failures,
            mfa_failures=snap.mfa_failures,
            now=self.now(),
            names=state.Names(entry.node.profile.name, entry.node.base),
            backoff=lambda n: self.policy.backoff(n, rng=self.rng),
            mfa_retries=self.policy.mfa_retries,
        )
        retry = change.retry_at is not None and self.running
        entry.apply(change, **({} if retry else {"next_refresh_at": None}))
        metrics.record_refresh(entry.node.profile.name, change.state, exc.code)
        log.warning("%s: refresh failed: %s", entry.key, exc)
        # Where it came from, for whoever debugs (credd's exceptions carry no secrets).
        log.debug("%s: refresh failure traceback", entry.key, exc_info=exc)
        if retry and change.retry_at is not None:
            self.schedule(entry, change.retry_at)

    def write_files(self, entry: Entry, creds: Credentials) -> None:
        if self.writer is None:
            return
        writes = [
            SectionWrite(p.file_profile, p.name, creds, {"region": p.region} if p.region else {})
            for p in (r.plan.target.profile for r in self.table.served_by(entry.key) if r.plan)
            if p.file_profile
        ]
        if not writes:
            return
        try:
            self.writer.write(writes)
        except CreddError as exc:
            log.warning("%s: credentials file not written: %s", entry.key, exc)
            entry.commit(file_error=exc)
        else:
            if entry.snap.file_error is not None:
                entry.commit(file_error=None)

    def _save(self, entry: Entry, creds: Credentials, issued: datetime) -> None:
        if self.persist is None or not self.table.current(entry):
            return  # persistence off, or the node was replaced by a reload meanwhile
        try:
            self.persist.save(entry.node, creds, issued)
        except Exception as exc:  # never let saving break a refresh; never leak its text
            log.error("%s: unexpected %s while saving the session", entry.key, type(exc).__name__)

    # -- the schedule -----------------------------------------------------------------------

    def schedule(self, entry: Entry, at: datetime) -> None:
        with self.table.commit.shared():
            if not self.table.current(entry):
                return  # replaced by a reload: its successor owns the node's job
            entry.commit(next_refresh_at=at)
            self.scheduler.schedule(entry.key, at, functools.partial(self._job, entry))

    def schedule_first(self, entry: Entry) -> None:
        """A node's first job: now, or ahead of the expiry of a restored session."""
        snap = entry.snap
        creds, issued = snap.creds, snap.last_refresh_at
        if snap.state is State.FRESH and creds is not None and creds.expiration and issued:
            self.schedule_next(entry, issued, creds.expiration)
        else:
            self.schedule(entry, self.now())

    def schedule_next(self, entry: Entry, issued: datetime, expires: datetime) -> None:
        unattended = safe_flag(lambda: entry.source.unattended)
        at = self.policy.refresh_at(issued, expires, unattended=unattended, rng=self.rng)
        self.schedule(entry, max(at, self.now() + timedelta(seconds=1)))

    def _job(self, entry: Entry) -> None:
        if not self.table.current(entry):
            return  # a job of an entry a reload replaced
        entry.commit(next_refresh_at=None)
        with contextlib.suppress(CreddError):  # the outcome is recorded on the entry
            self.start(entry, "scheduled").result()


def unavailable(entry: Entry, snap: Snapshot) -> CreddError:
    """Why a node has nothing to serve, as the error its callers get."""
    if snap.error is not None:
        return snap.error
    name = entry.node.profile.name
    if snap.state is State.NEEDS_MFA:
        hint = snap.waiting_for or f"run: credd mfa {entry.node.base}"
        return NeedsMfa(f"profile {name!r} needs an MFA code", hint=hint)
    if snap.state is State.LOGIN_REQUIRED:
        return LoginRequired(
            f"profile {name!r} needs an IAM Identity Center login",
            hint=snap.waiting_for or f"run: credd login {name}",
        )
    return NotReady(f"no credentials for {name!r} yet", hint="try again in a moment")


def still_valid(entry: Entry, creds: Credentials) -> bool:
    """False when the node's source withdrew the value it holds (``Source.still_valid``: an SSO
    token the portal refused or the shared cache replaced); unknown counts as valid."""
    check = getattr(entry.source, "still_valid", None)
    if check is None:
        return True
    try:
        return bool(check(creds))
    except Exception:  # a check that fails withdraws nothing; the node's schedule reports it
        return True


def safe_flag(fn: Callable[[], bool]) -> bool:
    """``source.unattended``; unknown (the keyring is down) counts as needing a person, whose
    refresh is asked for earlier: the safe side."""
    try:
        return fn()
    except CreddError:
        return False
