"""A scheduler run by hand on a :class:`~credd.testing.clock.FakeClock`: 48 simulated hours of
refreshes take milliseconds. It implements :class:`credd.engine.scheduler.Scheduler`."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from credd.testing.clock import FakeClock


class ManualScheduler:
    """Runs due jobs on a :class:`FakeClock` when told to. For tests and simulations."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._heap: list[tuple[datetime, int, str]] = []
        self._jobs: dict[str, tuple[datetime, int, Callable[[], None]]] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self.ran: list[tuple[datetime, str]] = []
        self.woken = 0

    def schedule(self, key: str, at: datetime, fn: Callable[[], None]) -> None:
        with self._lock:
            seq = next(self._seq)
            self._jobs[key] = (at, seq, fn)
            heapq.heappush(self._heap, (at, seq, key))

    def cancel(self, key: str) -> None:
        with self._lock:
            self._jobs.pop(key, None)

    def start(self) -> None:
        """Nothing runs until :meth:`run_until` is called."""

    def alive(self) -> bool:
        return True

    def wake(self) -> None:
        """Nothing to do: :meth:`run_until` reads the clock each time."""
        self.woken += 1

    def shutdown(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._heap.clear()

    def pending(self) -> dict[str, datetime]:
        with self._lock:
            return {key: at for key, (at, _seq, _fn) in self._jobs.items()}

    def _pop_due(self, until: datetime) -> tuple[datetime, str, Callable[[], None]] | None:
        with self._lock:
            while self._heap:
                at, seq, key = self._heap[0]
                job = self._jobs.get(key)
                if job is None or job[1] != seq:
                    heapq.heappop(self._heap)  # cancelled or replaced
                    continue
                if at > until:
                    return None
                heapq.heappop(self._heap)
                del self._jobs[key]
                return at, key, job[2]
        return None

    def run_until(self, until: datetime) -> int:
        """Advance the clock job by job up to ``until``, running each job when due."""
        count = 0
        while True:
            job = self._pop_due(until)
            if job is None:
                break
            at, key, fn = job
            if at > self.clock.now():
                self.clock.set(at)
            self.ran.append((self.clock.now(), key))
            fn()
            count += 1
        if until > self.clock.now():
            self.clock.set(until)
        return count

    def run_for(self, seconds: float) -> int:
        return self.run_until(self.clock.now() + timedelta(seconds=seconds))
