"""The daemon's life beside a Jupyter server: started with it when none runs, stopped with it
only if this server started it.

Starting (in a thread, so the server does not wait) runs ``credd daemon --detach`` in a new
interpreter (:mod:`credd.daemon.detach`: fork, ``setsid``, fork, log to
``$XDG_STATE_HOME/credd/credd.log``, pid file next to the socket), so
the daemon is tied to neither the Jupyter server's process group nor a browser session, and
inherits none of the server's sockets. It returns once the socket answers.

Secrets never pass through here. The daemon opens the secret store itself, from the documented
sources only (docs/secrets.md): the plain-text opt-in, or for the encrypted file store a
passphrase from ``CREDD_PASSPHRASE_FD``, the systemd credential ``credd-passphrase``,
``CREDD_PASSPHRASE_FILE`` or ``CREDD_PASSPHRASE_COMMAND`` (the last two may also be set in the
Jupyter config, ``c.CreddApp.passphrase_file`` / ``passphrase_command``, and are handed to the
daemon in its environment). There is never a prompt: with the encrypted store chosen and no
source configured, nothing is started and :meth:`DaemonSupervisor.setup_problem` says what to
set up (the UI shows it as ``needs_setup``).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from credd.client import Client
from credd.daemon import detach
from credd.errors import CreddError
from credd.secrets import files as filestore

log = logging.getLogger(__name__)

DOCS = "see docs/hosted-hubs.md"
#: ``credd daemon --detach`` waits up to detach.START_TIMEOUT for the socket; a margin on top.
START_TIMEOUT = detach.START_TIMEOUT + 15.0


class DaemonSupervisor:
    """Starts the daemon for ``socket`` with ``environ`` when none answers; remembers whether
    it did, so :meth:`stop_if_started` leaves a daemon someone else started alone."""

    def __init__(
        self,
        socket: str,
        environ: Mapping[str, str],
        *,
        python: str = sys.executable,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.log = logger or log
        self.socket = socket
        self.environ = dict(environ)
        self.python = python
        self.started_pid: int | None = None
        self.start_error: str | None = None
        self._lock = threading.Lock()
        self._starting = threading.Event()
        self._spawning = False  # `credd daemon --detach` is running, started by us

    # -- what is there ------------------------------------------------------------------------

    def answers(self) -> bool:
        try:
            Client(self.socket, timeout=2).status()
        except CreddError:
            return False
        return True

    def setup_problem(self) -> str | None:
        """Why the daemon cannot be started unattended, or None. Reads no secret."""
        try:
            kind, _where = filestore.selected(self.environ)
            if kind != filestore.ENCRYPTED:
                return None  # the plain-text opt-in, or the keyring (SSO needs neither)
            path = filestore.store_path(kind, self.environ)
            if not path.exists():
                return (
                    f"the encrypted secret store {path} does not exist yet: run `credd store "
                    f"init encrypted-file` in a terminal; {DOCS}"
                )
            if filestore.passphrase_source(self.environ) is None:
                return (
                    "the encrypted secret store needs a passphrase source to start unattended: "
                    f"set {filestore.FILE_ENV} or {filestore.COMMAND_ENV} (or "
                    "c.CreddApp.passphrase_file / passphrase_command in the Jupyter config), "
                    f"then restart the server or start the daemon from the panel; {DOCS}"
                )
        except CreddError as exc:
            return f"{exc.message}; {DOCS}"
        return None

    @property
    def started_by_extension(self) -> bool:
        """Is the daemon answering now the one this server started?"""
        running = detach.running_pid(Path(self.socket))
        if self._spawning:  # `credd daemon --detach` has not returned yet: its pid is not known
            return running is not None  # but a daemon there now is the one it started
        return running is not None and running == self.started_pid

    # -- start and stop -----------------------------------------------------------------------

    @property
    def starting(self) -> bool:
        """Is a start under way (the daemon not answering yet)?"""
        return self._starting.is_set()

    def start_in_background(self, done: Callable[[str], None] | None = None) -> threading.Thread:
        """:meth:`ensure_running` in a thread, so the server's start does not wait for the
        daemon's (about a second; up to :data:`START_TIMEOUT` when something is wrong).
        ``done(state)`` is called with the outcome."""
        self._starting.set()

        def run() -> None:
            try:
                state = self.ensure_running()
            finally:
                self._starting.clear()
            if done is not None:
                done(state)

        thread = threading.Thread(target=run, name="credd-start", daemon=True)
        thread.start()
        return thread

    def ensure_running(self) -> str:
        """``running`` (found or started), ``needs_setup`` or ``stopped`` (start failed: see
        :attr:`start_error`)."""
        with self._lock:
            if self.answers():
                return "running"
            if self.setup_problem() is not None:
                return "needs_setup"
            return self._start()

    def _start(self) -> str:
        command = [self.python, "-m", "credd.cli", "daemon", "--detach", "--socket", self.socket]
        self._spawning = True
        try:
            done = subprocess.run(
                command,
                env=self.environ,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._spawning = False
            self.start_error = f"could not run `credd daemon --detach`: {type(exc).__name__}"
            self.log.error("credd: %s", self.start_error)
            return "stopped"
        pid = detach.running_pid(Path(self.socket))
        self.started_pid = pid if done.returncode == 0 else None
        self._spawning = False
        if done.returncode != 0 or pid is None or not self.answers():
            lines = (done.stderr or done.stdout or "").strip().splitlines()
            self.start_error = "the credd daemon did not start" + (
                f": {lines[-1][:300]}" if lines else ""
            )
            self.log.error("credd: %s (see %s)", self.start_error, detach.log_file(self.environ))
            return "stopped"
        self.start_error = None
        self.log.info("credd: started the daemon (pid %d) on %s", pid, self.socket)
        return "running"

    def stop_if_started(self) -> bool:
        """Stop the daemon if this server started it and it still runs; True if stopped."""
        with self._lock:
            if not self.started_by_extension:
                if self.started_pid is not None:
                    self.log.info("credd: the daemon this server started is no longer running")
                return False
            pid = self.started_pid
            try:
                detach.stop(Path(self.socket))
            except CreddError as exc:
                self.log.error("credd: could not stop the daemon (pid %s): %s", pid, exc)
                return False
            self.started_pid = None
            self.log.info("credd: stopped the daemon (pid %s) this server started", pid)
            return True


__all__ = ["DaemonSupervisor"]
