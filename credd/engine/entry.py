"""One plan node's entry in the engine: what it holds (an immutable :class:`Snapshot`) and the one
way to change it (:meth:`Entry.commit`), which also counts the change.

Every change of what a node holds or shows goes through :meth:`Entry.commit` (or the refresh
start/end): a new snapshot with a higher ``version``, and the engine's :class:`Changes` counter
bumped. Nothing else can change a snapshot (it is frozen), so no change can be left uncounted:
the daemon's watchers and the status cache key on these counters.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from credd.engine.state import Change, State
from credd.errors import ConfigError, CreddError
from credd.models import Credentials
from credd.plan.planner import Node, Plan
from credd.sources import Source

_GENERATIONS = itertools.count(1)


class Changes:
    """The engine's change counter: bumped whenever a profile's status may have changed."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        return self._value

    def bump(self) -> None:
        with self._lock:
            self._value += 1


@dataclass(frozen=True)
class Snapshot:
    """What a node holds and shows at one moment. Replaced whole, never changed in place."""

    state: State = State.PENDING
    creds: Credentials | None = None
    error: CreddError | None = None
    file_error: CreddError | None = None
    waiting_for: str | None = None
    next_refresh_at: datetime | None = None
    last_refresh_at: datetime | None = None
    failures: int = 0
    mfa_failures: int = 0
    blocked_by_parent: bool = False
    refreshing: bool = False
    version: int = 0


@dataclass(eq=False)
class Entry:
    """One node: its source, its current snapshot, its single in-flight refresh."""

    key: str
    node: Node
    source: Source
    changes: Changes = field(repr=False)
    children: set[str] = field(default_factory=set)
    #: which incarnation of the node: a reload that changes the node makes a new Entry
    generation: int = field(default_factory=lambda: next(_GENERATIONS))
    _snap: Snapshot = field(default_factory=Snapshot, repr=False)
    _inflight: Future[Credentials] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def snap(self) -> Snapshot:
        """The current snapshot: read it once and use its fields together (a consistent view)."""
        return self._snap

    @property
    def inflight(self) -> Future[Credentials] | None:
        return self._inflight

    def commit(self, **fields: Any) -> Snapshot:
        """Replace the snapshot with ``fields`` changed; counts the change."""
        with self._lock:
            self._snap = replace(self._snap, version=self._snap.version + 1, **fields)
            snap = self._snap
        self.changes.bump()
        return snap

    def apply(self, change: Change, **more: Any) -> Snapshot:
        """Store a transition's outcome (:mod:`credd.engine.state`)."""
        return self.commit(
            state=change.state,
            error=change.error,
            waiting_for=change.waiting_for,
            failures=change.failures,
            mfa_failures=change.mfa_failures,
            blocked_by_parent=change.blocked_by_parent,
            **more,
        )

    def begin(self) -> tuple[Future[Credentials], bool]:
        """The refresh in flight, and whether this call started it (single flight)."""
        with self._lock:
            if self._inflight is not None:
                return self._inflight, False
            future: Future[Credentials] = Future()
            self._inflight = future
            self._snap = replace(self._snap, refreshing=True, version=self._snap.version + 1)
        self.changes.bump()
        return future, True

    def end(self) -> None:
        """The refresh in flight is over (its outcome is committed already)."""
        with self._lock:
            self._inflight = None
            self._snap = replace(self._snap, refreshing=False, version=self._snap.version + 1)
        self.changes.bump()


@dataclass(frozen=True)
class ProfileRef:
    """A managed profile as the engine knows it: its plan, or why it has none."""

    name: str
    kind: str
    plan: Plan | None
    error: ConfigError | None = None


def parents_first(nodes: dict[str, Node]) -> list[str]:
    """Node keys ordered so every parent comes before its children (a loop, not a recursion)."""
    depth: dict[str, int] = {}
    for key, node in nodes.items():
        hops = 0
        parent = node.parent
        while parent is not None and parent.key not in depth:
            hops, parent = hops + 1, parent.parent
        depth[key] = hops + (depth[parent.key] + 1 if parent is not None else 0)
    return sorted(nodes, key=lambda k: depth[k])
