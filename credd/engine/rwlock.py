"""A shared/exclusive lock: many refresh outcomes commit at once, a reload commits alone.

The manager commits a refresh's outcome (state, credentials-file write, saved session, next job)
only while its entry is still the node's current one, and a reload swaps entries. Holding one
plain lock for both would serialise every outcome, and with it the credentials-file writes that
the writer batches when they arrive together (1,000 profiles renewed at once). So outcomes take
the lock *shared*, a reload takes it *exclusive*: it waits for the outcomes in progress, and new
ones wait for it.

- Re-entrant: a thread holding it (shared or exclusive) may take it again, either way, without
  waiting (an outcome schedules its children's jobs; a reload schedules the new entries' jobs).
- A waiting reload goes before outcomes that have not started yet, so a stream of refreshes
  cannot starve it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SharedExclusiveLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0  # threads holding it shared (outermost holds only)
        self._owner: int | None = None  # the thread holding it exclusive
        self._waiting = 0  # threads waiting to take it exclusive
        self._held = threading.local()  # how deep this thread holds it, either way

    def _depth(self) -> int:
        return getattr(self._held, "depth", 0)

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth = self._depth()
        if depth == 0:
            with self._cond:
                while self._owner is not None or self._waiting:
                    self._cond.wait()
                self._shared += 1
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                with self._cond:
                    self._shared -= 1
                    if self._shared == 0:
                        self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        depth = self._depth()
        if depth and self._owner != me:
            raise RuntimeError("a thread holding the lock shared cannot take it exclusive")
        if depth == 0:
            with self._cond:
                self._waiting += 1
                try:
                    while self._owner is not None or self._shared:
                        self._cond.wait()
                finally:
                    self._waiting -= 1
                self._owner = me
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                with self._cond:
                    self._owner = None
                    self._cond.notify_all()
