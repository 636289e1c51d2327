"""Time, injected.

Everything about expiry, schedules and backoff takes a :class:`Clock`, so tests can cover
hours of refreshes in seconds with :class:`credd.testing.clock.FakeClock` and no ``sleep``.
Standard library only.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
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
