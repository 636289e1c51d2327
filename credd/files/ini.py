"""Safe edits of the AWS INI files, shared by :mod:`credd.files.credentials` and
:mod:`credd.files.config`.

- an exclusive ``flock`` on a sidecar ``<file>.credd-lock`` next to the real file (a rename of
  the file does not defeat it), with a bounded wait on an injected clock;
- the commit protocol of :mod:`credd.files.safewrite` against writers that do not lock (the AWS CLI,
  editors): temp file written and fsynced first, identity re-checked right before the rename and
  the replaced inode checked right after it, a bounded wait when the file looks like a
  truncate-then-write in progress, a last-known-good copy, stale temp files removed; a
  symlinked file is written through to its target;
- parsing with configupdater and rebuilding text from its blocks, so bytes credd does not change
  are kept exactly. Parse errors name the line number only: a line may hold a secret.
"""

from __future__ import annotations

import configparser
import fcntl
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from configupdater import ConfigUpdater, Option, Section, Space
from configupdater.block import Block

from credd.clock import Clock
from credd.errors import ConfigError, CreddError, CredentialsFileError
from credd.files.safewrite import SETTLE_SECONDS, Committer, Settle
from credd.files.sidefiles import atomic_write as atomic_write  # used by credd.sso.cache

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".credd-lock"


@dataclass(frozen=True)
class Errors:
    """Which error class to raise for which file, and what to tell the person."""

    cls: type[CreddError]
    what: str


CREDENTIALS_ERRORS = Errors(CredentialsFileError, "credentials file")
CONFIG_ERRORS = Errors(ConfigError, "AWS config file")

_VAR = re.compile(r"\$(\w+|\{[^}]*\})")


def expand_path(environ: Mapping[str, str] | None, var: str, default: str) -> Path:
    """``environ[var]`` or ``default``, with ``$VARS`` then ``~`` expanded, as botocore does."""
    env = os.environ if environ is None else environ
    raw = env.get(var) or default

    def sub(m: re.Match[str]) -> str:
        name = m.group(1).strip("{}")
        return env.get(name, m.group(0))

    value = _VAR.sub(sub, raw)
    if value == "~" or value.startswith("~/"):
        home = env.get("HOME") or os.path.expanduser("~")
        value = home + value[1:]
    return Path(os.path.expanduser(value))


_BAD_NAME = re.compile(r"[\[\]\r\n]")
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def check_name(name: str, what: str, *, key: bool = False) -> None:
    """Refuse a section/profile/key name the INI format (or botocore) cannot carry."""
    bad = (
        not name
        or name != name.strip()
        or bool(_BAD_NAME.search(name))
        or name == configparser.DEFAULTSECT
        or (key and not _KEY.match(name))
    )
    if bad:
        raise ConfigError(
            f"{name!r} is not a usable {what}",
            hint="use letters, digits, '-', '_' or '.', with no brackets, spaces or line breaks",
        )


def check_value(value: str, key: str) -> None:
    if "\n" in value or "\r" in value:
        raise ConfigError(f"the value for {key!r} has a line break", hint="give a one-line value")


@dataclass(frozen=True)
class Snapshot:
    exists: bool
    data: bytes
    text: str
    ident: tuple[int, int, int] | None  # (inode, size, mtime_ns)
    mode: int | None


def read_snapshot(path: Path, errors: Errors) -> Snapshot:
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise errors.cls(f"{path} is not a regular file", hint="point it at a file")
            data = fh.read()
    except FileNotFoundError:
        return Snapshot(False, b"", "", None, None)
    except OSError as exc:
        raise errors.cls(
            f"cannot read the {errors.what} {path}: {exc.strerror}",
            hint="check the file's owner and permissions",
        ) from exc
    text = decode(data, path, errors)
    ident = (st.st_ino, st.st_size, st.st_mtime_ns)
    return Snapshot(True, data, text, ident, stat.S_IMODE(st.st_mode))


def decode(data: bytes, path: Path, errors: Errors) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.cls(
            f"the {errors.what} {path} is not UTF-8 text (byte {exc.start}); left untouched",
            hint="fix or re-save the file as UTF-8",
        ) from None


def _error_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if errors:
        return f"line {errors[0][0]}"
    lineno = getattr(exc, "lineno", None)
    return f"line {lineno}" if lineno else "somewhere"


def parse_ini(text: str, path: Path, errors: Errors) -> ConfigUpdater:
    """Parse with configupdater, and check botocore's parser (``RawConfigParser``) agrees."""
    doc = ConfigUpdater()
    try:
        doc.read_string(text)
        configparser.RawConfigParser().read_string(text)
    except configparser.Error as exc:
        raise errors.cls(
            f"the {errors.what} {path} cannot be parsed ({type(exc).__name__} at "
            f"{_error_line(exc)}); credd left it untouched",
            hint="fix that line (every key must sit under a [section] and look like key = value)",
        ) from None
    if reassemble(doc) != text:
        raise errors.cls(
            f"credd cannot rewrite {path} without changing bytes it does not own; left untouched",
            hint="please report this file's layout (without secrets) as a credd bug",
        )
    return doc


def reassemble(block: Block | ConfigUpdater) -> str:
    """The exact text of a parsed block (or whole document), built from its parts."""
    if isinstance(block, ConfigUpdater):
        return "".join(reassemble(b) for b in block.iter_blocks())
    if isinstance(block, Section):
        return "".join(block.lines) + "".join(str(b) for b in block.iter_blocks())
    return str(block)


def header_text(section: Section, eol: str) -> str:
    head = "".join(section.lines)
    return head if head.endswith("\n") else head + eol


def split_section(section: Section) -> tuple[list[Block], list[Block]]:
    """(blocks up to and including the last option, the blank lines/comments after it)."""
    blocks: list[Block] = list(section.iter_blocks())
    last = max((i for i, b in enumerate(blocks) if isinstance(b, Option)), default=-1)
    return blocks[: last + 1], blocks[last + 1 :]


def is_space(block: Block) -> bool:
    return isinstance(block, Space)


def detect_eol(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def append_block(text: str, block: str, eol: str) -> str:
    """``block`` appended after one blank line (none in an empty file). A file without a final
    newline only gets its last line ended, no blank line: removing the block then gives back
    exactly the bytes it had (see :func:`drop_appended_eol`)."""
    return text + eol + block if text else block


def drop_appended_eol(out: str, eol: str) -> str:
    """After removing the last section: undo the line end :func:`append_block` added before it
    (the blank line, or the end of a last line that had none)."""
    return out[: -len(eol)] if out.endswith(eol) else out


@contextmanager
def exclusive_lock(target: Path, *, timeout: float, clock: Clock, errors: Errors) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on ``<target>.credd-lock``; give up after ``timeout`` seconds."""
    lock_path = target.with_name(target.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise errors.cls(
            f"cannot open the lock file {lock_path}: {exc.strerror}",
            hint=f"check that you may write in {lock_path.parent}",
        ) from exc
    try:
        deadline = clock.now() + timedelta(seconds=timeout)
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock.now() >= deadline:
                    raise errors.cls(
                        f"another process has held the lock on the {errors.what} {target} "
                        f"for more than {timeout:g}s",
                        hint=f"see who holds it with `fuser {lock_path}`; a stuck credd or "
                        "editor may need to be stopped",
                    ) from None
                clock.sleep(pause)
                pause = min(pause * 2, 0.05)
        yield
    finally:
        os.close(fd)


def real_target(path: Path) -> Path:
    """Where a write must land: the final target of a symlink chain, made absolute."""
    return Path(os.path.realpath(path))


def locked_update(
    path: Path,
    transform: Callable[[str], str | None],
    *,
    keep_mode: bool,
    lock_timeout: float,
    clock: Clock,
    errors: Errors,
    before_commit: Callable[[Path], None] | None = None,
    before_replace: Callable[[Path], None] | None = None,
    attempts: int = 5,
    settle: float = SETTLE_SECONDS,
) -> bool:
    """Apply ``transform`` (old text -> new text, or ``None`` for no change) under the lock.

    Returns whether the file was written. New files are 0600; an existing file keeps its mode
    when ``keep_mode``, else becomes 0600. The commit protocol against writers that do not lock
    is :class:`credd.files.safewrite.Committer`. Raises ``errors.cls`` when the file kept changing
    under us ``attempts`` times.
    """
    target = real_target(path)
    if not target.parent.is_dir():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def on_bytes(data: bytes) -> bytes | None:
        new = transform(decode(data, target, errors))
        return None if new is None else new.encode("utf-8")

    def too_busy(message: str) -> CreddError:
        return errors.cls(
            f"the {errors.what} {target} {message}; nothing was written",
            hint="another program is rewriting it in a loop; stop it and try again",
        )

    committer = Committer(
        target,
        mode_for=lambda mode: mode if (keep_mode and mode is not None) else 0o600,
        settle=Settle(clock, settle),
        error=too_busy,
        before_commit=before_commit,
        before_replace=before_replace,
        attempts=attempts,
    )
    with exclusive_lock(target, timeout=lock_timeout, clock=clock, errors=errors):
        try:
            return committer.run(on_bytes)
        except IsADirectoryError:
            raise errors.cls(f"{target} is not a regular file", hint="point it at a file") from None
        except OSError as exc:
            raise errors.cls(
                f"cannot write the {errors.what} {target}: {exc.strerror}",
                hint=f"check free space and that you may write in {target.parent}",
            ) from exc
