"""What ``status`` says about each profile: built from node snapshots, apart from the state itself.

A profile's status is a function of the snapshots of its plan's nodes (the target's state and
credentials, an ancestor that waits for a person, the node that takes MFA codes). Each snapshot
carries a version bumped by every change (:meth:`credd.engine.entry.Entry.commit`), so a
profile's status is rebuilt only when one of its nodes changed; the list of every profile only
when the engine's change counter moved. For the socket, each profile's JSON is kept as text with
two holes for the relative times (``expires_in_seconds``, ``next_refresh_in_seconds``), filled
per request: an unchanged status of 1,000 profiles is a join of strings, not 1,000 rebuilds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from credd.clock import UTC, isoformat_z
from credd.engine.entry import Entry, ProfileRef, Snapshot
from credd.engine.scheduler import RefreshPolicy
from credd.engine.state import PERSON, State, shown
from credd.engine.table import Table
from credd.errors import CreddError
from credd.models import ProfileStatus
from credd.plan import lifetime
from credd.plan.planner import Plan, explain

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = timedelta(microseconds=1)
#: the relative fields of ``ProfileStatus.to_json`` and the absolute time each counts down to
_RELATIVE = {"expires_in_seconds": "expires_at", "next_refresh_in_seconds": "next_refresh_at"}
_SEPARATORS = (",", ":")
#: (node generation, snapshot version) of every node in a profile's plan
Key = tuple[tuple[int, int], ...]


class StatusBook:
    """Every profile's status, rebuilt only where something changed. Thread-safe."""

    def __init__(self, table: Table, policy: RefreshPolicy) -> None:
        self._table = table
        self._policy = policy
        self._lock = threading.Lock()
        self._built: dict[str, tuple[ProfileRef, Key, ProfileStatus, Fragment]] = {}
        self._all: tuple[int, list[ProfileStatus], Fragment] | None = None

    def profile(self, ref: ProfileRef) -> ProfileStatus:
        return self._entry(ref)[0]

    def all(self) -> list[ProfileStatus]:
        return list(self._everything()[0])

    def body(self, now: datetime) -> bytes:
        """The JSON array of every profile's ``to_json(now)``, as the socket sends it."""
        return self._everything()[1].render((now - _EPOCH) // _MICROS).encode()

    def _everything(self) -> tuple[list[ProfileStatus], Fragment]:
        table = self._table
        changes = table.changes.value
        with self._lock:
            cached = self._all
        if cached is not None and cached[0] == changes:
            return cached[1], cached[2]
        with table.lock:
            profiles = table.profiles
        refs = [profiles[name] for name in sorted(profiles)]
        built = [self._entry(ref) for ref in refs]
        statuses, array = [b[0] for b in built], Fragment.array([b[1] for b in built])
        with self._lock:
            self._all = (changes, statuses, array)  # tagged with the count read before
            names = {ref.name for ref in refs}
            for gone in [n for n in self._built if n not in names]:
                del self._built[gone]
        return statuses, array

    def _entry(self, ref: ProfileRef) -> tuple[ProfileStatus, Fragment]:
        entries = self._table.entries
        plan = ref.plan
        key: Key = ()
        if plan is not None:
            nodes = [entries[n.key] for n in plan.nodes()]
            key = tuple((e.generation, e.snap.version) for e in nodes)
        with self._lock:
            cached = self._built.get(ref.name)
        if cached is not None and cached[0] is ref and cached[1] == key:
            return cached[2], cached[3]
        status = build(ref, entries, self._policy)
        fragment = Fragment(status)
        with self._lock:
            self._built[ref.name] = (ref, key, status, fragment)
        return status, fragment


def build(ref: ProfileRef, entries: dict[str, Entry], policy: RefreshPolicy) -> ProfileStatus:
    """One profile's status from its plan's node snapshots."""
    plan = ref.plan
    if plan is None:
        return ProfileStatus(
            name=ref.name,
            kind=ref.kind,
            state=State.ERROR,
            error=ref.error.to_json() if ref.error else None,
            waiting_for=ref.error.hint if ref.error else None,
        )
    target = entries[plan.target.key]
    snap = target.snap
    code_node = plan.code_node()
    code_entry = entries[code_node.key] if code_node else None
    mfa_source = _safe(lambda: code_entry.source.mfa_source) if code_entry else None
    err = snap.error or snap.file_error
    creds = snap.creds
    return ProfileStatus(
        name=ref.name,
        kind=ref.kind,
        state=shown(snap.state, refreshing=snap.refreshing),
        expires_at=creds.expiration if creds else None,
        next_refresh_at=snap.next_refresh_at,
        waiting_for=waiting_for(plan, entries, snap),
        error=err.to_json() if err else None,
        mfa_source=mfa_source,
        file_profile=plan.target.profile.file_profile,
        last_refresh_at=snap.last_refresh_at,
        key_id=creds.masked_key_id if creds else None,
        plan=sentence(plan, mfa_source, code_entry.snap if code_entry else None, policy),
        longest=longest(plan, snap).to_json(),
    )


def waiting_for(plan: Plan, entries: dict[str, Entry], snap: Snapshot) -> str | None:
    """What the target waits for; else what an ancestor asks a person for ahead of expiry."""
    if snap.waiting_for is not None:
        return snap.waiting_for
    for node in plan.nodes()[:-1]:
        ancestor = entries[node.key].snap
        if ancestor.state in PERSON:
            return ancestor.waiting_for
    return None


def sentence(
    plan: Plan, mfa_source: str | None, code: Snapshot | None, policy: RefreshPolicy
) -> str:
    """How credd gets the profile's credentials, and when a person is next asked."""
    text = explain(plan, mfa_source)
    if code is None or mfa_source != "person":
        return text
    if code.state is State.NEEDS_MFA:
        return text + f" A person is needed now: credd mfa {plan.profile}."
    creds = code.creds
    if creds is not None and creds.expiration is not None:
        lead = policy.lead(
            creds.expiration - (code.last_refresh_at or creds.expiration), unattended=False
        )
        return text + f" Next request: {isoformat_z(creds.expiration - lead)}."
    return text


def longest(plan: Plan, target: Snapshot) -> lifetime.Longest:
    """The lifetime guard's limit for the plan, with the lifetime the target last got."""
    creds, issued = target.creds, target.last_refresh_at
    seen = creds.expiration - issued if creds and creds.expiration and issued else None
    return lifetime.longest(plan, seen)


class Fragment:
    """A profile's ``to_json`` as JSON text with its relative times left open (``%d``).

    ``render(now)`` equals ``json.dumps(status.to_json(now), separators=(",", ":"))`` byte for
    byte (pinned by a test), at the cost of a subtraction per relative time."""

    __slots__ = ("_holes", "_text")

    def __init__(self, status: ProfileStatus | None = None) -> None:
        self._text: str = ""
        self._holes: tuple[int, ...] = ()
        if status is None:
            return
        text, sep, holes = "{", "", list[int]()
        for name, value in status.to_json(_EPOCH).items():
            text += sep + json.dumps(name) + ":"
            sep = ","
            at = getattr(status, _RELATIVE[name]) if name in _RELATIVE else None
            if at is not None:
                text += "%d"
                holes.append((at - _EPOCH) // _MICROS)
            else:
                text += json.dumps(value, separators=_SEPARATORS).replace("%", "%%")
        self._text = text + "}"
        self._holes = tuple(holes)

    @classmethod
    def array(cls, fragments: list[Fragment]) -> Fragment:
        """The JSON array of ``fragments``: one template, every hole in order (one format call
        per request for the whole status)."""
        joined = cls()
        joined._text = "[" + ",".join(f._text for f in fragments) + "]"
        joined._holes = tuple(at for f in fragments for at in f._holes)
        return joined

    def render(self, now_us: int) -> str:
        """The JSON at ``now_us`` (microseconds since the epoch)."""
        # as to_json: int(timedelta.total_seconds()), the same true division of microseconds
        return self._text % tuple([int((at - now_us) / 10**6) for at in self._holes])


def _safe(fn: Callable[[], str | None]) -> str | None:
    try:
        return fn()
    except CreddError:
        return None
