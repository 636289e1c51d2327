"""A clock that moves only when told to: tests cover hours of refreshes in seconds, no ``sleep``."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from credd.clock import UTC


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
