"""The profiles ``credd sso populate`` generates, as an edit of the AWS config's text (pure).

:func:`plan_edit` takes the old text, what the portal listed and the options, and gives the new
text and what changed (:class:`Plan`); :func:`unified_diff` shows it. :mod:`credd.sso.populate`
runs it under credd's lock on the file.

- Generated sections carry ``credd_generated = LOGIN`` (the sso-session name, or the start URL
  of a legacy login); botocore and the AWS CLI ignore keys they do not know. Only sections with
  that key *for this login* are ever changed or removed; every other byte stays as it was.
- In a generated section credd sets its own keys (``sso_session`` or ``sso_start_url`` and
  ``sso_region``, ``sso_account_id``, ``sso_role_name``, ``region``, ``--set`` keys, ``credd =
  true`` with ``--manage``) in place; keys and comments people added are kept, and ``credd``
  is never removed (``credd disable`` is how to stop managing one).
- Names: :mod:`credd.sso.naming`. A generated profile whose name the options now give
  differently is renamed in place. New ones are appended, sorted by name.
- A generated profile the login no longer reaches is ``stale``; with ``prune`` it is removed
  (with the blank lines after it, not the comments), unless another profile uses it as
  ``source_profile`` (then it is kept and said so).
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from configupdater import Option, Section

from credd.errors import UsageError
from credd.files.config import _render_section
from credd.files.ini import (
    CONFIG_ERRORS,
    append_block,
    check_name,
    check_value,
    detect_eol,
    drop_appended_eol,
    header_text,
    is_space,
    parse_ini,
    reassemble,
    split_section,
)
from credd.sso.naming import Assignment, NameTemplate, assign_names
from credd.sso.settings import SsoTarget

MARKER = "credd_generated"
#: Keys populate writes itself; ``--set`` may not name them.
OWN_KEYS = frozenset(
    {
        "sso_session",
        "sso_start_url",
        "sso_region",
        "sso_account_id",
        "sso_role_name",
        "sso_registration_scopes",
        "region",
        "credd",
        MARKER,
    }
)
#: botocore's rule for a region name (as :mod:`credd.aws.config` checks it)
_REGION = re.compile(r"^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$")
_SECRET_LINE = re.compile(
    r"^(?P<head>[ +\-]?\s*(aws_secret_access_key|aws_session_token)\s*[=:]\s*)\S.*$",
    re.IGNORECASE,
)

Action = Literal["added", "updated", "renamed", "unchanged", "pruned", "stale"]


@dataclass(frozen=True)
class Options:
    """What the command line asked for."""

    names: NameTemplate = field(default_factory=NameTemplate)
    region: str | None = None  # None: the SSO region
    manage: bool = False
    prune: bool = False
    extra: tuple[tuple[str, str], ...] = ()  # --set KEY=VALUE

    def __post_init__(self) -> None:
        if self.region is not None and not _REGION.match(self.region):
            raise UsageError(f"--region {self.region!r} is not a region name")
        for key, value in self.extra:
            check_name(key, "config key", key=True)
            check_value(value, key)
            if key.lower() in OWN_KEYS:
                raise UsageError(
                    f"--set {key}: credd sets that key itself",
                    hint="use --region for region and --manage for credd",
                )


@dataclass(frozen=True)
class Change:
    action: Action
    profile: str
    account_id: str | None = None
    role_name: str | None = None
    account_name: str | None = None
    previous: str | None = None  # the name before a rename
    note: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"action": self.action, "profile": self.profile}
        for key in ("account_id", "account_name", "role_name", "previous", "note"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class Plan:
    text: str
    changes: tuple[Change, ...]

    def of(self, *actions: Action) -> list[Change]:
        return [c for c in self.changes if c.action in actions]


def settings_for(target: SsoTarget, pair: Assignment, options: Options) -> dict[str, str]:
    """The keys of ``pair``'s generated profile, in the order a new section lists them."""
    out: dict[str, str] = {}
    if target.session_name is not None:
        out["sso_session"] = target.session_name
    else:
        out["sso_start_url"] = target.start_url
        out["sso_region"] = target.region
    out["sso_account_id"] = pair.account_id
    out["sso_role_name"] = pair.role_name
    out["region"] = options.region or target.region
    out.update((k.lower(), v) for k, v in options.extra)
    if options.manage:
        out["credd"] = "true"
    out[MARKER] = target.label
    return out


def profile_name(section: str) -> str | None:
    """The profile a config section holds, as botocore reads it (``None``: not a profile):
    ``configloader.build_profile_map`` splits ``profile NAME`` like a shell (``[profile "a
    b"]`` is ``a b``) and keeps it only when that gives two words."""
    if section == "default":
        return section
    if not section.startswith("profile"):
        return None
    try:
        parts = shlex.split(section)
    except ValueError:
        return None
    return parts[1] if len(parts) == 2 else None


def _value(section: Section, key: str) -> str | None:
    opt = section.get(key)
    if isinstance(opt, Option) and opt.value is not None:
        return str(opt.value).strip()
    return None


@dataclass
class _Mine:
    """A section generated for this login."""

    section: str
    profile: str
    key: tuple[str, str] | None  # (account id, role name); None when someone removed them


def _survey(sections: Iterable[Section], label: str) -> tuple[list[_Mine], set[str], set[str]]:
    """(this login's generated sections, names of every other profile, source_profile names)."""
    mine: list[_Mine] = []
    others: set[str] = set()
    sources: set[str] = set()
    for sec in sections:
        name = profile_name(sec.name)
        if name is None:
            continue
        source = _value(sec, "source_profile")
        if source:
            sources.add(source)
        if _value(sec, MARKER) != label or name == "default":
            others.add(name)
            continue
        account, role = _value(sec, "sso_account_id"), _value(sec, "sso_role_name")
        mine.append(_Mine(sec.name, name, (account, role) if account and role else None))
    return mine, others, sources


@dataclass
class _Edit:
    """One plan in the making: the document's generated sections sorted out."""

    target: SsoTarget
    options: Options
    pairs: dict[tuple[str, str], Assignment]
    primary: dict[tuple[str, str], _Mine]
    removed: set[str]  # sections to delete
    sources: set[str]
    names: dict[tuple[str, str], str] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    def keep(self, own: _Mine, block: Section, eol: str) -> str:
        """The text of a generated section that stays (updated, renamed or untouched)."""
        if own.key is None or self.primary.get(own.key) is not own:
            self.changes.append(_stale_change(own, self.pairs, self.options, self.sources))
            return reassemble(block)
        pair = self.pairs[own.key]
        name = self.names[own.key]
        piece = _render_section(block, settings_for(self.target, pair, self.options), set(), eol)
        if name != own.profile:
            piece = f"[profile {name}]{eol}" + piece[len(header_text(block, eol)) :]
            action: Action = "renamed"
        else:
            action = "unchanged" if piece == reassemble(block) else "updated"
        self.changes.append(_change(action, name, pair, previous=own.profile))
        return piece

    def drop(self, own: _Mine, block: Section) -> str:
        """What is left of a pruned section: the comments after it that lead to the next."""
        self.changes.append(_stale_change(own, self.pairs, self.options, self.sources))
        _, trailing = split_section(block)
        while trailing and is_space(trailing[0]):
            trailing.pop(0)
        return "".join(str(b) for b in trailing)


def plan_edit(
    text: str,
    path: Path,
    target: SsoTarget,
    listing: Sequence[Assignment],
    options: Options,
    *,
    taken: Collection[str] = (),
) -> Plan:
    """The config ``text`` with ``listing``'s profiles in it; ``taken``: more names that belong
    to someone else (the credentials file's sections)."""
    doc = parse_ini(text, path, CONFIG_ERRORS)
    eol = detect_eol(text)
    pairs = {p.key: p for p in listing}
    mine, others, sources = _survey(doc.iter_sections(), target.label)
    primary: dict[tuple[str, str], _Mine] = {}
    for own in mine:
        if own.key is not None and own.key in pairs and own.key not in primary:
            primary[own.key] = own
    stale = [own for own in mine if own.key is None or primary.get(own.key) is not own]
    removed = {own.section for own in stale if options.prune and own.profile not in sources}
    edit = _Edit(target, options, pairs, primary, removed, sources)
    blocked = set(taken) | others | {own.profile for own in stale if own.section not in removed}
    # a profile another one stands on (source_profile) keeps its name: a rename would break it
    pinned = {key: own.profile for key, own in primary.items() if own.profile in sources}
    current = {key: own.profile for key, own in primary.items()}
    free = [pair for key, pair in pairs.items() if key not in pinned]
    blocked |= set(pinned.values())
    edit.names = {
        **assign_names(free, options.names, taken=blocked, current=current),
        **pinned,
    }

    by_section = {own.section: own for own in mine}
    pieces: list[str] = []
    tail_removed = False
    for block in doc.iter_blocks():
        found = by_section.get(block.name) if isinstance(block, Section) else None
        tail_removed = False
        if found is None or not isinstance(block, Section):
            pieces.append(reassemble(block))
        elif found.section in removed:
            pieces.append(edit.drop(found, block))
            tail_removed = not pieces[-1]
        else:
            pieces.append(edit.keep(found, block, eol))
    out = "".join(pieces)
    if tail_removed:
        out = drop_appended_eol(out, eol)
    for key in sorted(set(pairs) - set(primary), key=lambda k: edit.names[k]):
        settings = settings_for(target, pairs[key], options)
        body = "".join(f"{k} = {v}{eol}" for k, v in settings.items())
        out = append_block(out, f"[profile {edit.names[key]}]{eol}{body}", eol)
        edit.changes.append(_change("added", edit.names[key], pairs[key]))
    return Plan(out, tuple(sorted(edit.changes, key=lambda c: (c.profile, c.action))))


def _change(action: Action, name: str, pair: Assignment, *, previous: str | None = None) -> Change:
    return Change(
        action,
        name,
        pair.account_id,
        pair.role_name,
        pair.account_name,
        previous=previous if previous != name else None,
    )


def _stale_change(
    m: _Mine, pairs: Mapping[tuple[str, str], Assignment], options: Options, sources: set[str]
) -> Change:
    account, role = m.key if m.key is not None else (None, None)
    if m.key is None:
        why = "generated, but its sso_account_id or sso_role_name was removed"
    elif m.key in pairs:
        why = "a second generated profile for the same account and role"
    else:
        why = "this login no longer reaches that account and role"
    if not options.prune:
        return Change("stale", m.profile, account, role, note=why + "; --prune removes it")
    if m.profile in sources:
        note = why + "; kept: another profile uses it as source_profile"
        return Change("stale", m.profile, account, role, note=note)
    return Change("pruned", m.profile, account, role, note=why)


def mask_secrets(line: str) -> str:
    """A config line with the value of a secret key replaced (diff context may show one)."""
    match = _SECRET_LINE.match(line)
    return match.group("head") + "****" if match else line


def unified_diff(old: str, new: str, path: Path) -> str:
    """The change as a unified diff (secret values in context lines masked)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=str(path),
        tofile=f"{path} (after credd sso populate)",
    )
    out = []
    for line in lines:
        end = "\n" if line.endswith("\n") else "\n\\ No newline at end of file\n"
        out.append(mask_secrets(line.rstrip("\r\n")) + end)
    return "".join(out)
