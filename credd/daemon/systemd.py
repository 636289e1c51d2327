"""The systemd service protocol, standard library only: ``sd_notify`` and ``sd_listen_fds``.

* :class:`Notifier` sends ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET`` (an ``AF_UNIX``
  ``SOCK_DGRAM`` socket; a leading ``@`` means the abstract namespace). Without
  ``NOTIFY_SOCKET`` it does nothing, so the daemon calls it unconditionally.
* :func:`watchdog_interval` is how often to send ``WATCHDOG=1``: half of ``$WATCHDOG_USEC``
  (when ``$WATCHDOG_PID``, if set, is us), as ``sd_watchdog_enabled(3)`` advises.
* :func:`listen_fds` returns the sockets systemd passed (``$LISTEN_PID`` / ``$LISTEN_FDS``,
  starting at fd 3) and removes those variables so children do not inherit them.

See ``sd_notify(3)``, ``sd_listen_fds(3)``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, MutableMapping

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3


def _address(raw: str) -> str | bytes | None:
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace
    if raw.startswith("/"):
        return raw
    return None  # vsock addresses and the like: not for a user daemon


class Notifier:
    """``sd_notify`` for one process. Send errors are logged once, never raised: a daemon must
    not die because its supervisor went away."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _address(raw) if raw else None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%s is not a unix socket address; not notifying", raw)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) as one datagram. True when sent."""
        if self.address is None:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify the service manager: %s", exc.strerror or exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd (253+) match this reload to its own ``systemctl reload``.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half the timeout), or ``None`` when not watched."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


def listen_fds(environ: MutableMapping[str, str] | None = None, *, unset: bool = True) -> list[int]:
    """File descriptors passed by socket activation (fd 3, 4, ...) meant for this process."""
    env = os.environ if environ is None else environ
    try:
        pid, count = int(env.get("LISTEN_PID", "")), int(env.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    finally:
        if unset:
            for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                env.pop(name, None)
    if pid != os.getpid() or count <= 0:
        return []
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds


__all__ = ["SD_LISTEN_FDS_START", "Notifier", "listen_fds", "watchdog_interval"]
