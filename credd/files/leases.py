"""Linux read leases: knowing *for certain* that another process opened a file for writing.

credd takes a read lease (``fcntl(F_SETLEASE, F_RDLCK)``) on the read-only descriptor through
which it reads the credentials or config file, before reading, and holds it through its rename
and the look after it (see :mod:`credd.files.safewrite`). While the lease is held:

- taking it fails with ``EAGAIN`` if any process has the file open for writing (a write in
  progress, whatever the file looks like): :attr:`Lease.WRITER`;
- any ``open`` for writing (``"w"``, ``"a"``, ``"r+"``) or ``truncate`` of that inode, by any
  process, *blocks inside the open* until credd releases the lease (or the kernel's
  ``/proc/sys/fs/lease-break-time``, 45 s by default, passes), and ``F_GETLEASE`` then answers
  ``F_UNLCK``: :func:`broken`. A writer that resolved the path to the inode credd is about to
  replace cannot write a byte before credd knows about it;
- the kernel counts such a blocked writer as open for writing before it blocks, so once credd
  releases the lease, taking it again fails until every writer has closed the file:
  :func:`wait_closed` waits for exactly that.

Breaking a lease signals its owner (``SIGIO`` by default, which terminates a process).
:func:`take` sets the signal to ``SIGURG`` (ignored by default) *before* taking the lease and
clears the owner after, so no signal ever reaches credd; breaks are seen by polling.

Leases need the caller to own the file (or ``CAP_LEASE``), a local filesystem and
``/proc/sys/fs/leases-enable``; where they are refused, :func:`take` answers
:attr:`Lease.NONE` and credd falls back to its content checks.
"""

from __future__ import annotations

import enum
import fcntl
import signal
from contextlib import suppress
from datetime import timedelta

from credd.clock import Clock

F_SETSIG = getattr(fcntl, "F_SETSIG", 10)
_POLL = 0.002


class Lease(enum.Enum):
    HELD = "held"  # no process has the file open for writing; any that opens it now blocks
    WRITER = "writer"  # another process has the file open for writing right now
    BROKEN = "broken"  # held, then a process opened it for writing; released since
    NONE = "none"  # leases are not available here (not the owner, NFS, disabled)


def take(fd: int) -> Lease:
    """Take a read lease on ``fd`` (opened read-only)."""
    try:
        fcntl.fcntl(fd, F_SETSIG, signal.SIGURG)  # a break must never deliver SIGIO
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except BlockingIOError:
        return Lease.WRITER
    except OSError:  # EACCES (not the owner), EINVAL (filesystem, leases disabled), ...
        return Lease.NONE
    with suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETOWN, 0)  # and no owner to signal at all
    return Lease.HELD


def broken(fd: int) -> bool:
    """Whether a process has opened the leased file for writing since :func:`take`."""
    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK)
    except OSError:
        return True


def release(fd: int) -> None:
    """Let a writer blocked in its ``open`` go on (no error if no lease is held)."""
    with suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def wait_closed(fd: int, clock: Clock, seconds: float) -> Lease:
    """Release the lease on ``fd`` and wait, at most ``seconds`` on ``clock``, until no
    process has the file open for writing (the lease can be taken again). Returns the lease
    state at the end: ``HELD`` (every writer closed; the content is final), ``WRITER`` (one is
    still open after the bound) or ``NONE``."""
    release(fd)
    deadline = clock.now() + timedelta(seconds=seconds)
    pause = _POLL
    while True:
        state = take(fd)
        if state is not Lease.WRITER or clock.now() >= deadline:
            return state
        clock.sleep(pause)
        pause = min(pause * 2, 0.05)
