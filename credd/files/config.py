"""``credd enable`` / ``credd disable``: edit ``~/.aws/config`` (``AWS_CONFIG_FILE``) in place.

Only the lines that change are touched: a key already present keeps its place (and its
``key = `` spelling), new keys go right after the section's last key (before the blank lines and
comments that lead into the next section), a new section is appended after one blank line.
Same discipline as the credentials writer (:mod:`credd.files.ini`): sidecar lock, temp file,
fsync, atomic rename, symlinks written through. An existing file keeps its mode; a new one is 0600.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from configupdater import ConfigUpdater, Option, Section

from credd.aws import config as awsconfig
from credd.clock import Clock, SystemClock
from credd.errors import ConfigError, ProfileNotFound
from credd.files.credentials import KEY_OWNER, credentials_file_path
from credd.files.ini import (
    CONFIG_ERRORS,
    CREDENTIALS_ERRORS,
    append_block,
    check_name,
    check_value,
    detect_eol,
    expand_path,
    header_text,
    locked_update,
    parse_ini,
    read_snapshot,
    real_target,
    reassemble,
    split_section,
)

log = logging.getLogger(__name__)

ENABLE_KEY = "credd"
_TRUE = frozenset({"true", "yes", "on", "1"})
_PREFIX = re.compile(
    r"^(?P<indent>[ \t]*)(?P<key>.*?)(?P<before>[ \t]*)(?P<delim>[=:])(?P<after>[ \t]*)"
)


def config_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """``AWS_CONFIG_FILE`` (``~``, ``$VARS`` expanded as botocore does), else ``~/.aws/config``."""
    return expand_path(environ, "AWS_CONFIG_FILE", "~/.aws/config")


def _check_profile(name: str) -> None:
    check_name(name, "profile name")
    if any(c.isspace() for c in name):
        raise ConfigError(
            f"{name!r} is not a usable profile name: botocore ignores names with spaces",
            hint="use letters, digits, '-', '_' or '.'",
        )


def _section_names(name: str) -> list[str]:
    """Config sections that hold profile ``name``, preferred first (the first is created)."""
    if name == "default":
        return ["default", "profile default"]
    return [f"profile {name}"]


def _find(doc: ConfigUpdater, name: str) -> str | None:
    for candidate in _section_names(name):
        if doc.has_section(candidate):
            return candidate
    return None


def _in_credentials_file(name: str) -> bool:
    """Whether the credentials file has a ``[name]`` section of the user's (not one of credd's)."""
    path = credentials_file_path()
    snap = read_snapshot(real_target(path), CREDENTIALS_ERRORS)
    if not snap.exists:
        return False
    doc = parse_ini(snap.text, path, CREDENTIALS_ERRORS)
    return doc.has_section(name) and not doc[name].has_option(KEY_OWNER)


def _option_line(opt: Option, value: str, eol: str) -> str:
    first = opt.lines[0] if opt.lines else f"{opt.raw_key} = "
    m = _PREFIX.match(first)
    if m is None:  # configupdater parsed it, so this does not happen; stay safe anyway
        return f"{opt.raw_key} = {value}{eol}"
    after = m["after"] or (" " if m["before"] else "")
    return f"{m['indent']}{m['key']}{m['before']}{m['delim']}{after}{value}{eol}"


def _render_section(section: Section, settings: dict[str, str], drop: set[str], eol: str) -> str:
    """The section with ``settings`` set (in place or appended after the last key), ``drop``
    keys removed, every other line as it was."""
    keys, trailing = split_section(section)
    pending = dict(settings)
    out = [header_text(section, eol)]
    for block in keys:
        if isinstance(block, Option):
            key = block.key.lower()
            if key in drop:
                continue
            if key in pending:
                out.append(_option_line(block, pending.pop(key), eol))
                continue
        out.append(str(block))
    if pending:
        if not out[-1].endswith("\n"):
            out[-1] += eol
        out.extend(f"{k} = {v}{eol}" for k, v in pending.items())
    out.extend(str(b) for b in trailing)
    return "".join(out)


def _edit(
    path: Path,
    name: str,
    settings: dict[str, str],
    drop: set[str],
    *,
    create_ok: bool,
    lock_timeout: float,
    clock: Clock,
) -> tuple[bool, bool]:
    """Returns (section found, file written)."""
    found = False

    def transform(text: str) -> str | None:
        nonlocal found
        doc = parse_ini(text, path, CONFIG_ERRORS)
        eol = detect_eol(text)
        section_name = _find(doc, name)
        found = section_name is not None
        if section_name is None:
            if not create_ok:
                return None
            body = "".join(f"{k} = {v}{eol}" for k, v in settings.items())
            return append_block(text, f"[{_section_names(name)[0]}]{eol}{body}", eol)
        pieces = []
        for block in doc.iter_blocks():
            if isinstance(block, Section) and block.name == section_name:
                pieces.append(_render_section(block, settings, drop, eol))
            else:
                pieces.append(reassemble(block))
        out = "".join(pieces)
        return out if out != text else None

    written = locked_update(
        path,
        transform,
        keep_mode=True,
        lock_timeout=lock_timeout,
        clock=clock,
        errors=CONFIG_ERRORS,
    )
    return found, written


def _clean_settings(settings: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {ENABLE_KEY: "true"}
    for key, value in (settings or {}).items():
        check_name(key, "config key", key=True)
        value = str(value).strip()
        check_value(value, key)
        out[key.lower()] = value
    return out


def check_enable(name: str, values: Mapping[str, str], path: Path) -> None:
    """Refuse what the daemon would refuse: the profile as it will read after the edit goes
    through the daemon's own checks (:func:`credd.aws.config.build`, then the planner).

    Whether codes come from a person is decided by the daemon from the keyring, which may
    change after this edit (``credd totp set``): here it counts as unattended.
    """
    from credd.plan.planner import plan_for
    from credd.sources.codes import decide

    environ = {**os.environ, "AWS_CONFIG_FILE": str(path)}
    try:
        profiles, sessions = awsconfig.read_files(environ)
    except ConfigError:
        profiles, sessions = {}, {}  # the file itself is refused when it is edited
    profiles = {**profiles, name: {**profiles.get(name, {}), **values}}
    config = awsconfig.build(profiles, sessions, awsconfig.session_minimum(environ))
    broken = config.broken.get(name)
    if broken is not None:
        raise broken.error
    plan_for(config, name, lambda p: decide(p, has_seed=lambda: True))  # a seed may come later


def _not_found(name: str, path: Path) -> ProfileNotFound:
    section = _section_names(name)[0]
    return ProfileNotFound(
        f"no profile {name!r} in {path} nor in the credentials file",
        hint=f"add a [{section}] section to {path}, or run `credd enable --create {name}`",
        profile=name,
    )


def enable_profile(
    name: str,
    settings: Mapping[str, str] | None = None,
    *,
    path: Path | None = None,
    create: bool = False,
    lock_timeout: float = 10.0,
    clock: Clock | None = None,
) -> Path:
    """Set ``credd = true`` and each of ``settings`` in profile ``name``'s config section.

    The section (``[default]`` or ``[profile NAME]``) is created when missing if ``create`` is
    true or the credentials file has a ``[NAME]`` section of the user's; otherwise
    :class:`ProfileNotFound`. Returns the config file path. Running it twice changes nothing.
    """
    _check_profile(name)
    target = Path(path).expanduser() if path is not None else config_file_path()
    values = _clean_settings(settings)
    check_enable(name, values, target)
    create_ok = create or _in_credentials_file(name)
    if not create_ok:  # fail before creating a directory or lock file for nothing
        snap = read_snapshot(real_target(target), CONFIG_ERRORS)
        if _find(parse_ini(snap.text, target, CONFIG_ERRORS), name) is None:
            raise _not_found(name, target)
    found, written = _edit(
        target,
        name,
        values,
        set(),
        create_ok=create_ok,
        lock_timeout=lock_timeout,
        clock=clock or SystemClock(),
    )
    if not found and not create_ok:
        raise _not_found(name, target)
    log.info(
        "enabled credd for profile %s in %s (%s)",
        name,
        target,
        "changed" if written else "already so",
    )
    return target


def disable_profile(
    name: str,
    *,
    path: Path | None = None,
    lock_timeout: float = 10.0,
    clock: Clock | None = None,
) -> bool:
    """Remove the ``credd`` key from profile ``name`` (other ``credd_*`` keys stay, so
    enabling again keeps the choices). Returns whether the profile was enabled;
    :class:`ProfileNotFound` when the config has no such profile."""
    _check_profile(name)
    target = Path(path).expanduser() if path is not None else config_file_path()
    snap = read_snapshot(real_target(target), CONFIG_ERRORS)
    doc = parse_ini(snap.text, target, CONFIG_ERRORS)
    section_name = _find(doc, name)
    if section_name is None:
        raise _not_found(name, target)
    current = doc[section_name].get(ENABLE_KEY)
    was_enabled = isinstance(current, Option) and str(current.value or "").strip().lower() in _TRUE
    found, written = _edit(
        target,
        name,
        {},
        {ENABLE_KEY},
        create_ok=False,
        lock_timeout=lock_timeout,
        clock=clock or SystemClock(),
    )
    if not found:  # removed by someone else between the two reads
        raise _not_found(name, target)
    log.info("disabled credd for profile %s in %s (%s)", name, target, written)
    return was_enabled
