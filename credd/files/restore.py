"""Finding and restoring what the AWS files lost since credd last wrote them (``credd doctor``).

Each write credd makes keeps a last-known-good copy ``<file>.credd-good`` (0600) next to the
file, and, when credd had to write over a file that was empty or had lost sections for longer
than the settle bound, the copy from before as ``<file>.credd-saved`` (see
:mod:`credd.files.safewrite`). :func:`inspect` compares the file with the saved copy (else the good
one): a section of yours there that the file lacks is reported. :func:`restore` appends those
sections back through the same locked, race-checked write as every other edit; :func:`accept`
declares the file as it is now good (you removed them on purpose). Sections credd writes itself
(``credd_managed_by``) are not restored: the daemon rewrites them. A section holding secret keys
(``aws_access_key_id`` / ``aws_secret_access_key``) is restored only when asked for
(``--include-keys``): keys you deleted on purpose, after ``credd keys import`` moved them into
the secret store or because they leaked, must never come back into a plain-text file unasked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from configupdater import Section

from credd.clock import SystemClock
from credd.errors import CreddError
from credd.files.ini import (
    CONFIG_ERRORS,
    CREDENTIALS_ERRORS,
    Errors,
    append_block,
    detect_eol,
    locked_update,
    parse_ini,
    real_target,
    split_section,
)
from credd.files.sidefiles import GOOD_SUFFIX, SAVED_SUFFIX, atomic_write, sidecar

OWNER_KEY = "credd_managed_by"
#: a section with one of these holds a secret key: restored only with ``include_keys``
KEY_NAMES = ("aws_access_key_id", "aws_secret_access_key")


@dataclass(frozen=True)
class Restored:
    added: list[str]  # sections appended back
    held: list[str]  # lost sections left out because they hold secret keys


@dataclass(frozen=True)
class Finding:
    path: Path
    backup: Path | None  # the copy compared with (saved, else good); None: no copy yet
    lost: list[str]  # sections of yours in the copy that the file lacks


def _backup(target: Path) -> Path | None:
    for suffix in (SAVED_SUFFIX, GOOD_SUFFIX):
        candidate = sidecar(target, suffix)
        if candidate.is_file():
            return candidate
    return None


def _holding_keys(text: str, path: Path, errors: Errors) -> set[str]:
    """Names of the sections of ``text`` that hold a secret key."""
    doc = parse_ini(text, path, errors)
    return {
        block.name
        for block in doc.iter_blocks()
        if isinstance(block, Section) and any(block.get(k) is not None for k in KEY_NAMES)
    }


def _yours(text: str, path: Path, errors: Errors) -> dict[str, str]:
    """Section name -> its text (header and keys, no trailing blank lines), credd's left out."""
    doc = parse_ini(text, path, errors)
    eol = detect_eol(text)
    out: dict[str, str] = {}
    for block in doc.iter_blocks():
        if not isinstance(block, Section) or block.get(OWNER_KEY) is not None:
            continue
        keys, _ = split_section(block)
        head = "".join(block.lines)
        body = "".join(str(b) for b in keys)
        text_ = head + body
        out[block.name] = text_ if text_.endswith("\n") else text_ + eol
    return out


def _current(target: Path) -> str:
    try:
        return target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def inspect(path: Path, errors: Errors) -> Finding:
    """What the file at ``path`` lacks compared with credd's copy. Raises ``errors.cls`` when
    the file or the copy cannot be read or parsed."""
    target = real_target(path)
    backup = _backup(target)
    if backup is None:
        return Finding(target, None, [])
    try:
        kept = _yours(backup.read_text(encoding="utf-8"), backup, errors)
        now = parse_ini(_current(target), target, errors)
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.cls(f"cannot compare {target} with {backup}: {exc}") from None
    return Finding(target, backup, [name for name in kept if not now.has_section(name)])


def restore(path: Path, errors: Errors, *, include_keys: bool = False) -> Restored:
    """Append the lost sections from the copy, those holding secret keys only with
    ``include_keys``. Drops the saved copy unless a section was held back."""
    finding = inspect(path, errors)
    if finding.backup is None or not finding.lost:
        return Restored([], [])
    copy = finding.backup.read_text(encoding="utf-8")
    kept = _yours(copy, finding.backup, errors)
    keyed = _holding_keys(copy, finding.backup, errors)
    held = [] if include_keys else [name for name in finding.lost if name in keyed]
    wanted = [name for name in finding.lost if name not in held]
    added: list[str] = []

    def transform(text: str) -> str | None:
        added.clear()
        doc = parse_ini(text, finding.path, errors)
        eol = detect_eol(text)
        out = text
        for name in wanted:
            if not doc.has_section(name):
                out = append_block(out, kept[name].replace("\r\n", "\n").replace("\n", eol), eol)
                added.append(name)
        return out if added else None

    if wanted:
        locked_update(
            finding.path, transform, keep_mode=True, lock_timeout=10, clock=SystemClock(),
            errors=errors,
        )  # fmt: skip
    if not held:
        _drop_saved(finding.path)
    return Restored(added, held)


def accept(path: Path, errors: Errors) -> None:
    """The file as it is now is what you want: it becomes the good copy; the saved one goes."""
    target = real_target(path)
    try:
        atomic_write(sidecar(target, GOOD_SUFFIX), _current(target).encode("utf-8"))
    except OSError as exc:
        raise errors.cls(f"cannot update credd's copy of {target}: {exc.strerror}") from None
    _drop_saved(target)


def _drop_saved(target: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(sidecar(target, SAVED_SUFFIX))


def describe(finding: Finding, what: str) -> tuple[bool, str]:
    """(whether something is lost, one line for a person)."""
    if finding.backup is None:
        return False, f"the {what} {finding.path}: credd has no copy yet (it keeps one per write)"
    if not finding.lost:
        return False, f"the {what} {finding.path} has every section of credd's last-known-good copy"
    names = ", ".join(f"[{n}]" for n in finding.lost)
    return True, (
        f"the {what} {finding.path} lost {names} since credd last saw it (copy: {finding.backup})"
    )


def aws_files(environ: Mapping[str, str] | None) -> list[tuple[str, Path, Errors]]:
    """(doctor check name, path, errors) of the credentials file and the config file."""
    from credd.files.config import config_file_path
    from credd.files.credentials import credentials_file_path

    return [
        ("credentials-file", credentials_file_path(environ), CREDENTIALS_ERRORS),
        ("config-file", config_file_path(environ), CONFIG_ERRORS),
    ]


def restore_files(
    environ: Mapping[str, str] | None, out: TextIO, *, accepting: bool, include_keys: bool = False
) -> int:
    """``credd doctor --restore-files [--include-keys]`` / ``--accept-files`` on both files;
    the exit status."""
    status = 0
    for _, path, errors in aws_files(environ):
        try:
            if accepting:
                accept(path, errors)
                out.write(f"credd's copy of {path} now matches the file\n")
                continue
            done = restore(path, errors, include_keys=include_keys)
        except CreddError as exc:
            out.write(f"{path}: {exc.message}\n")
            status = 1
            continue
        names = ", ".join(f"[{n}]" for n in done.added)
        if done.added or not done.held:
            out.write(f"restored {names} to {path}\n" if names else f"{path}: nothing to restore\n")
        if done.held:
            out.write(_held_line(path, done.held))
    return status


def _held_line(path: Path, held: list[str]) -> str:
    names = ", ".join(f"[{n}]" for n in held)
    return (
        f"{path}: not restored: {names} (they hold secret keys). If you removed them on purpose "
        "(after credd keys import, or because they leaked): credd doctor --accept-files; to put "
        "them back, keys included: credd doctor --restore-files --include-keys\n"
    )
