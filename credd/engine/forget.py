"""``credd forget``: drop held and saved sessions and credd's file sections of some profiles."""

from __future__ import annotations

import logging

from credd.engine.entry import ProfileRef
from credd.engine.refresh import Refresher
from credd.engine.reload import remove_file_sections
from credd.engine.state import State
from credd.engine.table import Table

log = logging.getLogger(__name__)


def forget(table: Table, refresher: Refresher, chosen: ProfileRef | None) -> dict[str, list[str]]:
    """Forget ``chosen`` (its own nodes: an MFA session other profiles also use is kept), or
    every profile (``None``). Dropped nodes wait, unscheduled, until a request or ``credd
    refresh`` fetches anew. Returns what went: sessions, saved sessions, file sections."""
    with table.lock:
        refs = dict(table.profiles) if chosen is None else {chosen.name: chosen}
        others = [r.plan for n, r in table.profiles.items() if r.plan and n not in refs]
    shared = {node.key for plan in others for node in plan.nodes()}
    keys = [
        node.key
        for ref in refs.values()
        if ref.plan is not None
        for node in ref.plan.nodes()
        if node.key not in shared  # an sso-token node: only the copy in memory
    ]
    done: dict[str, list[str]] = {"sessions": [], "saved": [], "file_sections": []}
    for key in dict.fromkeys(keys):
        entry = table.entries[key]
        inflight = entry.inflight
        if inflight is not None:  # let a running refresh land first, then drop it
            refresher.wait(inflight)
        refresher.scheduler.cancel(key)
        held = entry.snap.creds is not None
        entry.commit(
            creds=None,
            state=State.PENDING,
            error=None,
            waiting_for=None,
            next_refresh_at=None,
            last_refresh_at=None,
        )
        if held:
            done["sessions"].append(key)
        if refresher.persist is not None and refresher.persist.delete(key):
            done["saved"].append(key)
    for ref in refs.values():
        if ref.plan is not None:
            done["file_sections"] += remove_file_sections(refresher, [ref.plan.target.profile])
    log.info("forgot %s: %s", chosen.name if chosen else "every profile", done)
    return done
