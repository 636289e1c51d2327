"""The daemon's state: plan nodes refreshed on schedule, profiles served on demand.

Each managed profile has a :class:`~credd.plan.planner.Plan`: a chain of nodes (an MFA session, role
sessions). Nodes are shared: twelve roles behind one IAM user use one ``session:USER`` node, so one
MFA code feeds them all. Per node (:mod:`credd.engine.refresh`):

- one refresh at a time, on its own thread; everyone who asks meanwhile (the scheduler, 64 clients,
  a child role, a person pushing a code) shares it: one STS call;
- its parent's credentials are resolved before its source is called (data flows one way);
- success: served at once, written to the credentials file for the profiles it serves, next
  refresh scheduled ahead of expiry (:class:`~credd.engine.scheduler.RefreshPolicy`), children
  waiting on it woken;
- a failure moves the node by the pure rules of :mod:`credd.engine.state`: backoff while held
  credentials are still served, or parked until a person acts (``credd mfa`` / ``credd refresh``);
- a request that finds nothing servable and nothing parked starts the refresh itself (single
  flight) rather than wait for the schedule, which a suspend or a clock change can leave behind;
  :meth:`Manager.wake` runs every overdue job at once after such a jump.

Reloads replace entries: every :class:`~credd.engine.entry.Entry` has its own ``generation``, and
an outcome (or a scheduled job) of an entry that is no longer the current one for its key is
dropped unseen: it writes nothing (file, saved session, schedule, children) and serves nothing.
A reload's swap and a refresh's outcome happen one after the other, never interleaved; outcomes
share the lock with each other (:mod:`credd.engine.rwlock`), so their file writes still batch.
What ``status`` shows is built apart (:mod:`credd.engine.status`), only where something changed.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import Any

from credd import __version__
from credd.aws.config import AwsConfig, ManagedProfile
from credd.clock import Clock, isoformat_z
from credd.durations import format_duration
from credd.engine.forget import forget
from credd.engine.persist import Persist
from credd.engine.refresh import WAIT_FOR_PARENT, Refresher, safe_flag, still_valid
from credd.engine.reload import Adopter, wanted_nodes
from credd.engine.scheduler import RefreshPolicy, Scheduler
from credd.engine.state import State
from credd.engine.status import StatusBook, longest
from credd.engine.table import Table
from credd.errors import CreddError, NeedsMfa, NotReady, ProfileNotManaged
from credd.files.credentials import CredentialsFileWriter
from credd.models import Credentials, ProfileStatus
from credd.plan import lifetime
from credd.plan.planner import CodeSourceOf, Node, Plan
from credd.sources import Source
from credd.sources.codes import code_source_of
from credd.sources.mfa import check_code

log = logging.getLogger(__name__)

SourceFactory = Callable[[Node], Source]


class Manager:
    """Implements :class:`credd.server.backend.Backend` for the servers."""

    def __init__(
        self,
        *,
        source_factory: SourceFactory,
        scheduler: Scheduler,
        clock: Clock,
        writer: CredentialsFileWriter | None = None,
        policy: RefreshPolicy | None = None,
        rng: random.Random | None = None,
        wait_timeout: float = 8.0,
        code_source_of: CodeSourceOf | None = None,
        persist: Persist | None = None,
    ) -> None:
        self._clock = clock
        self._scheduler = scheduler
        self.policy = policy or RefreshPolicy()
        self._wait_timeout = wait_timeout
        self._code_source_of = code_source_of or _configured_code_source
        self._persist = persist
        self._table = Table()
        self._refresher = Refresher(
            self._table,
            scheduler=scheduler,
            clock=clock.now,
            policy=self.policy,
            rng=rng or random.Random(),
            writer=writer,
            persist=persist,
        )
        self._adopter = Adopter(self._table, self._refresher, source_factory)
        self._book = StatusBook(self._table, self.policy)
        self._started_at = clock.now()

    @property
    def changes(self) -> int:
        """Moves whenever a profile's status may have changed (load, refresh start and end):
        watchers rebuild statuses only when it moved, so an idle daemon does no work per profile."""
        return self._table.changes.value

    @property
    def refresher(self) -> Refresher:
        return self._refresher

    # -- configuration ---------------------------------------------------------------------

    def load(self, config: AwsConfig) -> None:
        """Adopt ``config``: new nodes start, removed ones stop, unchanged ones keep state.

        Saved sessions (``persist``) of changed or removed nodes are deleted; a new node starts
        from its saved session when one was made for the same settings and is still servable.
        """
        wanted, profiles = wanted_nodes(config, self._code_source_of)
        with self._table.commit.exclusive():
            self._adopter.adopt(wanted, profiles)

    def start(self) -> None:
        """Fetch every node now, parents first, except those restored from a saved session:
        their refresh is scheduled ahead of expiry as after a fetch."""
        self._refresher.running = True
        for entry in list(self._table.entries.values()):
            self._refresher.schedule_first(entry)

    def stop(self) -> None:
        self._refresher.running = False
        for key in list(self._table.entries):
            self._scheduler.cancel(key)

    # -- Backend ---------------------------------------------------------------------------

    def daemon_info(self) -> dict[str, Any]:
        """The engine's facts; the daemon adds its own (socket, endpoints) when it composes
        ``status`` (:class:`credd.server.api.Api`'s ``info``)."""
        info: dict[str, Any] = {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": isoformat_z(self._started_at),
        }
        if self._persist is not None:
            info["persistence"] = self._persist.info()
        return info

    def status(self) -> list[ProfileStatus]:
        """Every profile's status; only what changed since the last call is rebuilt."""
        return self._book.all()

    def status_json(self) -> bytes:
        """``status()`` as the JSON array the socket sends (``to_json(now)`` of each)."""
        return self._book.body(self._clock.now())

    def profile_status(self, profile: str) -> ProfileStatus:
        return self._book.profile(self._table.ref(profile))

    def credentials(self, profile: str) -> Credentials:
        for _ in range(3):  # a reload may replace the entry while this request waits on it
            obtained = self._refresher.obtain(
                self._table.target(profile),
                "asked for, nothing servable",
                timeout=self._wait_timeout,
                slow=lambda: NotReady(
                    f"credentials for {profile!r} are being fetched",
                    hint="try again in a few seconds",
                ),
            )
            if isinstance(obtained, CreddError):
                raise obtained
            if obtained is not None:
                return obtained
        raise NotReady(f"the settings of {profile!r} are being reloaded", hint="try again")

    def credentials_lasting(self, profile: str, min_left: timedelta) -> Credentials:
        """Credentials with at least ``min_left`` left (the lifetime guard, credd/plan/lifetime.py):
        refreshed first (single-flight) when the held ones end sooner; ``LifetimeUnavailable`` at
        once, without an STS call, when no refresh could give that much."""
        creds = self.credentials(profile)
        if lifetime.lasts(creds, self._clock.now(), min_left):
            return creds
        plan = self._table.plan(self._table.ref(profile))
        entry = self._table.entries[plan.target.key]
        person = plan.target.with_code and not safe_flag(lambda: entry.source.unattended)
        needs = f"credd mfa {plan.target.base}" if person else None
        lifetime.check_possible(profile, longest(plan, entry.snap), min_left, needs_person=needs)
        why = f"a caller needs {format_duration(min_left.total_seconds())} left"
        self._refresher.wait(self._refresher.start(entry, why))
        creds = self.credentials(profile)
        if lifetime.lasts(creds, self._clock.now(), min_left):
            return creds
        raise lifetime.short(profile, creds, self._clock.now(), min_left)

    def credentials_nowait(self, profile: str) -> Credentials | None:
        ref = self._table.profiles.get(profile)  # dict reads are atomic: no lock on the hot path
        entry = self._table.entries.get(ref.plan.target.key) if ref and ref.plan else None
        if entry is None:
            return None
        snap = entry.snap
        creds = snap.creds
        if creds is not None and self._refresher.servable(creds, snap.last_refresh_at):
            return creds
        return None

    def push_mfa_code(self, profile: str, code: str) -> ProfileStatus:
        plan = self._table.plan(self._table.ref(profile))
        code_node = plan.code_node()
        if code_node is None:
            raise ProfileNotManaged(
                f"profile {profile!r} uses no MFA code", hint=f"see: credd status {profile}"
            )
        entry = self._table.entries[code_node.key]
        entry.source.push_code(check_code(code))
        for _ in range(2):  # a refresh already running did not use the code: run one more
            future = self._refresher.start(entry, "MFA code from a person")
            try:
                future.result(timeout=WAIT_FOR_PARENT)
            except FutureTimeout:
                raise NotReady(f"the refresh of {profile!r} is still running") from None
            except NeedsMfa:
                continue
            if entry.snap.state is not State.NEEDS_MFA:
                break
        snap = entry.snap
        if snap.error is not None and snap.state is not State.FRESH:
            raise snap.error
        self._refresh_chain(plan, after=code_node.key)
        return self.profile_status(profile)

    def refresh(self, profile: str) -> ProfileStatus:
        plan = self._table.plan(self._table.ref(profile))
        # Parked ancestors (a fixed keyring, a new seed) are retried first, then the target.
        # A parent whose source withdrew its value (an SSO token refused, or replaced in the
        # shared cache by a login) is fetched again too: a login is picked up here.
        for node in plan.nodes()[:-1]:
            entry = self._table.entries[node.key]
            snap = entry.snap
            creds = snap.creds
            if snap.state is not State.FRESH or creds is None or not still_valid(entry, creds):
                self._refresher.wait(self._refresher.start(entry, "asked for"))
        target = self._table.entries[plan.target.key]
        self._refresher.wait(self._refresher.start(target, "asked for"))
        return self.profile_status(profile)

    def forget(self, profile: str | None) -> dict[str, list[str]]:
        """Drop held and saved sessions and credd's file sections: of ``profile`` (its own nodes;
        an MFA session other profiles also use is kept), or of every profile (``None``). Nothing
        else (keys, seeds, the SSO cache shared with the AWS CLI: see ``credd logout``) is
        touched; a dropped SSO token node reads that cache again. Dropped nodes wait,
        unscheduled, until a request or ``credd refresh`` fetches anew. Returns what went."""
        chosen = None if profile is None else self._table.ref(profile)
        return forget(self._table, self._refresher, chosen)

    def wake(self) -> None:
        """The wall clock jumped (a resume from suspend, a clock change): run what is due now.

        Every job whose time has passed is moved to now, and the scheduler looks at the clock
        again, so nothing waits for a timer that slept through the jump."""
        now = self._clock.now()
        entries = list(self._table.entries.values())
        due = [e for e in entries if (at := e.snap.next_refresh_at) is not None and at <= now]
        log.info("the clock jumped: %d overdue refreshes run now", len(due))
        for entry in due:
            if entry.inflight is None:
                self._refresher.schedule(entry, now)
        self._scheduler.wake()

    # -- internals -------------------------------------------------------------------------

    def _refresh_chain(self, plan: Plan, *, after: str) -> None:
        """Refresh the nodes above ``after`` (a new MFA session reached them) and wait."""
        seen = False
        for node in plan.nodes():
            if seen:
                entry = self._table.entries[node.key]
                self._refresher.wait(self._refresher.start(entry, "its source was renewed"))
            seen = seen or node.key == after


def _configured_code_source(profile: ManagedProfile) -> str | None:
    """The one decision (credd/sources/codes.py) without a secret store: what depends on the
    keyring is left to the node's source (None)."""
    return code_source_of(None)(profile)
