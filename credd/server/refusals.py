"""Rate-limited logging of refused connections: one line per peer per minute, with a count.

Another local user can open connections to the container endpoint (or to a socket handed over
by systemd) as fast as the kernel accepts them; each is refused with a 403, and a log line per
refusal would let them fill the victim's journal (issue 8 measured 44,400 lines in 15 s).
:class:`RefusalLog` logs the first refusal of a key (a uid, or the reason a connection could not
be admitted) in full, counts the next ones for ``interval`` seconds, and then logs one line with
the count: a steady flood costs one line per key per interval, however fast it is.

Time comes from an injected monotonic clock (tests move it by hand). Not thread-safe: the
server calls it from its event loop thread only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["OVERFLOW_KEY", "RefusalLog"]

#: Where refusals are counted once ``max_keys`` distinct keys are tracked (only root has many uids).
OVERFLOW_KEY = "other peers"


@dataclass
class _Window:
    started: float
    label: str
    suppressed: int = 0


class RefusalLog:
    """``refused(key, label, msg, *args)``: log it, or count it if ``key`` was logged lately.

    ``label`` names the key in the summary lines (``"uid 1001"``); ``msg % args`` is the full
    line of a refusal that is logged, formatted only then.
    """

    def __init__(
        self,
        log: logging.Logger,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[Hashable, _Window] = {}
        #: lines written and refusals counted without a line, since start (for tests and bench)
        self.lines = 0
        self.suppressed_total = 0

    def refused(self, key: Hashable, label: str, msg: str, *args: object) -> bool:
        """Record one refusal; ``True`` when it was logged, ``False`` when only counted."""
        now = self.clock()
        if key not in self._windows and len(self._windows) >= self.max_keys:
            self._expire(now)
            if len(self._windows) >= self.max_keys:
                key, label = OVERFLOW_KEY, OVERFLOW_KEY
        window = self._windows.get(key)
        if window is not None and now - window.started < self.interval:
            window.suppressed += 1
            self.suppressed_total += 1
            return False
        self._windows[key] = _Window(now, label)
        if window is not None and window.suppressed:
            self._write(
                msg + " (and %d more from %s not logged in the %.0f s before)",
                *args,
                window.suppressed,
                label,
                now - window.started,
            )
        else:
            self._write(
                msg + "; more from %s are counted and logged once per %.0f s",
                *args,
                label,
                self.interval,
            )
        return True

    @property
    def pending(self) -> int:
        """Refusals counted and not yet reported in a line."""
        return sum(w.suppressed for w in self._windows.values())

    def flush(self, *, final: bool = False) -> bool:
        """Report the counts of windows that have run their interval (every window when
        ``final``); forget quiet ones. ``True`` while windows remain (call again later)."""
        now = self.clock()
        for key, window in list(self._windows.items()):
            if not final and now - window.started < self.interval:
                continue
            if window.suppressed:
                self._write(
                    "refused %d more connection(s) from %s in the last %.0f s",
                    window.suppressed,
                    window.label,
                    now - window.started,
                )
                # a new window: a flood that goes on still costs one line per interval
                self._windows[key] = _Window(now, window.label)
            else:
                del self._windows[key]
        if final:
            self._windows.clear()
        return bool(self._windows)

    def _expire(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            if now - window.started >= self.interval and not window.suppressed:
                del self._windows[key]

    def _write(self, msg: str, *args: object) -> None:
        self.lines += 1
        self.log.warning(msg, *args)
