"""Time, injected.

Everything about expiry, schedules and backoff takes a :class:`Clock`, so tests can cover
hours of refreshes in seconds with :class:`FakeClock` and no ``sleep``.
Standard library only.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol

UTC = timezone.utc


class Clock(Protocol):
    """Where time comes from."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a fake clock just moves forward)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (and stops while the machine is suspended)."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to (or when something sleeps on it). Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._lock = threading.Lock()
        self._mono = 0.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            self.advance(seconds)

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += max(seconds, 0.0)
            return self._now

    def set(self, when: datetime) -> None:
        """Time passes up to ``when`` (the monotonic clock moves with it; never backwards)."""
        with self._lock:
            self._mono += max((when - self._now).total_seconds(), 0.0)
            self._now = when

    def jump(self, seconds: float) -> datetime:
        """Move the wall clock only, as a resume from suspend or a clock change does."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


class ClockWatch:
    """Notices the wall clock jumping against the monotonic clock.

    Both clocks advance together while the machine runs. A resume from suspend moves the wall
    clock by the time asleep while the monotonic clock stood still; setting the clock (NTP
    catching up, a person) moves it alone as well. :meth:`check` returns the jump in seconds
    (positive: forward) when the two drifted apart by more than ``tolerance`` since the last
    check, else ``None``. Call it often (the daemon's serve loop does, every half second).
    """

    def __init__(self, clock: Clock, *, tolerance: float = 2.0) -> None:
        self._clock = clock
        self._tolerance = tolerance
        self._wall = clock.now()
        self._mono = clock.monotonic()

    def check(self) -> float | None:
        wall, mono = self._clock.now(), self._clock.monotonic()
        drift = (wall - self._wall).total_seconds() - (mono - self._mono)
        self._wall, self._mono = wall, mono
        return drift if abs(drift) > self._tolerance else None


def isoformat_z(when: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, whole seconds: ``2026-11-21T17:00:00Z``."""
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse ISO 8601 (``Z`` or offset; naive means UTC) into an aware UTC datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
