"""A reload: the config's plans become entries; unchanged nodes keep their state.

New nodes start (from a saved session when one was made for the same settings and is still
servable), removed ones stop, and credd's file sections of removed or changed profiles go. Runs
under the exclusive side of the table's commit lock, so no refresh outcome interleaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from credd.aws.config import AwsConfig, ManagedProfile
from credd.engine.entry import Entry, ProfileRef, parents_first
from credd.engine.refresh import Refresher
from credd.engine.state import State
from credd.engine.table import Table
from credd.errors import ConfigError, CreddError
from credd.models import Credentials
from credd.plan.planner import CodeSourceOf, Node, decided_once, plan_for
from credd.sources import Source

log = logging.getLogger(__name__)


def wanted_nodes(
    config: AwsConfig, code_source_of: CodeSourceOf
) -> tuple[dict[str, Node], dict[str, ProfileRef]]:
    """Every node the config's plans use (by key), and every profile (with its plan or error)."""
    profiles: dict[str, ProfileRef] = {}
    wanted: dict[str, Node] = {}
    decided = decided_once(code_source_of)  # one answer per profile per load
    for name, prof in config.managed.items():
        try:
            plan = plan_for(config, name, decided)
        except ConfigError as exc:
            log.warning("profile %s: no plan: %s", name, exc.message)
            profiles[name] = ProfileRef(name, prof.kind, None, exc)
            continue
        profiles[name] = ProfileRef(name, prof.kind, plan)
        for node in plan.nodes():
            wanted.setdefault(node.key, node)
    for name, broken in config.broken.items():
        profiles[name] = ProfileRef(name, "unknown", None, broken.error)
    return wanted, profiles


class Adopter:
    """Swaps the table's entries for a new config's."""

    def __init__(
        self, table: Table, refresher: Refresher, source_factory: Callable[[Node], Source]
    ) -> None:
        self._table = table
        self._refresher = refresher
        self._source_factory = source_factory

    def adopt(self, wanted: dict[str, Node], profiles: dict[str, ProfileRef]) -> None:
        """Under the exclusive commit lock: swap entries, then stop the old ones."""
        table = self._table
        with table.lock:
            old = dict(table.entries)
            old_profiles = dict(table.profiles)
        nodes: dict[str, Entry] = {}
        for key in parents_first(wanted):
            node = wanted[key]
            current = old.get(key)
            if current is not None and current.node == node:
                current.children.clear()
                nodes[key] = current
            else:
                nodes[key] = Entry(key, node, self._source_factory(node), table.changes)
        restored = self._restore_saved(old, nodes)
        for key, node in wanted.items():
            if node.parent is not None:
                nodes[node.parent.key].children.add(key)
        table.swap(nodes, profiles)
        for key, entry in old.items():
            if nodes.get(key) is not entry:
                self._refresher.scheduler.cancel(key)
        self._remove_stale_sections(old, old_profiles, profiles, nodes)
        for entry in restored:
            creds = entry.snap.creds
            if creds is not None:
                self._refresher.write_files(entry, creds)
        if self._refresher.running:
            for key, entry in nodes.items():
                if old.get(key) is not entry:
                    self._refresher.schedule_first(entry)

    def _remove_stale_sections(
        self,
        old: dict[str, Entry],
        old_profiles: dict[str, ProfileRef],
        profiles: dict[str, ProfileRef],
        nodes: dict[str, Entry],
    ) -> None:
        stale: list[ManagedProfile] = []
        for name, ref in old_profiles.items():
            if ref.plan is None:
                continue
            new = profiles.get(name)
            target = nodes.get(new.plan.target.key) if new and new.plan else None
            if target is None or (old.get(target.key) is not target and target.snap.creds is None):
                # removed, or its settings changed: what the file holds is the old settings'
                stale.append(ref.plan.target.profile)
        remove_file_sections(self._refresher, stale)

    def _restore_saved(self, old: dict[str, Entry], nodes: dict[str, Entry]) -> list[Entry]:
        """Drop saved sessions of changed/removed nodes; restore those of new nodes."""
        persist = self._refresher.persist
        if persist is None:
            return []
        for key, entry in old.items():
            if nodes.get(key) is not entry:
                persist.delete(key)
        persist.prune(set(nodes))
        restored: list[Entry] = []
        for key, entry in nodes.items():
            if old.get(key) is entry:
                continue
            saved = persist.restore(entry.node, self._servable_at)
            if saved is not None:
                entry.commit(
                    creds=saved.credentials, state=State.FRESH, last_refresh_at=saved.issued_at
                )
                restored.append(entry)
        return restored

    def _servable_at(self, creds: Credentials, issued: datetime) -> bool:
        return self._refresher.servable(creds, issued)


def remove_file_sections(refresher: Refresher, profs: Sequence[ManagedProfile]) -> list[str]:
    """Remove credd's sections of ``profs`` from the credentials file in one rewrite; what was
    removed."""
    writer = refresher.writer
    wanted = {p.file_profile: p.name for p in profs if p.file_profile is not None}
    if writer is None or not wanted:
        return []
    try:
        return writer.remove_owned(wanted)
    except CreddError as exc:
        names = ", ".join(sorted(p.name for p in profs))
        log.warning("profiles %s: could not remove their file sections: %s", names, exc)
        return []
