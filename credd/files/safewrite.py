"""Committing a new version of an AWS file that other programs rewrite without locking.

The AWS CLI (``aws configure set``), editors and scripts rewrite ``~/.aws/credentials`` and
``~/.aws/config`` without taking credd's lock, most of them by truncating the file and then writing
it (``open(path, "w")``). :func:`commit` makes credd's rename-based write safe against them:

1. it reads the file through a descriptor it keeps open (so it can look at *that* inode later)
   and holds a read lease on it (:mod:`credd.files.leases`): while the lease is held, any process
   that opens the inode for writing blocks in its ``open`` and credd sees the lease broken;
2. a file another process has open for writing (the lease cannot be taken) is a write in
   progress: credd waits for it to be closed, bounded by ``writer_seconds``; a file that is
   missing, empty or lost a ``[section]`` since credd last wrote it (the last-known-good copy)
   may be a truncate-then-write caught in its gap: credd waits for it to change, bounded by
   ``settle`` seconds on the injected clock, and re-reads;
3. it writes and fsyncs the temp file *first*, then checks that the lease is unbroken and the
   path still holds the inode it read, unchanged (device, inode, size, mtime_ns and every
   byte), then renames;
4. after the rename it looks at the replaced inode again, at once and :data:`LINGER` later: a
   writer that resolved the path to it before the rename is blocked in its ``open`` (the lease
   is broken) or, without leases, has written there; credd releases it, waits for it to close
   (bounded), takes that inode's content as the new base and commits again over its own;
5. a new file is created with ``link`` (never clobbers a file that appeared meanwhile);
6. stale temp files of killed writers are removed at the next write (under the lock, so none is
   in use), and the last-known-good copy ``<file>.credd-good`` (0600) is refreshed; when credd
   had to write over a file that lost sections and stayed that way, the previous good copy is
   kept as ``<file>.credd-saved`` for ``credd doctor --restore-files``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from credd.clock import Clock
from credd.errors import CreddError
from credd.files.leases import Lease, broken, release, take, wait_closed
from credd.files.sidefiles import (
    GOOD_SUFFIX,
    SAVED_SUFFIX,
    TMP_SUFFIX,
    atomic_write,
    fsync_dir,
    read_good,
    remove_stale_temps,
    sidecar,
)

log = logging.getLogger(__name__)

#: How long a file that looks like a write in progress may stay so before credd accepts it.
SETTLE_SECONDS = 1.0
#: How long credd waits for a process that has the file open for writing to close it.
WRITER_SECONDS = 5.0
#: How long after its rename credd looks again at the inode it replaced.
LINGER = 0.05
_POLL = 0.002
_SECTION = re.compile(rb"[ \t]*\[([^\]\r\n]*)\]")

#: (dev, inode, size, mtime_ns). Not ctime: the rename itself changes the ctime of both inodes.
Ident = tuple[int, int, int, int]


class Raced(Exception):
    """Internal: the file changed between read and commit; start over from ``fresh``."""


@dataclass
class Seen:
    """One inode credd read (through ``fd``, kept open) and what it held; ``fd`` None: no file."""

    fd: int | None
    ident: Ident | None
    data: bytes
    mode: int | None
    lease: Lease = Lease.NONE

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _ident(st: os.stat_result) -> Ident:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_fd(fd: int) -> tuple[Ident, bytes]:
    st = os.fstat(fd)
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return _ident(st), b"".join(chunks)


def open_seen(path: Path) -> Seen:
    """Open and read ``path``, keeping the descriptor. Raises OSError (not ENOENT)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return Seen(None, None, b"", None)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file")
        lease = take(fd)  # before reading: a write after the read breaks it
        ident, data = _read_fd(fd)
    except BaseException:
        os.close(fd)
        raise
    return Seen(fd, ident, data, stat.S_IMODE(st.st_mode), lease)


def unchanged(seen: Seen) -> bool:
    """Whether the inode ``seen`` was read from still holds exactly what was read, and (with
    a lease) no process has opened it for writing since; a broken lease is released at once,
    so that writer's ``open`` goes on."""
    if seen.fd is None:
        return True
    if seen.lease is Lease.HELD and broken(seen.fd):
        release(seen.fd)
        seen.lease = Lease.BROKEN
    if seen.lease is Lease.BROKEN:
        return False
    ident, data = _read_fd(seen.fd)
    return ident == seen.ident and data == seen.data


def still_at(path: Path, seen: Seen) -> bool:
    """Whether ``path`` still names the inode of ``seen`` (or still nothing), unchanged."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return seen.fd is None
    if seen.ident is None or (st.st_dev, st.st_ino) != seen.ident[:2]:
        return False
    return unchanged(seen)


def sections(data: bytes) -> set[bytes]:
    """The ``[section]`` names in ``data``. Line by line: one multi-line regex over a file of
    1,000 sections took 30 ms, four times per commit (issue 9); this takes 2 ms."""
    found: set[bytes] = set()
    for line in data.split(b"\n"):
        if line.lstrip(b" \t").startswith(b"["):
            m = _SECTION.match(line)
            if m:
                found.add(m.group(1))
    return found


def looks_interrupted(seen: Seen, good: bytes | None) -> bool:
    """Whether the file may be a truncate-then-write caught in its gap: empty (unless credd
    itself last left it empty), or, compared with the last-known-good copy, missing or short
    of a ``[section]``."""
    if seen.fd is not None and not seen.data:
        return good != b""
    if not good:
        return False
    if seen.fd is not None and seen.data == good:
        return False  # exactly what credd left: no need to list 1,000 sections twice
    return seen.fd is None or not sections(good) <= sections(seen.data)


def write_temp(target: Path, data: bytes, mode: int) -> tuple[str, Seen]:
    """A fsynced temp file next to ``target``; its path and a :class:`Seen` of it, through a
    read-only descriptor kept open with a lease (no one else knows the name yet)."""
    fd, tmp = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=TMP_SUFFIX
    )
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        lease = take(fd)  # our own write descriptor is closed: nothing has it open for writing
        ident, _ = _read_fd(fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp, Seen(fd, ident, data, mode, lease)


@dataclass
class Settle:
    """Bounded waits on the injected clock: ``seconds`` for a file that only looks like a write
    in progress, ``writer_seconds`` for one that a process is known to have open for writing."""

    clock: Clock
    seconds: float
    writer_seconds: float = WRITER_SECONDS

    def until_changed(self, path: Path, seen: Seen, deadline: datetime) -> Seen:
        """Re-read ``path`` until it differs from ``seen`` (its bytes, or whether a process has
        it open for writing) or ``deadline`` passes; the last read."""
        pause = _POLL
        was_busy = seen.lease is Lease.WRITER
        while self.clock.now() < deadline:
            self.clock.sleep(pause)
            pause = min(pause * 2, 0.05)
            fresh = open_seen(path)
            busy = fresh.lease is Lease.WRITER
            if (fresh.ident, fresh.data, busy) != (seen.ident, seen.data, was_busy):
                return fresh
            fresh.close()
        return seen

    def inode(self, seen: Seen) -> bytes:
        """The content of ``seen``'s inode once a foreign write to it has finished (bounded).
        With a lease: every writer has closed it. Without: non-empty and the same on two looks
        in a row."""
        assert seen.fd is not None
        if seen.lease is not Lease.NONE:
            seen.lease = wait_closed(seen.fd, self.clock, self.writer_seconds)
            if seen.lease is Lease.HELD:
                return _read_fd(seen.fd)[1]
        deadline = self.clock.now() + timedelta(seconds=self.seconds)
        last = _read_fd(seen.fd)
        pause = _POLL
        while self.clock.now() < deadline:
            self.clock.sleep(pause)
            pause = min(pause * 2, 0.05)
            now = _read_fd(seen.fd)
            if now == last and now[1]:
                break
            last = now
        return last[1]


def install(tmp: str, target: Path, at_path: Seen) -> None:
    """Put ``tmp`` at ``target``: rename over the inode read, or link when there was none."""
    if at_path.fd is None:
        try:
            os.link(tmp, target)  # fails if a file appeared meanwhile: never clobbers it
        except FileExistsError:
            raise Raced from None
    else:
        os.replace(tmp, target)


Transform = Callable[[bytes], bytes | None]
Hook = Callable[[Path], None]


@dataclass
class Committer:
    """One locked commit of ``transform`` to ``target`` (the caller holds the lock)."""

    target: Path
    mode_for: Callable[[int | None], int]
    settle: Settle
    error: Callable[[str], CreddError]
    before_commit: Hook | None = None
    before_replace: Hook | None = None
    attempts: int = 5

    def run(self, transform: Transform) -> bool:
        remove_stale_temps(self.target)
        good = read_good(self.target)
        base = self._read_settled(open_seen(self.target), good)
        at_path = base
        wiped = looks_interrupted(base, good)
        keep: list[Seen] = [base]
        try:
            for attempt in range(1, self.attempts + 1):
                new = transform(base.data)
                if new is None and base is not at_path:
                    new = base.data  # merging a late write that already has our change: put it back
                if new is None:
                    return False
                try:
                    ours = self._commit_once(new, at_path, base)
                except Raced:
                    log.info(
                        "%s changed while credd was editing it; retry %d", self.target, attempt
                    )
                    base = at_path = self._read_settled(open_seen(self.target), good)
                    keep.append(base)
                    wiped = looks_interrupted(base, good)
                    continue
                keep.append(ours)
                if unchanged(at_path) and self._still_quiet(at_path):
                    self._after(new, good, wiped)
                    return True
                # A writer opened the inode we replaced between our check and our rename.
                log.warning("%s was written during credd's rename; merging that write", self.target)
                late = self.settle.inode(at_path)
                if not late:  # truncated and still not written after the bound: keep ours, whole
                    self._after(new, good, wiped)
                    return True
                base = Seen(None, None, late, at_path.mode)
                at_path = ours
            raise self.error(f"kept changing while credd was writing it ({self.attempts} attempts)")
        finally:
            for seen in keep:
                seen.close()

    def _still_quiet(self, replaced: Seen) -> bool:
        """A writer that opened the replaced inode just before the rename without truncating
        it (``open(path, "a")``, the AWS CLI adding a section) leaves no trace until it writes:
        look once more after :data:`LINGER` seconds."""
        if replaced.fd is None:
            return True
        self.settle.clock.sleep(LINGER)
        return unchanged(replaced)

    def _read_settled(self, seen: Seen, good: bytes | None) -> Seen:
        """A file another process has open for writing, or that looks like a truncate-then-write
        in progress: wait (bounded) for it."""
        now = self.settle.clock.now()
        settled = now + timedelta(seconds=self.settle.seconds)
        closed = now + timedelta(seconds=self.settle.writer_seconds)
        while True:
            if seen.lease is Lease.WRITER:
                deadline = closed
            elif looks_interrupted(seen, good):
                deadline = settled
            else:
                return seen
            if self.settle.clock.now() >= deadline:
                return seen
            fresh = self.settle.until_changed(self.target, seen, deadline)
            if fresh is seen:
                return seen
            seen.close()
            seen = fresh

    def _commit_once(self, new: bytes, at_path: Seen, base: Seen) -> Seen:
        tmp, ours = write_temp(self.target, new, self.mode_for(base.mode))
        try:
            if self.before_commit is not None:
                self.before_commit(self.target)
            if not still_at(self.target, at_path):
                raise Raced
            if self.before_replace is not None:
                self.before_replace(self.target)
            install(tmp, self.target, at_path)
        except BaseException:
            ours.close()
            raise
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp)  # after a rename the name is gone; after a link it is a 2nd name
        fsync_dir(self.target.parent)
        return ours

    def _after(self, new: bytes, good: bytes | None, wiped: bool) -> None:
        """Refresh the good copy; keep the old one when credd wrote over a wiped file."""
        try:
            if wiped and good:
                atomic_write(sidecar(self.target, SAVED_SUFFIX), good)
                log.warning(
                    "%s was empty or had lost sections and stayed so for %gs; credd kept the "
                    "previous copy in %s (restore: credd doctor --restore-files)",
                    self.target,
                    self.settle.seconds,
                    sidecar(self.target, SAVED_SUFFIX),
                )
            atomic_write(sidecar(self.target, GOOD_SUFFIX), new)
        except OSError as exc:
            log.warning("cannot keep a last-known-good copy of %s: %s", self.target, exc.strerror)
