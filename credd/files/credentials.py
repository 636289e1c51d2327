"""Writing short-lived profiles into the shared credentials file, safely.

Tools that only read files get credd's sessions from sections credd writes into
``~/.aws/credentials`` (``AWS_SHARED_CREDENTIALS_FILE``). Every write:

- holds an exclusive ``flock`` on a sidecar file next to the real file
  (``credentials.credd-lock``), so renaming the credentials file does not defeat it; the wait is
  bounded (``lock_timeout``) and ends in :class:`~credd.errors.CredentialsFileError`;
- reads the file, parses it with configupdater and rebuilds it from the parsed blocks, so every
  byte outside credd's own sections (comments, blank lines, order, other sections) is kept;
- writes a temp file in the same directory (0600), fsyncs it, ``os.replace``\\ s it over the real
  file (through a symlink to its target) and fsyncs the directory;
- first checks that nobody who does not lock (the AWS CLI, an editor) changed the file since it
  was read, and starts over if so (a bounded number of times).

credd's sections carry :data:`MARKER_COMMENT` and the keys ``credd_managed_by`` (the profile
they were written for) and ``credd_expiration`` (ISO 8601 UTC with ``Z``). A section without the
marker is never overwritten: :class:`~credd.errors.ForeignSection`. See docs/credentials-file.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from configupdater import ConfigUpdater, Option, Section

from credd.clock import Clock, SystemClock, isoformat_z, parse_iso
from credd.errors import ConfigError, ForeignSection
from credd.files.ini import (
    CREDENTIALS_ERRORS,
    check_name,
    check_value,
    detect_eol,
    drop_appended_eol,
    expand_path,
    is_space,
    locked_update,
    parse_ini,
    read_snapshot,
    reassemble,
    split_section,
)
from credd.files.patched import Owned, PatchCache, SectionText
from credd.models import Credentials

log = logging.getLogger(__name__)

MARKER_COMMENT = "# managed by credd: rewritten before expiry; do not edit"
KEY_OWNER = "credd_managed_by"
KEY_EXPIRATION = "credd_expiration"
KEY_ID = "aws_access_key_id"
KEY_SECRET = "aws_secret_access_key"  # noqa: S105 - a key name, not a secret
KEY_TOKEN = "aws_session_token"  # noqa: S105 - a key name, not a secret
RESERVED_KEYS = frozenset({KEY_ID, KEY_SECRET, KEY_TOKEN, KEY_OWNER, KEY_EXPIRATION})

#: How many times a write starts over when someone else changed the file meanwhile.
MAX_ATTEMPTS = 5


def credentials_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """``AWS_SHARED_CREDENTIALS_FILE`` (``~`` and ``$VARS`` expanded, as botocore does), else
    ``~/.aws/credentials``."""
    return expand_path(environ, "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")


@dataclass(frozen=True)
class SectionWrite:
    """One section to write: ``[section]`` holding ``credentials`` for credd profile ``owner``.

    ``extra`` holds further keys written after the credentials, e.g. ``{"region": "us-east-1"}``.
    """

    section: str
    owner: str
    credentials: Credentials
    extra: Mapping[str, str] = field(default_factory=dict)


def _owner_of(section: Section) -> str | None:
    opt = section.get(KEY_OWNER)
    if isinstance(opt, Option) and opt.value is not None:
        return str(opt.value).strip()
    return None


def _expired(section: Owned, now: datetime) -> bool:
    if not section.expiration:
        return False
    try:
        return parse_iso(section.expiration) <= now
    except ValueError:
        return False


def _validate(writes: Sequence[SectionWrite]) -> None:
    seen: set[str] = set()
    for w in writes:
        check_name(w.section, "credentials file section (credd_file_profile)")
        check_name(w.owner, "profile name")
        if w.section in seen:
            raise ConfigError(
                f"two credd profiles would write the same section [{w.section}]",
                hint="give each managed profile its own credd_file_profile",
                section=w.section,
            )
        seen.add(w.section)
        for key, value in w.extra.items():
            check_name(key, "key", key=True)
            if key.lower() in RESERVED_KEYS:
                raise ConfigError(
                    f"key {key!r} cannot be set as an extra key; credd writes it itself",
                    hint="remove it from the extra settings",
                )
            check_value(value, key)


def _body(w: SectionWrite, eol: str) -> str:
    creds = w.credentials
    for secret in (creds.access_key_id, creds.secret_access_key, creds.session_token or ""):
        if "\n" in secret or "\r" in secret:
            raise ConfigError("credentials contain a line break and cannot be written")
    lines = [MARKER_COMMENT, f"{KEY_ID} = {creds.access_key_id}"]
    lines.append(f"{KEY_SECRET} = {creds.secret_access_key}")
    if creds.session_token:
        lines.append(f"{KEY_TOKEN} = {creds.session_token}")
    lines.extend(f"{k} = {v.strip()}" for k, v in w.extra.items())
    lines.append(f"{KEY_OWNER} = {w.owner}")
    if creds.expiration is not None:
        lines.append(f"{KEY_EXPIRATION} = {isoformat_z(creds.expiration)}")
    return "".join(line + eol for line in lines)


class CredentialsFileWriter:
    """Writes and removes credd's sections in the shared credentials file.

    ``before_commit`` and ``before_replace`` are seams for tests: when set, they are called with
    the real file path after the temp file is written and fsynced, respectively before the check
    that the file is unchanged and between that check and the rename.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        lock_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else credentials_file_path()
        self.lock_timeout = lock_timeout
        self.clock: Clock = clock or SystemClock()
        self.before_commit: Callable[[Path], None] | None = None
        self.before_replace: Callable[[Path], None] | None = None
        self._group = threading.Lock()
        self._gathering: _Batch | None = None
        self._committing = False
        self._parsed = PatchCache(
            lambda text: SectionText.parse(
                text, self.path, CREDENTIALS_ERRORS, KEY_OWNER, KEY_EXPIRATION
            )
        )

    def _update(self, transform: Callable[[str], str | None]) -> bool:
        return locked_update(
            self.path,
            transform,
            keep_mode=False,
            lock_timeout=self.lock_timeout,
            clock=self.clock,
            errors=CREDENTIALS_ERRORS,
            before_commit=self.before_commit,
            before_replace=self.before_replace,
            attempts=MAX_ATTEMPTS,
        )

    def write(self, writes: Sequence[SectionWrite]) -> None:
        """Write every section in one locked, atomic rewrite.

        Sections credd does not own (and live sections owned by another credd profile) are left
        alone; the others are written, then :class:`ForeignSection` is raised naming the refused
        ones. Bad names or values raise :class:`ConfigError` before anything is touched.

        Group commit: threads writing at the same time share one rewrite (the first one in
        writes for all who joined while it waited), so 1,000 profiles refreshed together cost a
        handful of rewrites of the file, not 1,000 rewrites queueing on its lock.
        """
        if not writes:
            return
        _validate(writes)
        batch = self._join(writes)
        if batch.error is not None:
            raise batch.error
        mine = {w.section for w in writes}
        for w in writes if log.isEnabledFor(logging.INFO) else ():
            if w.section not in batch.refused:
                log.info(
                    "wrote [%s] for %s (key %s, expires %s) to %s",
                    w.section,
                    w.owner,
                    w.credentials.masked_key_id,
                    isoformat_z(w.credentials.expiration) if w.credentials.expiration else "never",
                    self.path,
                )
        refused = {k: v for k, v in batch.refused.items() if k in mine}
        if refused:
            raise _foreign_error(refused, {w.section: w.owner for w in writes}, self.path)

    def _join(self, writes: Sequence[SectionWrite]) -> _Batch:
        """Add ``writes`` to the batch being gathered; the first caller commits batches until
        none is left, the others wait for theirs."""
        with self._group:
            batch = self._gathering
            if batch is None:
                batch = self._gathering = _Batch()
            for w in writes:
                batch.writes[w.section] = w  # a later write of a section wins
            leader = not self._committing
            if leader:
                self._committing = True
        if not leader:
            batch.done.wait()
            return batch
        while True:
            with self._group:
                todo = self._gathering
                self._gathering = None
                if todo is None:
                    self._committing = False
                    break
            try:
                todo.refused = self._commit(list(todo.writes.values()))
            except Exception as exc:  # handed to every writer of the batch
                todo.error = exc
            todo.done.set()
        return batch

    def _commit(self, writes: Sequence[SectionWrite]) -> dict[str, str | None]:
        """One locked rewrite: the file's text as :class:`SectionText` (the last one credd
        produced when the file still holds it, else a full parse), credd's sections patched."""
        refused: dict[str, str | None] = {}

        def transform(text: str) -> str | None:
            refused.clear()
            doc = self._parsed.get(text)
            now = self.clock.now()
            bodies: dict[str, tuple[str, Owned]] = {}
            for w in writes:
                sec = doc.sections.get(w.section)
                if sec is not None and (
                    sec.owner is None or (sec.owner != w.owner and not _expired(sec, now))
                ):
                    refused[w.section] = sec.owner
                    continue
                exp = w.credentials.expiration
                held = Owned(0, w.owner, isoformat_z(exp) if exp is not None else None)
                bodies[w.section] = (_body(w, doc.eol), held)
            new = doc.patched(bodies)
            out = new.text()
            if out == text:
                return None
            self._parsed.keep(new)
            return out

        self._update(transform)
        return dict(refused)

    def remove(self, sections: Sequence[str], *, owner: str | None = None) -> list[str]:
        """Remove credd-owned sections (only those of ``owner`` when given).

        Sections credd does not own, and missing ones, are skipped. Returns the removed names.
        """
        return self.remove_owned({name: owner for name in sections})

    def remove_owned(self, wanted: Mapping[str, str | None]) -> list[str]:
        """Remove each credd-owned section named in ``wanted`` in one rewrite, only when its
        owner is the one given (``None``: any owner). A reload that drops 1,000 profiles is one
        locked rewrite, not 1,000. Returns the removed names."""
        removed: list[str] = []
        if not wanted or not self.path.resolve().exists():
            return removed

        def transform(text: str) -> str | None:
            removed.clear()
            doc = parse_ini(text, self.path, CREDENTIALS_ERRORS)
            eol = detect_eol(text)
            pieces: list[str] = []
            tail_removed = False
            for block in doc.iter_blocks():
                sec_owner = _owner_of(block) if isinstance(block, Section) else None
                if (
                    isinstance(block, Section)
                    and block.name in wanted
                    and sec_owner is not None
                    and wanted[block.name] in (None, sec_owner)
                ):
                    removed.append(block.name)
                    _, trailing = split_section(block)
                    while trailing and is_space(trailing[0]):
                        trailing.pop(0)
                    pieces.extend(str(b) for b in trailing)
                    tail_removed = not trailing
                else:
                    pieces.append(reassemble(block))
                    tail_removed = False
            out = "".join(pieces)
            if tail_removed:
                out = drop_appended_eol(out, eol)
            return out if removed else None

        self._update(transform)
        if removed:
            log.info("removed %s from %s", ", ".join(f"[{n}]" for n in removed), self.path)
        return list(removed)

    def owned_sections(self) -> dict[str, str]:
        """Section name -> owner profile, for every section carrying credd's marker."""
        snap = read_snapshot(self.path.resolve(), CREDENTIALS_ERRORS)
        if not snap.exists:
            return {}
        doc: ConfigUpdater = parse_ini(snap.text, self.path, CREDENTIALS_ERRORS)
        out: dict[str, str] = {}
        for sec in doc.iter_sections():
            owner = _owner_of(sec)
            if owner is not None:
                out[sec.name] = owner
        return out


@dataclass
class _Batch:
    """Writes gathered for one rewrite, and its outcome."""

    writes: dict[str, SectionWrite] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    refused: dict[str, str | None] = field(default_factory=dict)
    error: Exception | None = None


def _foreign_error(refused: dict[str, str | None], wanted: dict[str, str], path: Path) -> Exception:
    foreign = sorted(n for n, o in refused.items() if o is None)
    others = sorted(n for n, o in refused.items() if o is not None)
    parts = []
    if foreign:
        names = ", ".join(f"[{n}]" for n in foreign)
        parts.append(f"{path} already has {names}, not written by credd; credd never overwrites it")
    for n in others:
        parts.append(f"[{n}] is credd's, but written for profile {refused[n]!r}, not {wanted[n]!r}")
    return ForeignSection(
        "; ".join(parts),
        hint=(
            "rename or remove that section in the credentials file, or set credd_file_profile "
            "in the profile's config section to a section name that is free"
        ),
        sections=sorted(refused),
    )
