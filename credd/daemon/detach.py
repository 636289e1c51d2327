"""Running without systemd: ``credd daemon --detach`` and ``credd stop``.

``--detach`` daemonizes the classic way (fork, ``setsid``, fork again, ``/`` as working
directory, umask 077, stdin from ``/dev/null``, stdout and stderr appended to
``$XDG_STATE_HOME/credd/credd.log``), writes the pid to ``credd.pid`` next to the socket, and
returns only once the socket answers a status request; if the daemon dies first (or does not
answer in time) it fails with the log's last lines. ``credd stop`` sends SIGTERM to the pid in
that file, waits for the process to exit and removes a stale file; it refuses to signal a
process that is not a credd daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from credd.errors import ConfigError, CreddError, DaemonUnavailable

LOG_NAME = "credd.log"
LOG_ROTATE_BYTES = 10 * 1024 * 1024  # one old log kept as credd.log.1
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def pid_file(socket: Path) -> Path:
    """``credd.pid`` next to ``credd.sock`` (``NAME.pid`` for another socket name)."""
    return socket.with_suffix(".pid")


def log_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/state")
    return Path(state) / "credd" / LOG_NAME


def _is_credd(pid: int) -> bool:
    """Is ``pid`` alive and running credd (not a recycled pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"credd" in cmdline


def running_pid(socket: Path) -> int | None:
    """The pid of the detached daemon for ``socket``; removes a stale pid file."""
    path = pid_file(socket)
    try:
        pid = int(path.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        pid = 0
    if pid > 0 and _is_credd(pid):
        return pid
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _open_log(path: Path) -> int:
    from credd.paths import ensure_private_dir

    ensure_private_dir(path.parent)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def _answers(socket: Path) -> bool:
    from credd.client import Client

    try:
        Client(socket, timeout=2).status()
    except CreddError:
        return False
    return True


def start_detached(
    socket: Path,
    run: Callable[[], int],
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> int:
    """Run ``run()`` (the daemon) in a detached process; return once ``socket`` answers."""
    existing = running_pid(socket)
    if existing is not None and _answers(socket):
        raise ConfigError(
            f"credd is already running (pid {existing}, socket {socket})",
            hint="stop it first: credd stop",
        )
    log_path = log_file(environ)
    log_fd = _open_log(log_path)
    pids = pid_file(socket)
    from credd.paths import ensure_private_dir

    ensure_private_dir(pids.parent)
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:  # the intermediate child: new session, fork the daemon, exit
        os.close(read_end)
        try:
            os.setsid()
            second = os.fork()
            if second == 0:
                os.close(write_end)
                _become_daemon(log_fd, pids, run)  # never returns
            os.write(write_end, str(second).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.close(log_fd)
    os.waitpid(first, 0)
    with os.fdopen(read_end, "rb") as pipe:
        raw = pipe.read()
    if not raw:
        raise ConfigError("could not start the daemon in the background", hint=_tail(log_path))
    pid = int(raw)
    deadline = time.monotonic() + timeout
    while True:
        if _answers(socket):
            print(f"credd started in the background (pid {pid}); log: {log_path}")
            return 0
        alive = _is_credd(pid)
        if not alive or time.monotonic() > deadline:
            if alive:
                os.kill(pid, signal.SIGTERM)
            why = "exited" if not alive else f"did not answer on {socket} within {timeout:g}s"
            sys.stderr.write(f"credd: the daemon {why}; last lines of {log_path}:\n")
            sys.stderr.write(_tail(log_path) + "\n")
            return 1
        time.sleep(0.05)


def _become_daemon(log_fd: int, pids: Path, run: Callable[[], int]) -> None:
    code = 1
    try:
        os.chdir("/")
        os.umask(0o077)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(null)
        os.close(log_fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - process lifetime
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - process lifetime
        me = os.getpid()
        tmp = pids.with_name(f".{pids.name}.{me}")
        tmp.write_text(f"{me}\n")
        os.replace(tmp, pids)
        try:
            code = run()
        finally:
            with contextlib.suppress(OSError, ValueError):
                if int(pids.read_text()) == me:
                    pids.unlink()
    except BaseException:  # the log is the only place left to say it
        logging.getLogger(__name__).exception("the detached daemon failed")
    finally:
        logging.shutdown()
        os._exit(code)


def stop(socket: Path, *, timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM the detached daemon for ``socket`` and wait for it to exit."""
    pid = running_pid(socket)
    if pid is None:
        raise DaemonUnavailable(
            f"no detached credd is running for {socket} (no live pid in {pid_file(socket)})",
            hint="a daemon under systemd stops with: systemctl --user stop credd",
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_credd(pid):
        if time.monotonic() > deadline:
            raise ConfigError(
                f"credd (pid {pid}) did not stop within {timeout:g}s",
                hint=f"see {log_file()}; force it with: kill -9 {pid}",
            )
        time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        pid_file(socket).unlink()
    print(f"credd (pid {pid}) stopped")
    return 0


__all__ = ["log_file", "pid_file", "running_pid", "start_detached", "stop"]
