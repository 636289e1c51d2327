"""The engine's tables: node entries by key, profiles by name, and the locks around them.

A reload swaps both tables at once, under the exclusive side of ``commit``; a refresh's outcome
commits under its shared side, and only while its entry is still the current one for its key
(:meth:`Table.current`), so an outcome of a node a reload replaced is dropped unseen.
"""

from __future__ import annotations

import threading

from credd.engine.entry import Changes, Entry, ProfileRef
from credd.engine.rwlock import SharedExclusiveLock
from credd.errors import ProfileNotManaged
from credd.plan.planner import Plan


class Table:
    """Entries and profiles, swapped whole by a reload; reads are plain dict reads."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.profiles: dict[str, ProfileRef] = {}
        self._by_target: dict[str, list[ProfileRef]] = {}
        self.lock = threading.Lock()
        # A reload's swap and a refresh's outcome (state, file, saved session, schedule) never
        # interleave: an outcome is committed only while its entry is the current one.
        self.commit = SharedExclusiveLock()
        self.changes = Changes()

    def swap(self, entries: dict[str, Entry], profiles: dict[str, ProfileRef]) -> None:
        by_target: dict[str, list[ProfileRef]] = {}
        for ref in profiles.values():
            if ref.plan is not None:
                by_target.setdefault(ref.plan.target.key, []).append(ref)
        with self.lock:
            self.entries = entries
            self.profiles = profiles
            self._by_target = by_target
        self.changes.bump()

    def current(self, entry: Entry) -> bool:
        """Whether ``entry`` is still the node's entry (a reload did not replace it)."""
        return self.entries.get(entry.key) is entry

    def ref(self, profile: str) -> ProfileRef:
        with self.lock:
            ref = self.profiles.get(profile)
        if ref is None:
            raise ProfileNotManaged(
                f"credd does not manage a profile named {profile!r}",
                hint=f"enable it: credd enable {profile}, then restart or reload the daemon",
            )
        return ref

    @staticmethod
    def plan(ref: ProfileRef) -> Plan:
        if ref.plan is None:
            assert ref.error is not None
            raise ref.error
        return ref.plan

    def target(self, profile: str) -> Entry:
        return self.entries[self.plan(self.ref(profile)).target.key]

    def served_by(self, key: str) -> list[ProfileRef]:
        """The profiles whose target is the node ``key`` (their file sections hold its value)."""
        with self.lock:
            return list(self._by_target.get(key, ()))
