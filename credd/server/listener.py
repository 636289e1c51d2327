"""Creating (or adopting) the listening unix socket, safely.

* the directory is made private (0700, ours) with :func:`credd.paths.ensure_private_dir`;
* a lock file next to the socket (``NAME.lock``, ``flock``) makes "one server per socket path"
  race-free: a second server fails fast instead of unlinking a live socket;
* a socket file nobody listens on (a crash left it) is replaced; a live one is refused;
* the socket is bound under umask 0177 and then chmod'ed 0600, so it is never open to others;
* a socket handed over already bound (systemd socket activation) is used as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import stat
import struct
from pathlib import Path

from credd.errors import ConfigError
from credd.server.http import Peer

logger = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")


class BoundSocket:
    """A listening socket plus what is needed to clean up after it."""

    def __init__(self, sock: socket.socket, path: Path, *, owned: bool, lock_fd: int | None):
        self.sock = sock
        self.path = path
        self.owned = owned  # we created the file: we remove it
        self.lock_fd = lock_fd
        self.inode = os.stat(path).st_ino if owned else None

    def cleanup(self) -> None:
        """Remove our socket file (only if it is still ours) and release the lock."""
        if self.owned:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self.inode:
                    os.unlink(self.path)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def _live_error(path: Path) -> ConfigError:
    return ConfigError(
        f"another credd is already listening on {path}",
        hint="stop it first (credd status shows it), or use another --socket / CREDD_SOCKET",
    )


def bind_unix(path: Path, *, backlog: int) -> BoundSocket:
    """Create ``path`` as a 0600 listening socket in a 0700 directory."""
    from credd.paths import ensure_private_dir

    ensure_private_dir(path.parent)
    lock_path = path.with_name(path.name + ".lock")
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise _live_error(path) from None
    try:
        _clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot create the socket {path}: {exc.strerror or exc}",
                hint="choose a shorter or writable path with --socket / CREDD_SOCKET",
            ) from None
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(backlog)
        sock.setblocking(False)
        return BoundSocket(sock, path, owned=True, lock_fd=lock_fd)
    except BaseException:
        os.close(lock_fd)
        raise


def adopt_fd(fd: int, path: Path) -> BoundSocket:
    """Use an already bound, listening unix stream socket (socket activation)."""
    sock = socket.socket(fileno=fd)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ConfigError(
            f"file descriptor {fd} is not a unix stream socket",
            hint="pass a listening AF_UNIX SOCK_STREAM socket",
        )
    sock.setblocking(False)
    return BoundSocket(sock, path, owned=False, lock_fd=None)


def _clear_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(
            f"{path} exists and is not a socket",
            hint="move it away, or use another --socket / CREDD_SOCKET",
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        logger.info("replacing stale socket %s (nobody is listening on it)", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except FileNotFoundError:
        return
    except (TimeoutError, BlockingIOError):
        raise _live_error(path) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot check the existing socket {path}: {exc.strerror or exc}",
            hint="remove it, or use another --socket / CREDD_SOCKET",
        ) from None
    finally:
        probe.close()
    raise _live_error(path)


def peer_of(sock: socket.socket) -> Peer:
    """The connected peer's pid/uid/gid (``SO_PEERCRED``, Linux)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Peer(pid=pid, uid=uid, gid=gid)
