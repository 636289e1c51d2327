"""The daemon's state: one entry per managed profile, refreshed on schedule, served on demand.

- A refresh runs on the manager's small worker pool; everyone who asks while one is running (the
  scheduler, 64 clients, a person pushing a code) shares it: one STS call.
- Success: the new credentials are served at once, written to the credentials file, and the next
  refresh is scheduled ahead of expiry (:class:`~credd.refresher.RefreshPolicy`).
- A transient failure (network, throttling, 5xx) backs off exponentially, capped, with jitter,
  while the old credentials are still served.
- Anything a person must fix (an MFA code, a rejected code, missing keys, a bad config) parks the
  profile: visible in ``status``, not retried in a loop, resumed by ``credd mfa`` / ``refresh``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from credd import __version__
from credd.awsconfig import AwsConfig, ManagedProfile
from credd.clock import Clock, isoformat_z
from credd.errors import (
    CreddError,
    MfaCodeRejected,
    NeedsMfa,
    NeedsPerson,
    NotReady,
    ProfileNotManaged,
)
from credd.mfa import STEP, check_code
from credd.models import Credentials, ProfileStatus
from credd.refresher import RefreshPolicy, Scheduler
from credd.sources import Source
from credd.writers import CredentialsFileWriter, SectionWrite

log = logging.getLogger(__name__)

SourceFactory = Callable[[ManagedProfile], Source]


@dataclass
class Entry:
    """Mutable state of one managed profile; guarded by ``lock``."""

    name: str
    profile: ManagedProfile | None
    source: Source | None
    state: str = "pending"
    creds: Credentials | None = None
    error: CreddError | None = None
    file_error: CreddError | None = None
    waiting_for: str | None = None
    next_refresh_at: datetime | None = None
    last_refresh_at: datetime | None = None
    failures: int = 0
    mfa_failures: int = 0
    inflight: Future[Credentials] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


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
        workers: int = 4,
        socket_path: str | None = None,
    ) -> None:
        self._source_factory = source_factory
        self._scheduler = scheduler
        self._clock = clock
        self._writer = writer
        self.policy = policy or RefreshPolicy()
        self._rng = rng or random.Random()
        self._wait_timeout = wait_timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="credd-refresh")
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._started_at = clock.now()
        self._socket_path = socket_path
        self._running = False
        #: more daemon facts for ``status`` (e.g. the container endpoint's URL); never secrets
        self.info_extra: dict[str, Any] = {}

    # -- configuration ---------------------------------------------------------------------

    def load(self, config: AwsConfig) -> None:
        """Adopt ``config``: new profiles start, removed ones stop, unchanged ones keep state."""
        new: dict[str, Entry] = {}
        with self._lock:
            old = dict(self._entries)
        for name, prof in config.managed.items():
            current = old.get(name)
            if current is not None and current.profile == prof:
                new[name] = current
                continue
            try:
                source = self._source_factory(prof)
            except CreddError as exc:
                new[name] = Entry(name, prof, None, state="error", error=exc)
                continue
            new[name] = Entry(name, prof, source)
        for name, broken in config.broken.items():
            new[name] = Entry(name, None, None, state="error", error=broken.error)
        with self._lock:
            self._entries = new
        for name, entry in old.items():
            if new.get(name) is not entry:
                self._scheduler.cancel(name)
                if name not in new and entry.profile and entry.profile.file_profile:
                    self._remove_file_section(entry.profile)
        if self._running:
            for name, entry in new.items():
                if old.get(name) is not entry and entry.source is not None:
                    self._schedule(entry, self._clock.now())

    def start(self) -> None:
        """Fetch every managed profile now; the scheduler takes it from there."""
        self._running = True
        now = self._clock.now()
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            if entry.source is not None:
                self._schedule(entry, now)

    def stop(self) -> None:
        self._running = False
        with self._lock:
            names = list(self._entries)
        for name in names:
            self._scheduler.cancel(name)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- Backend ---------------------------------------------------------------------------

    def daemon_info(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": isoformat_z(self._started_at),
            "socket": self._socket_path,
            **self.info_extra,
        }

    def status(self) -> list[ProfileStatus]:
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.name)
        return [self._status(e) for e in entries]

    def profile_status(self, profile: str) -> ProfileStatus:
        return self._status(self._entry(profile))

    def credentials(self, profile: str) -> Credentials:
        entry = self._entry(profile)
        creds = entry.creds
        if creds is not None and self._servable(entry, creds):
            return creds
        if entry.error is not None and entry.source is None:
            raise entry.error
        with entry.lock:
            inflight = entry.inflight
            state = entry.state
        if inflight is None and state == "pending":
            inflight = self._refresh(entry, "first request")
        if inflight is not None:
            try:
                inflight.result(timeout=self._wait_timeout)
            except FutureTimeout:
                raise NotReady(
                    f"credentials for {profile!r} are being fetched",
                    hint="try again in a few seconds",
                ) from None
            except CreddError:
                pass  # recorded on the entry; reported below
            creds = entry.creds
            if creds is not None and self._servable(entry, creds):
                return creds
        raise self._unavailable(entry)

    def credentials_nowait(self, profile: str) -> Credentials | None:
        entry = self._entries.get(profile)  # a dict read is atomic; no lock on the hot path
        creds = entry.creds if entry is not None else None
        if creds is not None and entry is not None and self._servable(entry, creds):
            return creds
        return None

    def push_mfa_code(self, profile: str, code: str) -> ProfileStatus:
        entry = self._entry(profile)
        if entry.source is None:
            raise entry.error or ProfileNotManaged(f"profile {profile!r} cannot take a code")
        entry.source.push_code(check_code(code))
        for _ in range(2):  # a refresh already running did not use the code: run one more
            future = self._refresh(entry, "MFA code from a person")
            try:
                future.result(timeout=STEP * 2 + self._wait_timeout)
            except FutureTimeout:
                raise NotReady(f"the refresh of {profile!r} is still running") from None
            except CreddError as exc:
                if isinstance(exc, NeedsMfa):
                    continue
                raise
            if entry.waiting_for is None:
                break
        return self._status(entry)

    def refresh(self, profile: str) -> ProfileStatus:
        entry = self._entry(profile)
        if entry.source is None:
            raise entry.error or ProfileNotManaged(f"profile {profile!r} cannot be refreshed")
        future = self._refresh(entry, "asked for")
        try:
            future.result(timeout=STEP * 2 + self._wait_timeout)
        except FutureTimeout:
            pass
        except CreddError:
            pass  # the status carries it
        return self._status(entry)

    # -- internals -------------------------------------------------------------------------

    def _entry(self, profile: str) -> Entry:
        with self._lock:
            entry = self._entries.get(profile)
        if entry is None:
            raise ProfileNotManaged(
                f"credd does not manage a profile named {profile!r}",
                hint=f"enable it: credd enable {profile}, then restart or reload the daemon",
            )
        return entry

    def _servable(self, entry: Entry, creds: Credentials) -> bool:
        issued = entry.last_refresh_at
        lifetime = creds.expiration - issued if creds.expiration and issued else None
        return self.policy.servable(creds.expiration, self._clock.now(), lifetime)

    def _unavailable(self, entry: Entry) -> CreddError:
        if entry.error is not None:
            return entry.error
        if entry.state == "needs_mfa":
            return NeedsMfa(
                f"profile {entry.name!r} needs an MFA code", hint=f"run: credd mfa {entry.name}"
            )
        return NotReady(f"no credentials for {entry.name!r} yet", hint="try again in a moment")

    def _schedule(self, entry: Entry, at: datetime) -> None:
        entry.next_refresh_at = at
        self._scheduler.schedule(entry.name, at, lambda: self._job(entry))

    def _job(self, entry: Entry) -> None:
        entry.next_refresh_at = None
        with contextlib.suppress(CreddError):  # the outcome is recorded on the entry
            self._refresh(entry, "scheduled").result()

    def _refresh(self, entry: Entry, reason: str) -> Future[Credentials]:
        with entry.lock:
            if entry.inflight is not None:
                return entry.inflight
            future: Future[Credentials] = Future()
            entry.inflight = future
        log.info("profile %s: refreshing (%s)", entry.name, reason)
        self._pool.submit(self._run, entry, future)
        return future

    def _run(self, entry: Entry, future: Future[Credentials]) -> None:
        assert entry.source is not None
        try:
            creds = entry.source.fetch()
        except CreddError as exc:
            self._failed(entry, exc)
            self._finish(entry, future, exc)
        except Exception as exc:  # a bug or an unexpected library error: never leak its text
            log.error("profile %s: unexpected %s during refresh", entry.name, type(exc).__name__)
            err = CreddError(
                f"unexpected {type(exc).__name__} while refreshing {entry.name!r}",
                hint="see the daemon's log; credd retries with backoff",
            )
            self._failed(entry, err, transient=True)
            self._finish(entry, future, err)
        else:
            self._succeeded(entry, creds)
            self._finish(entry, future, creds)

    @staticmethod
    def _finish(entry: Entry, future: Future[Credentials], outcome: Any) -> None:
        with entry.lock:
            entry.inflight = None
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def _succeeded(self, entry: Entry, creds: Credentials) -> None:
        assert entry.source is not None and entry.profile is not None
        now = self._clock.now()
        with entry.lock:
            entry.creds = creds
            entry.state = "fresh"
            entry.error = None
            entry.waiting_for = None
            entry.failures = 0
            entry.mfa_failures = 0
            entry.last_refresh_at = now
        self._write_file(entry, creds)
        if creds.expiration is not None and self._running:
            at = self.policy.refresh_at(
                now, creds.expiration, unattended=entry.source.unattended, rng=self._rng
            )
            self._schedule(entry, max(at, now + timedelta(seconds=1)))

    def _failed(self, entry: Entry, exc: CreddError, *, transient: bool | None = None) -> None:
        assert entry.source is not None
        now = self._clock.now()
        transient = exc.transient if transient is None else transient
        retry_at: datetime | None = None
        with entry.lock:
            entry.error = exc
            if isinstance(exc, NeedsPerson):
                entry.state = "needs_mfa"
                entry.error = None
                entry.waiting_for = exc.hint or "a person"
            elif isinstance(exc, MfaCodeRejected) and entry.source.unattended:
                entry.mfa_failures += 1
                if entry.mfa_failures <= self.policy.mfa_retries:
                    entry.state = "backoff"
                    retry_at = now + timedelta(seconds=STEP)
                else:
                    entry.state = "error"
                    entry.waiting_for = f"a fix of the MFA setup, then: credd refresh {entry.name}"
            elif isinstance(exc, MfaCodeRejected):
                entry.state = "needs_mfa"
                entry.waiting_for = f"a correct MFA code: run credd mfa {entry.name}"
            elif transient:
                entry.failures += 1
                entry.state = "backoff"
                retry_at = now + self.policy.backoff(entry.failures, rng=self._rng)
            else:
                entry.state = "error"
                entry.waiting_for = exc.hint
        log.warning("profile %s: refresh failed: %s", entry.name, exc)
        if retry_at is not None and self._running:
            self._schedule(entry, retry_at)
        else:
            entry.next_refresh_at = None

    def _write_file(self, entry: Entry, creds: Credentials) -> None:
        prof = entry.profile
        if self._writer is None or prof is None or prof.file_profile is None:
            return
        extra = {"region": prof.region} if prof.region else {}
        try:
            self._writer.write([SectionWrite(prof.file_profile, prof.name, creds, extra)])
        except CreddError as exc:
            log.warning("profile %s: credentials file not written: %s", prof.name, exc)
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

    def _status(self, entry: Entry) -> ProfileStatus:
        source = entry.source
        mfa_source = _safe(lambda: source.mfa_source) if source else None
        with entry.lock:
            state = "refreshing" if entry.inflight is not None else entry.state
            err = entry.error or entry.file_error
            creds = entry.creds
            return ProfileStatus(
                name=entry.name,
                kind=entry.profile.kind if entry.profile else "unknown",
                state=state,
                expires_at=creds.expiration if creds else None,
                next_refresh_at=entry.next_refresh_at,
                waiting_for=entry.waiting_for,
                error=err.to_json() if err else None,
                mfa_source=mfa_source,
                file_profile=entry.profile.file_profile if entry.profile else None,
                last_refresh_at=entry.last_refresh_at,
                key_id=creds.masked_key_id if creds else None,
            )


def _safe(fn: Callable[[], str | None]) -> str | None:
    try:
        return fn()
    except CreddError:
        return None
