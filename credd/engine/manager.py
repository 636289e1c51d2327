"""The daemon's state: plan nodes refreshed on schedule, profiles served on demand.

Each managed profile has a :class:`~credd.plan.planner.Plan`: a chain of nodes (an MFA session, role
sessions). Nodes are shared: twelve roles behind one IAM user use one ``session:USER`` node, so one
MFA code feeds them all. Per node:

- one refresh at a time, on its own thread; everyone who asks meanwhile (the scheduler, 64 clients,
  a child role, a person pushing a code) shares it: one STS call;
- success: served at once, written to the credentials file for the profiles it serves, next
  refresh scheduled ahead of expiry (:class:`~credd.engine.scheduler.RefreshPolicy`), children
  waiting on it woken;
- a transient failure (network, throttling, 5xx) backs off exponentially, capped, with jitter, while
  held credentials are still served;
- anything a person must fix (a code, a rejected code, missing keys, a bad config) parks the node:
  visible in ``status``, never retried in a loop, resumed by ``credd mfa`` / ``credd refresh``;
- a request that finds nothing servable and nothing parked starts the refresh itself (single
  flight) rather than wait for the schedule, which a suspend or a clock change can leave behind;
  :meth:`Manager.wake` runs every overdue job at once after such a jump.

Reloads replace entries: every :class:`Entry` has its own ``generation``, and an outcome (or a
scheduled job) of an entry that is no longer the current one for its key is dropped unseen: it
writes nothing (file, saved session, schedule, children) and serves nothing. ``_commit`` makes a
reload's swap and a refresh's outcome happen one after the other, never interleaved; outcomes
share it with each other (:mod:`credd.engine.rwlock`), so their file writes still batch.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from credd import __version__, metrics
from credd.aws.config import AwsConfig, ManagedProfile
from credd.clock import Clock, isoformat_z
from credd.engine.persist import Persist
from credd.engine.rwlock import SharedExclusiveLock
from credd.engine.scheduler import RefreshPolicy, Scheduler
from credd.errors import (
    ConfigError,
    CreddError,
    LoginRequired,
    MfaCodeRejected,
    NeedsMfa,
    NeedsPerson,
    NotReady,
    ProfileNotManaged,
    SecretStoreError,
    SecretStoreLocked,
)
from credd.files.credentials import CredentialsFileWriter, SectionWrite
from credd.mfa import STEP, check_code
from credd.models import Credentials, ProfileStatus
from credd.plan import lifetime
from credd.plan.planner import CodeSourceOf, Node, Plan, decided_once, explain, plan_for
from credd.sources import Source
from credd.sources.codes import code_source_of

log = logging.getLogger(__name__)

#: (node, parent-credentials getter) -> source
SourceFactory = Callable[[Node, Callable[[], Credentials]], Source]
WAIT_FOR_PARENT = 2 * STEP + 60.0
#: states a request never restarts: a person must act, or a named permanent error
PARKED = frozenset({"error", "needs_mfa", "login_required"})
_GENERATIONS = itertools.count(1)


class FromParent(Exception):  # a carrier for the parent's error, not an error of its own
    """A node could not refresh because its parent could not give credentials."""

    def __init__(self, error: CreddError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class Entry:
    """Mutable state of one node; guarded by ``lock``."""

    key: str
    node: Node
    source: Source
    state: str = "pending"
    creds: Credentials | None = None
    error: CreddError | None = None
    file_error: CreddError | None = None
    waiting_for: str | None = None
    next_refresh_at: datetime | None = None
    last_refresh_at: datetime | None = None
    failures: int = 0
    mfa_failures: int = 0
    blocked_by_parent: bool = False
    inflight: Future[Credentials] | None = None
    children: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: which incarnation of the node: a reload that changes the node makes a new Entry
    generation: int = field(default_factory=lambda: next(_GENERATIONS))


@dataclass(frozen=True)
class ProfileRef:
    name: str
    kind: str
    plan: Plan | None
    error: ConfigError | None = None


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
        socket_path: str | None = None,
        code_source_of: CodeSourceOf | None = None,
        persist: Persist | None = None,
    ) -> None:
        self._source_factory = source_factory
        self._scheduler = scheduler
        self._clock = clock
        self._writer = writer
        self.policy = policy or RefreshPolicy()
        self._rng = rng or random.Random()
        self._wait_timeout = wait_timeout
        self._code_source_of = code_source_of or _configured_code_source
        self._persist = persist
        self._nodes: dict[str, Entry] = {}
        self._profiles: dict[str, ProfileRef] = {}
        self._lock = threading.Lock()
        # A reload's swap and a refresh's outcome (state, file, saved session, schedule) never
        # interleave: an outcome is committed only while its entry is the current one.
        self._commit = SharedExclusiveLock()
        self._started_at = clock.now()
        self._socket_path = socket_path
        self._running = False
        #: more daemon facts for ``status`` (e.g. the container endpoint's URL); never secrets
        self.info_extra: dict[str, Any] = {}
        #: bumped whenever a profile's state may have changed (load, refresh start and end):
        #: watchers rebuild statuses only when it moved, so an idle daemon does no work per profile
        self.changes = 0
        self._status_cache: tuple[int, list[ProfileStatus]] | None = None

    # -- configuration ---------------------------------------------------------------------

    def load(self, config: AwsConfig) -> None:
        """Adopt ``config``: new nodes start, removed ones stop, unchanged ones keep state.

        Saved sessions (``persist``) of changed or removed nodes are deleted; a new node starts
        from its saved session when one was made for the same settings and is still servable.
        """
        profiles: dict[str, ProfileRef] = {}
        wanted: dict[str, Node] = {}
        code_source_of = decided_once(self._code_source_of)  # one answer per profile per load
        for name, prof in config.managed.items():
            try:
                plan = plan_for(config, name, code_source_of)
            except ConfigError as exc:
                log.warning("profile %s: no plan: %s", name, exc.message)
                profiles[name] = ProfileRef(name, prof.kind, None, exc)
                continue
            profiles[name] = ProfileRef(name, prof.kind, plan)
            for node in plan.nodes():
                wanted.setdefault(node.key, node)
        for name, broken in config.broken.items():
            profiles[name] = ProfileRef(name, "unknown", None, broken.error)

        with self._commit.exclusive():
            self._adopt(wanted, profiles)

    def _adopt(self, wanted: dict[str, Node], profiles: dict[str, ProfileRef]) -> None:
        """``load``'s second half, under ``_commit``: swap entries, then stop the old ones."""
        with self._lock:
            old = dict(self._nodes)
            old_profiles = dict(self._profiles)
        nodes: dict[str, Entry] = {}
        for key in _parents_first(wanted):
            node = wanted[key]
            current = old.get(key)
            if current is not None and current.node == node:
                current.children.clear()
                nodes[key] = current
                continue
            parent_key = node.parent.key if node.parent else None
            getter = functools.partial(self._node_credentials, parent_key) if parent_key else _none
            nodes[key] = Entry(key, node, self._source_factory(node, getter))
        restored = self._restore_saved(old, nodes)
        for key, node in wanted.items():
            if node.parent is not None:
                nodes[node.parent.key].children.add(key)
        with self._lock:
            self._nodes = nodes
            self._profiles = profiles
        for key, entry in old.items():
            if nodes.get(key) is not entry:
                self._scheduler.cancel(key)
        for name, ref in old_profiles.items():
            if ref.plan is None:
                continue
            new = profiles.get(name)
            target = nodes.get(new.plan.target.key) if new and new.plan else None
            if target is None or (old.get(target.key) is not target and target.creds is None):
                # removed, or its settings changed: what the file holds is the old settings'
                self._remove_file_section(ref.plan.target.profile)
        for entry in restored:
            if entry.creds is not None:
                self._write_files(entry, entry.creds)
        if self._running:
            for key, entry in nodes.items():
                if old.get(key) is not entry:
                    self._schedule_first(entry)
        self._changed()

    def start(self) -> None:
        """Fetch every node now, parents first, except those restored from a saved session:
        their refresh is scheduled ahead of expiry as after a fetch."""
        self._running = True
        with self._lock:
            entries = list(self._nodes.values())
        for entry in entries:
            self._schedule_first(entry)

    def stop(self) -> None:
        self._running = False
        with self._lock:
            keys = list(self._nodes)
        for key in keys:
            self._scheduler.cancel(key)

    # -- Backend ---------------------------------------------------------------------------

    def daemon_info(self) -> dict[str, Any]:
        info = {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": isoformat_z(self._started_at),
            "socket": self._socket_path,
            **self.info_extra,
        }
        if self._persist is not None:
            info["persistence"] = self._persist.info()
        return info

    def status(self) -> list[ProfileStatus]:
        """Every profile's status; rebuilt only when :attr:`changes` moved since the last build
        (a thousand profiles cost one build per change, not one per request)."""
        with self._lock:
            changes, cached, names = self.changes, self._status_cache, sorted(self._profiles)
        if cached is not None and cached[0] == changes:
            return list(cached[1])
        built = [self.profile_status(n) for n in names]
        with self._lock:
            self._status_cache = (changes, built)  # tagged with the count read before building
        return list(built)

    def profile_status(self, profile: str) -> ProfileStatus:
        ref = self._ref(profile)
        if ref.plan is None:
            return ProfileStatus(
                name=ref.name,
                kind=ref.kind,
                state="error",
                error=ref.error.to_json() if ref.error else None,
                waiting_for=ref.error.hint if ref.error else None,
            )
        return self._status(ref, ref.plan)

    def credentials(self, profile: str) -> Credentials:
        for _ in range(3):  # a reload may replace the entry while this request waits on it
            entry = self._target(profile)
            creds = entry.creds
            if creds is not None and self._servable(entry, creds):
                return creds
            inflight = self._refresh_unless_parked(entry, "asked for, nothing servable")
            if inflight is None:
                raise self._unavailable(entry)
            try:
                inflight.result(timeout=self._wait_timeout)
            except FutureTimeout:
                raise NotReady(
                    f"credentials for {profile!r} are being fetched",
                    hint="try again in a few seconds",
                ) from None
            except CreddError:
                pass  # recorded on the entry; reported below
            if self._current(entry):
                creds = entry.creds
                if creds is not None and self._servable(entry, creds):
                    return creds
                raise self._unavailable(entry)
        raise NotReady(f"the settings of {profile!r} are being reloaded", hint="try again")

    def credentials_lasting(self, profile: str, min_left: timedelta) -> Credentials:
        """Credentials with at least ``min_left`` left (the lifetime guard, credd/plan/lifetime.py):
        refreshed first (single-flight) when the held ones end sooner; ``LifetimeUnavailable`` at
        once, without an STS call, when no refresh could give that much."""
        creds = self.credentials(profile)
        if lifetime.lasts(creds, self._clock.now(), min_left):
            return creds
        plan = self._plan(self._ref(profile))
        entry = self._nodes[plan.target.key]
        person = plan.target.with_code and not _safe_flag(lambda: entry.source.unattended)
        needs = f"credd mfa {plan.target.base}" if person else None
        lifetime.check_possible(profile, self._longest(plan), min_left, needs_person=needs)
        self._wait(
            self._refresh(entry, f"a caller needs {lifetime.hours(min_left.total_seconds())} left")
        )
        creds = self.credentials(profile)
        if lifetime.lasts(creds, self._clock.now(), min_left):
            return creds
        raise lifetime.short(profile, creds, self._clock.now(), min_left)

    def _longest(self, plan: Plan) -> lifetime.Longest:
        entry = self._nodes[plan.target.key]
        creds, issued = entry.creds, entry.last_refresh_at
        seen = creds.expiration - issued if creds and creds.expiration and issued else None
        return lifetime.longest(plan, seen)

    def credentials_nowait(self, profile: str) -> Credentials | None:
        ref = self._profiles.get(profile)  # dict reads are atomic: no lock on the hot path
        entry = self._nodes.get(ref.plan.target.key) if ref and ref.plan else None
        creds = entry.creds if entry is not None else None
        if creds is not None and entry is not None and self._servable(entry, creds):
            return creds
        return None

    def push_mfa_code(self, profile: str, code: str) -> ProfileStatus:
        ref = self._ref(profile)
        plan = self._plan(ref)
        code_node = plan.code_node()
        if code_node is None:
            raise ProfileNotManaged(
                f"profile {profile!r} uses no MFA code", hint=f"see: credd status {profile}"
            )
        entry = self._nodes[code_node.key]
        entry.source.push_code(check_code(code))
        for _ in range(2):  # a refresh already running did not use the code: run one more
            try:
                self._refresh(entry, "MFA code from a person").result(timeout=WAIT_FOR_PARENT)
            except FutureTimeout:
                raise NotReady(f"the refresh of {profile!r} is still running") from None
            except NeedsMfa:
                continue
            if entry.state != "needs_mfa":
                break
        if entry.error is not None and entry.state != "fresh":
            raise entry.error
        self._refresh_chain(plan, after=code_node.key)
        return self.profile_status(profile)

    def refresh(self, profile: str) -> ProfileStatus:
        plan = self._plan(self._ref(profile))
        # Parked ancestors (a fixed keyring, a new seed) are retried first, then the target.
        # A parent whose source withdrew its value (an SSO token refused, or replaced in the
        # shared cache by a login) is fetched again too: a login is picked up here.
        for node in plan.nodes()[:-1]:
            entry = self._nodes[node.key]
            if entry.state != "fresh" or entry.creds is None or not _still_valid(entry):
                self._wait(self._refresh(entry, "asked for"))
        self._wait(self._refresh(self._nodes[plan.target.key], "asked for"))
        return self.profile_status(profile)

    def forget(self, profile: str | None) -> dict[str, list[str]]:
        """Drop held and saved sessions and credd's file sections: of ``profile`` (its own nodes;
        an MFA session other profiles also use is kept), or of every profile (``None``). Nothing
        else (keys, seeds, the SSO cache shared with the AWS CLI: see ``credd logout``) is
        touched; a dropped SSO token node reads that cache again. Dropped nodes wait,
        unscheduled, until a request or ``credd refresh`` fetches anew. Returns what went."""
        chosen = None if profile is None else self._ref(profile)
        with self._lock:
            refs = dict(self._profiles) if chosen is None else {chosen.name: chosen}
            others = [r.plan for n, r in self._profiles.items() if r.plan and n not in refs]
        shared = {node.key for plan in others for node in plan.nodes()}
        keys = [
            node.key
            for ref in refs.values()
            if ref.plan is not None
            for node in ref.plan.nodes()
            if node.key not in shared  # an sso-token node: only the copy in memory
        ]
        done: dict[str, list[str]] = {"sessions": [], "saved": [], "file_sections": []}
        for key in dict.fromkeys(keys):
            entry = self._nodes[key]
            inflight = entry.inflight
            if inflight is not None:  # let a running refresh land first, then drop it
                self._wait(inflight)
            self._scheduler.cancel(key)
            with entry.lock:
                held = entry.creds is not None
                entry.creds, entry.state, entry.error, entry.waiting_for = (
                    None,
                    "pending",
                    None,
                    None,
                )
                entry.next_refresh_at = entry.last_refresh_at = None
            self._changed()
            if held:
                done["sessions"].append(key)
            if self._persist is not None and self._persist.delete(key):
                done["saved"].append(key)
        for ref in refs.values():
            prof = ref.plan.target.profile if ref.plan else None
            if prof is not None and prof.file_profile and self._writer is not None:
                try:
                    removed = self._writer.remove([prof.file_profile], owner=prof.name)
                except CreddError as exc:
                    log.warning("profile %s: could not remove its file section: %s", prof.name, exc)
                    continue
                done["file_sections"] += removed
        log.info("forgot %s: %s", profile or "every profile", done)
        return done

    # -- internals: lookup -----------------------------------------------------------------

    def _ref(self, profile: str) -> ProfileRef:
        with self._lock:
            ref = self._profiles.get(profile)
        if ref is None:
            raise ProfileNotManaged(
                f"credd does not manage a profile named {profile!r}",
                hint=f"enable it: credd enable {profile}, then restart or reload the daemon",
            )
        return ref

    @staticmethod
    def _plan(ref: ProfileRef) -> Plan:
        if ref.plan is None:
            assert ref.error is not None
            raise ref.error
        return ref.plan

    def _target(self, profile: str) -> Entry:
        return self._nodes[self._plan(self._ref(profile)).target.key]

    def _servable(self, entry: Entry, creds: Credentials) -> bool:
        issued = entry.last_refresh_at
        lifetime = creds.expiration - issued if creds.expiration and issued else None
        return self.policy.servable(creds.expiration, self._clock.now(), lifetime)

    def _unavailable(self, entry: Entry) -> CreddError:
        if entry.error is not None:
            return entry.error
        if entry.state == "needs_mfa":
            hint = entry.waiting_for or f"run: credd mfa {entry.node.base}"
            return NeedsMfa(f"profile {entry.node.profile.name!r} needs an MFA code", hint=hint)
        if entry.state == "login_required":
            return LoginRequired(
                f"profile {entry.node.profile.name!r} needs an IAM Identity Center login",
                hint=entry.waiting_for or f"run: credd login {entry.node.profile.name}",
            )
        return NotReady(
            f"no credentials for {entry.node.profile.name!r} yet", hint="try again in a moment"
        )

    def _node_credentials(self, key: str) -> Credentials:
        """A parent's credentials for a child's refresh; never restarts a parked parent.

        A reload may have removed the parent while the child's refresh ran: that child is
        stale (its outcome is dropped), and is told so rather than failing on a lookup."""
        entry = self._nodes.get(key)
        if entry is None:
            raise FromParent(
                NotReady(f"{key} was removed by a reload", hint="try again in a moment")
            )
        creds = entry.creds
        if creds is not None and self._servable(entry, creds) and _still_valid(entry):
            return creds
        inflight = self._refresh_unless_parked(entry, "needed by a role")
        if inflight is None:
            raise FromParent(self._unavailable(entry))
        try:
            inflight.result(timeout=WAIT_FOR_PARENT)
        except FutureTimeout:
            raise FromParent(NotReady(f"{entry.node.profile.name!r} is still refreshing")) from None
        except CreddError:
            pass
        creds = entry.creds
        if creds is not None and self._servable(entry, creds) and _still_valid(entry):
            return creds
        raise FromParent(self._unavailable(entry))

    def _refresh_chain(self, plan: Plan, *, after: str) -> None:
        """Refresh the nodes above ``after`` (a new MFA session reached them) and wait."""
        seen = False
        for node in plan.nodes():
            if seen:
                self._wait(self._refresh(self._nodes[node.key], "its source was renewed"))
            seen = seen or node.key == after

    def _wait(self, future: Future[Credentials]) -> None:
        with contextlib.suppress(FutureTimeout, CreddError):
            future.result(timeout=WAIT_FOR_PARENT)

    # -- internals: refresh ----------------------------------------------------------------

    def _current(self, entry: Entry) -> bool:
        """Whether ``entry`` is still the node's entry (a reload did not replace it)."""
        return self._nodes.get(entry.key) is entry

    def _refresh_unless_parked(self, entry: Entry, reason: str) -> Future[Credentials] | None:
        """The running refresh, or a new one, unless the node waits for a person, holds a
        named permanent error, or backs off until a time still ahead (no storm of calls)."""
        with entry.lock:
            inflight, state, retry_at = entry.inflight, entry.state, entry.next_refresh_at
        if inflight is not None:
            return inflight
        if state in PARKED:
            return None
        if state == "backoff" and retry_at is not None and retry_at > self._clock.now():
            return None
        return self._refresh(entry, reason)

    def wake(self) -> None:
        """The wall clock jumped (a resume from suspend, a clock change): run what is due now.

        Every job whose time has passed is moved to now, and the scheduler looks at the clock
        again, so nothing waits for a timer that slept through the jump."""
        now = self._clock.now()
        with self._lock:
            entries = list(self._nodes.values())
        due = [e for e in entries if e.next_refresh_at is not None and e.next_refresh_at <= now]
        log.info("the clock jumped: %d overdue refreshes run now", len(due))
        for entry in due:
            if entry.inflight is None:
                self._schedule(entry, now)
        self._scheduler.wake()

    def _schedule(self, entry: Entry, at: datetime) -> None:
        with self._commit.shared():
            if not self._current(entry):
                return  # replaced by a reload: its successor owns the node's job
            entry.next_refresh_at = at
            self._scheduler.schedule(entry.key, at, functools.partial(self._job, entry))
        self._changed()

    def _schedule_first(self, entry: Entry) -> None:
        """A node's first job: now, or ahead of the expiry of a restored session."""
        now = self._clock.now()
        creds, issued = entry.creds, entry.last_refresh_at
        if entry.state == "fresh" and creds is not None and creds.expiration and issued:
            self._schedule_next(entry, issued, creds.expiration)
        else:
            self._schedule(entry, now)

    def _schedule_next(self, entry: Entry, issued: datetime, expires: datetime) -> None:
        unattended = _safe_flag(lambda: entry.source.unattended)
        at = self.policy.refresh_at(issued, expires, unattended=unattended, rng=self._rng)
        self._schedule(entry, max(at, self._clock.now() + timedelta(seconds=1)))

    # -- internals: saved sessions ---------------------------------------------------------

    def _restore_saved(self, old: dict[str, Entry], nodes: dict[str, Entry]) -> list[Entry]:
        """Drop saved sessions of changed/removed nodes; restore those of new nodes."""
        if self._persist is None:
            return []
        for key, entry in old.items():
            if nodes.get(key) is not entry:
                self._persist.delete(key)
        self._persist.prune(set(nodes))
        restored: list[Entry] = []
        for key, entry in nodes.items():
            if old.get(key) is entry:
                continue
            saved = self._persist.restore(entry.node, self._servable_at)
            if saved is not None:
                entry.creds, entry.state = saved.credentials, "fresh"
                entry.last_refresh_at = saved.issued_at
                restored.append(entry)
        return restored

    def _servable_at(self, creds: Credentials, issued: datetime) -> bool:
        lifetime = creds.expiration - issued if creds.expiration else None
        return self.policy.servable(creds.expiration, self._clock.now(), lifetime)

    def _save(self, entry: Entry, creds: Credentials, issued: datetime) -> None:
        if self._persist is None or self._nodes.get(entry.key) is not entry:
            return  # persistence off, or the node was replaced by a reload meanwhile
        try:
            self._persist.save(entry.node, creds, issued)
        except Exception as exc:  # never let saving break a refresh; never leak its text
            log.error("%s: unexpected %s while saving the session", entry.key, type(exc).__name__)

    def _job(self, entry: Entry) -> None:
        if not self._current(entry):
            return  # a job of an entry a reload replaced
        entry.next_refresh_at = None
        with contextlib.suppress(CreddError):  # the outcome is recorded on the entry
            self._refresh(entry, "scheduled").result()

    def _changed(self) -> None:
        with self._lock:
            self.changes += 1

    def _refresh(self, entry: Entry, reason: str) -> Future[Credentials]:
        with entry.lock:
            if entry.inflight is not None:
                return entry.inflight
            future: Future[Credentials] = Future()
            entry.inflight = future
        self._changed()
        log.info("%s: refreshing (%s)", entry.key, reason)
        threading.Thread(
            target=self._run, args=(entry, future), daemon=True, name=f"credd-refresh-{entry.key}"
        ).start()
        return future

    def _run(self, entry: Entry, future: Future[Credentials]) -> None:
        outcome: Credentials | CreddError
        failure: dict[str, bool] = {}
        try:
            outcome = entry.source.fetch()
        except FromParent as exc:
            outcome, failure = exc.error, {"from_parent": True}
        except CreddError as exc:
            outcome = exc
        except Exception as exc:  # a bug or an unexpected library error: never leak its text
            log.error("%s: unexpected %s during refresh", entry.key, type(exc).__name__)
            log.debug("%s: traceback of the unexpected error", entry.key, exc_info=True)
            outcome = CreddError(
                f"unexpected {type(exc).__name__} while refreshing {entry.node.profile.name!r}",
                hint="see the daemon's log; credd retries with backoff",
            )
            failure = {"transient": True}
        with self._commit.shared():
            if not self._current(entry):
                # Started before a reload replaced the node: its result is the old settings'.
                log.info("%s: outcome of a refresh started before a reload dropped", entry.key)
                outcome = NotReady(
                    f"the settings of {entry.node.profile.name!r} changed during the refresh",
                    hint="try again in a moment",
                )
            elif isinstance(outcome, CreddError):
                self._failed(entry, outcome, **failure)
            else:
                issued = self._succeeded(entry, outcome)
                # Saved before the refresh counts as done, so "fresh" in status means "saved"
                # (the new credentials are served meanwhile; the store's calls are bounded).
                self._save(entry, outcome, issued)
        with entry.lock:
            entry.inflight = None
        self._changed()
        if isinstance(outcome, CreddError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def _succeeded(self, entry: Entry, creds: Credentials) -> datetime:
        now = self._clock.now()
        with entry.lock:
            entry.creds = creds
            entry.state = "fresh"
            entry.error = None
            entry.waiting_for = None
            entry.failures = entry.mfa_failures = 0
            entry.blocked_by_parent = False
            entry.last_refresh_at = now
        metrics.record_refresh(entry.node.profile.name, "success")
        self._write_files(entry, creds)
        if creds.expiration is not None and self._running:
            self._schedule_next(entry, now, creds.expiration)
        for child_key in entry.children:  # roles that were waiting on this session
            child = self._nodes.get(child_key)
            if child is not None and child.blocked_by_parent and self._running:
                self._schedule(child, now)
        return now

    def _failed(
        self,
        entry: Entry,
        exc: CreddError,
        *,
        transient: bool | None = None,
        from_parent: bool = False,
    ) -> None:
        now = self._clock.now()
        transient = exc.transient if transient is None else transient
        retry_at: datetime | None = None
        with entry.lock:
            entry.error = exc
            entry.blocked_by_parent = from_parent
            if isinstance(exc, NeedsPerson):
                login = isinstance(exc, LoginRequired)
                entry.state, entry.error = ("login_required" if login else "needs_mfa"), None
                entry.waiting_for = exc.hint or "a person"
                # A login elsewhere (aws sso login) lands in the shared cache: look again, locally.
                if isinstance(exc, LoginRequired) and exc.recheck_after is not None:
                    retry_at = now + exc.recheck_after
            elif from_parent:
                entry.state = "backoff" if transient else "error"
                entry.waiting_for = exc.hint
                if transient:
                    entry.failures += 1
                    retry_at = now + self.policy.backoff(entry.failures, rng=self._rng)
            elif isinstance(exc, MfaCodeRejected) and entry.source.unattended:
                entry.mfa_failures += 1
                if entry.mfa_failures <= self.policy.mfa_retries:
                    entry.state = "backoff"
                    retry_at = now + timedelta(seconds=STEP)
                else:
                    entry.state = "error"
                    entry.waiting_for = (
                        f"a fix of the MFA setup, then: credd refresh {entry.node.profile.name}"
                    )
            elif isinstance(exc, MfaCodeRejected):
                entry.state = "needs_mfa"
                entry.waiting_for = f"a correct MFA code: run credd mfa {entry.node.base}"
            elif transient:
                entry.failures += 1
                entry.state = "backoff"
                entry.waiting_for = _retry_reason(exc)
                retry_at = now + self.policy.backoff(entry.failures, rng=self._rng)
            else:
                entry.state = "error"
                entry.waiting_for = exc.hint
        metrics.record_refresh(entry.node.profile.name, entry.state, exc.code)
        log.warning("%s: refresh failed: %s", entry.key, exc)
        # Where it came from, for whoever debugs (credd's exceptions carry no secrets).
        log.debug("%s: refresh failure traceback", entry.key, exc_info=exc)
        if retry_at is not None and self._running:
            self._schedule(entry, retry_at)
        else:
            entry.next_refresh_at = None

    # -- internals: files and status -------------------------------------------------------

    def _write_files(self, entry: Entry, creds: Credentials) -> None:
        if self._writer is None:
            return
        with self._lock:
            served = [
                r.plan.target.profile
                for r in self._profiles.values()
                if r.plan is not None and r.plan.target.key == entry.key
            ]
        writes = [
            SectionWrite(p.file_profile, p.name, creds, {"region": p.region} if p.region else {})
            for p in served
            if p.file_profile
        ]
        if not writes:
            return
        try:
            self._writer.write(writes)
        except CreddError as exc:
            log.warning("%s: credentials file not written: %s", entry.key, exc)
            entry.file_error = exc
        else:
            entry.file_error = None

    def _remove_file_section(self, prof: ManagedProfile) -> None:
        if self._writer is None or prof.file_profile is None:
            return
        try:
            self._writer.remove([prof.file_profile], owner=prof.name)
        except CreddError as exc:
            log.warning("profile %s: could not remove its file section: %s", prof.name, exc)

    def _status(self, ref: ProfileRef, plan: Plan) -> ProfileStatus:
        entry = self._nodes[plan.target.key]
        code_node = plan.code_node()
        code_entry = self._nodes[code_node.key] if code_node else None
        mfa_source = _safe(lambda: code_entry.source.mfa_source) if code_entry else None
        waiting = entry.waiting_for
        if waiting is None:  # a session asked ahead for a person while this profile is fresh
            for node in plan.nodes()[:-1]:
                ancestor = self._nodes[node.key]
                if ancestor.state in {"needs_mfa", "login_required"}:
                    waiting = ancestor.waiting_for
                    break
        with entry.lock:
            state = "refreshing" if entry.inflight is not None else entry.state
            err = entry.error or entry.file_error
            creds = entry.creds
            return ProfileStatus(
                name=ref.name,
                kind=ref.kind,
                state=state,
                expires_at=creds.expiration if creds else None,
                next_refresh_at=entry.next_refresh_at,
                waiting_for=waiting,
                error=err.to_json() if err else None,
                mfa_source=mfa_source,
                file_profile=plan.target.profile.file_profile,
                last_refresh_at=entry.last_refresh_at,
                key_id=creds.masked_key_id if creds else None,
                plan=self._explain(plan, mfa_source, code_entry),
                longest=self._longest(plan).to_json(),
            )

    def _explain(self, plan: Plan, mfa_source: str | None, code_entry: Entry | None) -> str:
        text = explain(plan, mfa_source)
        if code_entry is None or mfa_source != "person":
            return text
        if code_entry.state == "needs_mfa":
            return text + f" A person is needed now: credd mfa {plan.profile}."
        creds = code_entry.creds
        if creds is not None and creds.expiration is not None:
            lead = self.policy.lead(
                creds.expiration - (code_entry.last_refresh_at or creds.expiration),
                unattended=False,
            )
            return text + f" Next request: {isoformat_z(creds.expiration - lead)}."
        return text


def _parents_first(nodes: dict[str, Node]) -> list[str]:
    """Node keys ordered so every parent comes before its children (a loop, not a recursion)."""
    depth: dict[str, int] = {}
    for key, node in nodes.items():
        hops = 0
        parent = node.parent
        while parent is not None and parent.key not in depth:
            hops, parent = hops + 1, parent.parent
        depth[key] = hops + (depth[parent.key] + 1 if parent is not None else 0)
    return sorted(nodes, key=lambda k: depth[k])


def _retry_reason(exc: CreddError) -> str | None:
    """What a node backing off waits for, for ``status`` (``None``: just the next retry)."""
    if isinstance(exc, SecretStoreLocked):
        return "the keyring to be unlocked (by its owner's login); retried automatically"
    if isinstance(exc, SecretStoreError):
        return "the keyring (Secret Service) to answer again; retried automatically"
    return None


def _none() -> Credentials:
    raise ConfigError("this node has no parent")


def _configured_code_source(profile: ManagedProfile) -> str | None:
    """The one decision (credd/sources/codes.py) without a secret store: what depends on the
    keyring is left to the node's source (None)."""
    return code_source_of(None)(profile)


def _still_valid(entry: Entry) -> bool:
    """False when the node's source withdrew the value it holds (``Source.still_valid``: an SSO
    token the portal refused or the shared cache replaced); unknown counts as valid."""
    check = getattr(entry.source, "still_valid", None)
    creds = entry.creds
    if check is None or creds is None:
        return True
    try:
        return bool(check(creds))
    except Exception:  # a check that fails withdraws nothing; the node's schedule reports it
        return True


def _safe_flag(fn: Callable[[], bool]) -> bool:
    """``source.unattended``; unknown (the keyring is down) counts as needing a person, whose
    refresh is asked for earlier: the safe side."""
    try:
        return fn()
    except CreddError:
        return False


def _safe(fn: Callable[[], str | None]) -> str | None:
    try:
        return fn()
    except CreddError:
        return None
