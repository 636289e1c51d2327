"""Test knobs (fail, throttle, slow, down) and call counters. Thread-safe.

A knob matches a call by service (default: only ``sts``; ``"*"`` for every service) and,
optionally, by action name. It applies to the next ``count`` matching calls, or until cleared
when ``count`` is ``None``.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

KnobKind = Literal["fail", "throttle", "slow", "down"]
KNOB_KINDS: tuple[KnobKind, ...] = ("fail", "throttle", "slow", "down")


@dataclass
class Knob:
    """One active knob."""

    kind: KnobKind
    services: frozenset[str] | None = frozenset({"sts"})  # None: every service
    actions: frozenset[str] | None = None  # None: every action
    remaining: int | None = None  # None: until cleared
    code: str = "InternalFailure"
    status: int = 500
    message: str = "The sandbox was told to fail this call."
    seconds: float = 0.0

    def matches(self, service: str | None, action: str | None) -> bool:
        if self.services is not None and (service or "") not in self.services:
            return False
        return self.actions is None or (action or "") in self.actions

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "services": sorted(self.services) if self.services is not None else ["*"],
            "actions": sorted(self.actions) if self.actions is not None else None,
            "remaining": self.remaining,
            "code": self.code,
            "status": self.status,
            "message": self.message,
            "seconds": self.seconds,
        }


class Knobs:
    """At most one knob of each kind at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._knobs: dict[str, Knob] = {}

    def set(self, knob: Knob) -> None:
        with self._lock:
            self._knobs[knob.kind] = knob

    def clear(self, kind: str | None = None) -> None:
        with self._lock:
            if kind is None:
                self._knobs.clear()
            else:
                self._knobs.pop(kind, None)

    def take(self, kind: KnobKind, service: str | None, action: str | None) -> Knob | None:
        """The knob of ``kind`` if it matches this call, using up one of its count."""
        with self._lock:
            knob = self._knobs.get(kind)
            if knob is None or not knob.matches(service, action):
                return None
            if knob.remaining is not None:
                knob.remaining -= 1
                if knob.remaining <= 0:
                    del self._knobs[kind]
            return knob

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {kind: knob.to_json() for kind, knob in self._knobs.items()}


@dataclass
class _ActionCount:
    total: int = 0
    ok: int = 0
    error: int = 0


@dataclass
class Counters:
    """Calls per action (with outcome) and per caller key.

    A call is counted when it ends (its outcome is known then) but belongs to the epoch it
    arrived in: :meth:`begin` gives it a ticket, and a call that arrived before a
    :meth:`reset` (a slow call whose client gave up, still running) is not counted after it.
    ``in_flight`` tells how many calls are being processed."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _actions: dict[str, _ActionCount] = field(default_factory=lambda: defaultdict(_ActionCount))
    _keys: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    _dropped: int = 0
    _epoch: int = 0
    _in_flight: int = 0

    def begin(self) -> int:
        """A call arrived: its ticket for :meth:`record`; pair with :meth:`end`."""
        with self._lock:
            self._in_flight += 1
            return self._epoch

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def record(self, action: str, key_id: str | None, ok: bool, ticket: int | None = None) -> None:
        with self._lock:
            if ticket is not None and ticket != self._epoch:
                return  # arrived before a reset: it belongs to the counts that were cleared
            count = self._actions[action]
            count.total += 1
            if ok:
                count.ok += 1
            else:
                count.error += 1
            if key_id:
                self._keys[key_id][action] += 1

    def record_dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def reset(self) -> None:
        with self._lock:
            self._epoch += 1
            self._actions.clear()
            self._keys.clear()
            self._dropped = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "actions": {
                    name: {"total": c.total, "ok": c.ok, "error": c.error}
                    for name, c in sorted(self._actions.items())
                },
                "keys": {key: dict(sorted(c.items())) for key, c in sorted(self._keys.items())},
                "dropped": self._dropped,
                "in_flight": self._in_flight,
            }
