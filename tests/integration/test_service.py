"""The real daemon under the systemd protocol: socket activation, sd_notify, --detach / stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from credd.client import Client
from credd.daemon.detach import log_file, pid_file
from credd.daemon.main import Daemon
from credd.daemon.systemd import Notifier
from credd.errors import DaemonUnavailable
from credd.server.endpoint import EndpointSettings
from tests.fixtures.daemon import DaemonFactory, remember

pytestmark = pytest.mark.integration

ACTIVATE = "/usr/bin/systemd-socket-activate"


def totp_profile(daemons: DaemonFactory, name: str) -> None:
    user, device = daemons.sandbox.new_user_with_mfa(name)
    remember(user.secret_access_key, device.seed)
    daemons.store.set_long_term_keys(name, user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed(name, device.seed)
    pyotp.TOTP(device.seed)  # the seed is a valid base32 secret
    daemons.write_config(
        f"[profile {name}]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"mfa_serial = {device.serial}\n"
    )


class NotifyReader:
    """The service manager's side of sd_notify: a datagram socket the daemon writes to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(30)
        self.seen: list[str] = []

    def until(self, predicate: str) -> list[str]:
        """Read datagrams until one contains the line ``predicate`` (or starts with it + =)."""
        got: list[str] = []
        while True:
            message = self.sock.recv(4096).decode()
            self.seen.append(message)
            got.append(message)
            if any(line == predicate or line.startswith(predicate) for line in message.split("\n")):
                return got

    def close(self) -> None:
        self.sock.close()


def test_notify_ready_status_watchdog_reloading_stopping(
    daemons: DaemonFactory, tmp_path: Path
) -> None:
    totp_profile(daemons, "work")
    reader = NotifyReader(tmp_path / "notify")
    env = daemons.env(NOTIFY_SOCKET=str(reader.path), WATCHDOG_USEC="400000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "credd.cli", "daemon", "--log-level", "DEBUG"],
        env=env,
        stdout=open(daemons.log_dir / "notify.log", "ab"),  # noqa: SIM115 - closed at exit
        stderr=subprocess.STDOUT,
    )
    try:
        first = reader.until("READY=1")
        assert len(first) == 1, first  # nothing before READY
        assert "STATUS=" in first[0]
        # READY means the socket serves: a request right now is answered.
        assert (
            Client(daemons.env()["CREDD_SOCKET"], timeout=10).status()["daemon"]["pid"] == proc.pid
        )
        reader.until("STATUS=1 fresh")
        reader.until("WATCHDOG=1")
        reader.until("WATCHDOG=1")
        # A reload: RELOADING=1 with the monotonic clock, then READY=1 again.
        proc.send_signal(signal.SIGHUP)
        reloading = reader.until("RELOADING=1")[-1].split("\n")
        assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
        assert reader.until("READY=1")[-1].startswith("READY=1\nSTATUS=1 fresh")
        reader.until("WATCHDOG=1")  # still watched after the reload
        proc.send_signal(signal.SIGTERM)
        reader.until("STOPPING=1")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.close()


def test_watchdog_is_not_pinged_while_the_socket_does_not_answer(tmp_path: Path) -> None:
    """A stuck server means no WATCHDOG=1, so systemd restarts the daemon (WatchdogSec)."""
    (Path(os.environ["HOME"]) / ".aws").mkdir()
    (Path(os.environ["HOME"]) / ".aws" / "config").write_text("")
    reader = NotifyReader(tmp_path / "notify")
    environ = dict(os.environ, NOTIFY_SOCKET=str(reader.path), WATCHDOG_USEC="2000000")
    daemon = Daemon(
        tmp_path / "s" / "credd.sock",
        environ=environ,
        endpoint=EndpointSettings.resolve(disabled=True, environ=environ),
        notifier=Notifier(environ),
    )
    try:
        daemon.start()
        assert reader.until("READY=1")[-1] == "READY=1\nSTATUS=no managed profiles"
        assert daemon.watchdog_every == 1.0
        assert daemon.check_health()
        daemon.server.stop()  # the event loop is gone: requests are no longer answered
        assert not daemon.check_health()
        assert reader.until("STATUS=unhealthy")[-1].startswith(
            "STATUS=unhealthy: the socket does not answer"
        )
        assert not daemon.check_health()  # said once, not on every check
        assert all("WATCHDOG" not in m for m in reader.seen)
        daemon.shutdown()
        assert reader.until("STOPPING=1")[-1] == "STOPPING=1"
    finally:
        daemon.shutdown()
        reader.close()


@pytest.mark.skipif(not Path(ACTIVATE).exists(), reason="needs systemd-socket-activate")
def test_socket_activation_first_request_starts_the_daemon_and_is_answered(
    daemons: DaemonFactory, tmp_path: Path
) -> None:
    totp_profile(daemons, "work")
    env = daemons.env()
    path = Path(tempfile_dir()) / "credd.sock"
    env.pop("CREDD_SOCKET")  # the daemon learns its path from the socket it is handed
    passed = [f"--setenv={k}={v}" for k, v in env.items()]
    proc = subprocess.Popen(
        [ACTIVATE, "-l", str(path), *passed, sys.executable, "-m", "credd.cli", "daemon"],
        env=env,
        stdout=open(daemons.log_dir / "activated.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening(path):  # wait without connecting: a connection would activate
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        # Nobody connected yet: still the activator, no daemon.
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(ACTIVATE.encode())
        client = Client(path, timeout=60)
        creds = client.credentials("work")  # the first request starts credd and is answered
        remember(creds["SecretAccessKey"], creds["SessionToken"])
        assert creds["AccessKeyId"].startswith("ASIA")
        status = client.status()
        assert status["daemon"]["pid"] == proc.pid  # the activator exec'd the daemon
        assert status["daemon"]["socket"] == str(path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert path.exists(), "an activated socket belongs to the service manager"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        path.unlink(missing_ok=True)
        path.parent.rmdir()


def listening(path: Path) -> bool:
    """Is a socket listening on ``path``? (/proc/net/unix, flag __SO_ACCEPTCON)"""
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == str(path) and int(fields[3], 16) & 0x10000:
            return True
    return False


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="credd-sa-", dir="/tmp")  # short: sun_path is 108 bytes


# -- --detach / stop ------------------------------------------------------------------------

DETACH = """
import sys
from pathlib import Path
from credd.daemon.main import run
from credd.daemon.detach import start_detached
from credd.server.endpoint import EndpointSettings
sock = Path(sys.argv[1])
from credd.errors import CreddError
try:
    off = EndpointSettings.resolve(disabled=True)
    sys.exit(start_detached(sock, lambda: run(sock, endpoint=off)))
except CreddError as exc:  # as credd.cli.app.run reports it
    print(f"credd: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""
STOP = """
import sys
from pathlib import Path
from credd.daemon.detach import stop
from credd.errors import CreddError
try:
    sys.exit(stop(Path(sys.argv[1])))
except CreddError as exc:
    print(f"credd: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def py(code: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


def test_detach_then_stop(daemons: DaemonFactory) -> None:
    totp_profile(daemons, "work")
    env = daemons.env()
    sock = Path(env["CREDD_SOCKET"])
    started = py(DETACH, str(sock), env=env)
    assert started.returncode == 0, started.stderr
    pid = int(pid_file(sock).read_text())
    assert f"(pid {pid})" in started.stdout
    log = log_file(env)
    assert str(log) in started.stdout
    assert log.stat().st_mode & 0o777 == 0o600
    status = Client(sock, timeout=10).status()  # answered when start_detached returned
    assert status["daemon"]["pid"] == pid
    # A new session (setsid) whose leader has exited: it can never get a controlling terminal.
    assert os.getsid(pid) not in (pid, os.getsid(0))
    assert not Path(f"/proc/{os.getsid(pid)}").exists()
    again = py(DETACH, str(sock), env=env)
    assert again.returncode == 3 and f"already running (pid {pid}" in again.stderr
    stopped = py(STOP, str(sock), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"credd (pid {pid}) stopped" in stopped.stdout
    assert not pid_file(sock).exists() and not sock.exists()
    assert "credd stopped" in log.read_text()
    with pytest.raises(DaemonUnavailable):
        Client(sock, timeout=2).status()
    none = py(STOP, str(sock), env=env)
    assert none.returncode == DaemonUnavailable.exit_code
    assert "no detached credd is running" in none.stderr


def test_detach_reports_a_daemon_that_cannot_start_with_the_log_tail(
    daemons: DaemonFactory,
) -> None:
    daemons.write_config("[profile broken\nregion = us-east-1\n")
    env = daemons.env()
    sock = Path(env["CREDD_SOCKET"])
    done = py(DETACH, str(sock), env=env)
    assert done.returncode == 1
    assert "the daemon exited; last lines of" in done.stderr
    assert "credd cannot start" in done.stderr
    assert not pid_file(sock).exists()


def test_cli_daemon_detach_then_stop(tmp_path: Path) -> None:
    """`credd daemon --detach` returns once the socket answers; `credd stop` ends it."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env["CREDD_SOCKET"] = str(tmp_path / "run" / "credd.sock")
    env["CREDD_ENDPOINT_PORT"] = "0"

    def credd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "credd.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    started = credd("daemon", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    assert credd("status").returncode == 0  # no managed profiles: all (zero) fresh
    assert credd("daemon", "--detach").returncode != 0  # one at a time
    stopped = credd("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(env["CREDD_SOCKET"]).exists()
    again = credd("stop")
    assert again.returncode == 5 and again.stderr.count("\n") == 1
