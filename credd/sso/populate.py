"""``credd sso populate``: one profile per (account, role) a login reaches, in ``~/.aws/config``.

1. the login's token from the shared cache (:class:`credd.sso.tokens.TokenStore`: refreshed
   first when due; none, or an ended one, is :class:`~credd.errors.LoginRequired` naming the
   ``credd login`` command);
2. every account and role it reaches (:mod:`credd.sso.portal`: paginated, throttle-aware,
   through the one client factory);
3. the edit (:func:`credd.sso.generate.plan_edit`, names from :mod:`credd.sso.naming`), made
   under credd's lock on the config file (:func:`credd.files.ini.locked_update`: temp file,
   fsync, atomic rename, the commit protocol against writers that do not lock), from the file as
   it is at that moment, so a concurrent ``aws configure set`` or editor is neither lost nor
   collided with. Nothing changed: nothing written, not even the modification time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from credd.aws.clients import ClientFactory
from credd.clock import Clock, SystemClock
from credd.files.config import config_file_path
from credd.files.credentials import credentials_file_path
from credd.files.ini import (
    CONFIG_ERRORS,
    CREDENTIALS_ERRORS,
    locked_update,
    read_snapshot,
    real_target,
)
from credd.sso.cache import TokenCache
from credd.sso.generate import Action, Options, Plan, plan_edit, unified_diff
from credd.sso.naming import Assignment
from credd.sso.portal import Lister
from credd.sso.settings import SsoTarget
from credd.sso.tokens import TokenStore

_SECTION = re.compile(r"^[ \t]*\[([^\]\r\n]+)\]", re.MULTILINE)


def credentials_names(path: Path) -> set[str]:
    """Section names of the credentials file: profiles botocore merges into the config's, so
    a generated profile must not share one (its static keys would win over SSO)."""
    snap = read_snapshot(real_target(path), CREDENTIALS_ERRORS)
    return {m.group(1).strip() for m in _SECTION.finditer(snap.text)}


@dataclass
class Outcome:
    """What one run found and did."""

    target: SsoTarget
    path: Path
    listing: list[Assignment]
    plan: Plan
    old_text: str
    written: bool
    dry_run: bool
    retries: int = 0

    @property
    def changed(self) -> bool:
        return self.plan.text != self.old_text

    @property
    def accounts(self) -> int:
        return len({p.account_id for p in self.listing})

    def diff(self) -> str:
        return unified_diff(self.old_text, self.plan.text, self.path)

    def to_json(self) -> dict[str, object]:
        by_action: dict[str, list[dict[str, str]]] = {a: [] for a in ACTIONS}
        for change in self.plan.changes:
            by_action[change.action].append(change.to_json())
        return {
            "login": self.target.label,
            "sso_session": self.target.session_name,
            "start_url": self.target.start_url,
            "config_file": str(self.path),
            "accounts": self.accounts,
            "roles": len(self.listing),
            "dry_run": self.dry_run,
            "changed": self.changed,
            "written": self.written,
            **by_action,
        }


ACTIONS: tuple[Action, ...] = ("added", "updated", "renamed", "unchanged", "pruned", "stale")


def populate(
    target: SsoTarget,
    options: Options,
    *,
    profile: str | None = None,
    factory: ClientFactory | None = None,
    cache: TokenCache | None = None,
    clock: Clock | None = None,
    path: Path | None = None,
    credentials_path: Path | None = None,
    dry_run: bool = False,
    lock_timeout: float = 10.0,
) -> Outcome:
    """List what ``target``'s login reaches and write (or, ``dry_run``, only plan) the
    profiles. ``profile``: whose endpoint settings the portal calls use. The token is the one
    in the shared cache, refreshed first when due; none, or an ended one, is
    :class:`~credd.errors.LoginRequired` naming the login command."""
    clock = clock or SystemClock()
    factory = factory or ClientFactory()
    store = TokenStore(cache or TokenCache(clock=clock), factory, clock=clock)
    token = store.access_token(target, profile=profile if target.legacy else None)
    lister = Lister(target, token, factory, profile=profile, clock=clock)
    listing = lister.assignments()
    config = path if path is not None else config_file_path()
    taken = credentials_names(credentials_path or credentials_file_path())
    seen: dict[str, object] = {}

    def transform(text: str) -> str | None:
        plan = plan_edit(text, config, target, listing, options, taken=taken)
        seen.update(plan=plan, text=text)
        return None if plan.text == text else plan.text

    if dry_run:
        transform(read_snapshot(real_target(config), CONFIG_ERRORS).text)
        written = False
    else:
        written = locked_update(
            config,
            transform,
            keep_mode=True,
            lock_timeout=lock_timeout,
            clock=clock,
            errors=CONFIG_ERRORS,
        )
    plan, text = seen["plan"], seen["text"]
    assert isinstance(plan, Plan) and isinstance(text, str)
    return Outcome(target, config, listing, plan, text, written, dry_run, lister.retries)
