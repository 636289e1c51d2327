"""When to refresh, and the machinery that runs a job at a time.

:class:`RefreshPolicy` is pure arithmetic on an injected clock's times: when to refresh a
session ahead of expiry (with jitter), how long to back off after a failure, and whether held
credentials may still be served. :class:`ApsScheduler` runs jobs with APScheduler (the only module
that imports it); :class:`credd.testing.scheduler.ManualScheduler` runs them on a
:class:`~credd.testing.clock.FakeClock`, so tests cover days of refreshes in milliseconds.

The windows that matter (botocore ``RefreshableCredentials``): with less than 15 min left every SDK
call tries a refresh, with less than 10 min every call blocks on one. So an unattended refresh
happens at least ``min_lead`` (20 min) before expiry and credentials served always have more than
15 min left; a refresh that needs a person is asked for ``person_lead`` (1 h) ahead, once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from credd.clock import UTC

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshPolicy:
    min_lead: timedelta = timedelta(minutes=20)
    max_lead: timedelta = timedelta(hours=1)
    person_lead: timedelta = timedelta(hours=1)
    jitter: float = 0.1  # refresh up to this fraction of the lead earlier, never later
    backoff_base: timedelta = timedelta(seconds=5)
    backoff_cap: timedelta = timedelta(minutes=5)
    serve_floor: timedelta = timedelta(seconds=60)
    mfa_retries: int = 1  # an unattended code AWS rejected is retried once, at the next step

    def lead(self, lifetime: timedelta, *, unattended: bool) -> timedelta:
        """How long before expiry to refresh a session of ``lifetime``."""
        if lifetime <= timedelta(0):
            return timedelta(0)
        if not unattended:
            return min(self.person_lead, lifetime / 2)
        return min(max(lifetime / 4, self.min_lead), self.max_lead, lifetime / 2)

    def refresh_at(
        self,
        issued: datetime,
        expires: datetime,
        *,
        unattended: bool,
        rng: random.Random | None = None,
    ) -> datetime:
        """When to refresh a session issued at ``issued`` that expires at ``expires``."""
        lead = self.lead(expires - issued, unattended=unattended)
        spread = (rng or random).random() * self.jitter if unattended else 0.0
        return expires - lead * (1 + spread)

    def backoff(self, failures: int, *, rng: random.Random | None = None) -> timedelta:
        """Delay before retry ``failures`` (1-based): exponential, capped, half of it jittered."""
        exp: timedelta = self.backoff_base * (2 ** min(max(failures - 1, 0), 16))
        delay: timedelta = min(exp, self.backoff_cap)
        jitter = (rng or random).random()
        return delay / 2 + delay * (jitter / 2)

    def servable(
        self, expires: datetime | None, now: datetime, lifetime: timedelta | None = None
    ) -> bool:
        """Whether credentials expiring at ``expires`` may still be handed out at ``now``.

        The floor is ``serve_floor`` (60 s), or a sixth of the lifetime for sessions shorter
        than 6 min (sandbox sessions), so the last minute of a session is never handed out.
        """
        if expires is None:
            return True
        floor = self.serve_floor
        if lifetime is not None and lifetime > timedelta(0):
            floor = min(floor, lifetime / 6)
        return expires - now > floor


class Scheduler(Protocol):
    """Runs a callable once at a time; one pending job per key (a new one replaces it)."""

    def schedule(self, key: str, at: datetime, fn: Callable[[], None]) -> None: ...

    def cancel(self, key: str) -> None: ...

    def start(self) -> None: ...

    def shutdown(self) -> None: ...

    def alive(self) -> bool:
        """False once the thread that runs jobs has died (the watchdog stops pinging)."""

    def wake(self) -> None:
        """Look at the wall clock again now and run every job that is due (after a jump)."""


class ApsScheduler:
    """APScheduler 3.x ``BackgroundScheduler``: date triggers, a small thread pool."""

    def __init__(self, *, workers: int = 4) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler: Any = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def schedule(self, key: str, at: datetime, fn: Callable[[], None]) -> None:
        self._scheduler.add_job(
            fn, trigger="date", run_date=at, id=key, replace_existing=True, name=key
        )

    def cancel(self, key: str) -> None:
        from apscheduler.jobstores.base import JobLookupError

        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(key)

    def start(self) -> None:
        self._scheduler.start()

    def alive(self) -> bool:
        # APScheduler 3 has no public liveness check; its BackgroundScheduler keeps the thread
        # in ``_thread``. Kept here, in the only module that knows APScheduler.
        thread = getattr(self._scheduler, "_thread", None)
        return not isinstance(thread, threading.Thread) or thread.is_alive()

    def wake(self) -> None:
        # APScheduler computes its wait from the wall clock but waits on the monotonic one,
        # which stands still during a suspend: after a resume it would sleep on past due jobs.
        # ``wakeup()`` (public API of every APScheduler 3 scheduler) makes it look again now.
        if self._scheduler.running:
            self._scheduler.wakeup()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
