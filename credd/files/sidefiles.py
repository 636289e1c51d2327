"""The files credd keeps next to an AWS file it writes: its temp files, the last-known-good copy
``<file>.credd-good`` and the copy saved before writing over a wiped file ``<file>.credd-saved``
(all 0600); with the atomic write credd uses for files only it writes, and the removal of temp
files a killed credd left behind."""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import tempfile
from contextlib import suppress
from pathlib import Path

log = logging.getLogger(__name__)

TMP_SUFFIX = ".credd-tmp"
GOOD_SUFFIX = ".credd-good"
SAVED_SUFFIX = ".credd-saved"


def sidecar(target: Path, suffix: str) -> Path:
    return target.with_name(target.name + suffix)


def read_good(target: Path) -> bytes | None:
    try:
        return sidecar(target, GOOD_SUFFIX).read_bytes()
    except FileNotFoundError:
        return None


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Temp file next to ``path``, fsync, rename over ``path``, fsync the directory. For files
    only credd writes (the good copy, the SSO cache): no check against other writers."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _temp_name(target: Path) -> re.Pattern[str]:
    """Names of credd's temp files for ``target`` and for its good/saved copies."""
    name = re.escape(target.name)
    kinds = rf"(\.\d+|{re.escape(GOOD_SUFFIX)}|{re.escape(SAVED_SUFFIX)})?"  # none: older credd
    return re.compile(rf"^\.{name}{kinds}\.[a-z0-9_]{{8}}{re.escape(TMP_SUFFIX)}$")


def remove_stale_temps(target: Path) -> list[str]:
    """Remove our leftover temp files for ``target`` (a killed writer's). The caller holds the
    lock, and credd makes temp files only under it, so none of them is in use."""
    removed: list[str] = []
    pattern = _temp_name(target)
    uid = os.getuid()
    with suppress(FileNotFoundError):
        for entry in os.scandir(target.parent):
            if not pattern.match(entry.name):
                continue
            with suppress(FileNotFoundError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_uid == uid:
                    os.unlink(entry.path)
                    removed.append(entry.name)
    if removed:
        log.info("removed %d temp file(s) a killed writer left next to %s", len(removed), target)
    return removed


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
