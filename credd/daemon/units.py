"""credd as a systemd user service (the command is ``credd service``, credd/cli/daemon.py).

The units are rendered here (so ``ExecStart`` names this installation) and written to
``$XDG_CONFIG_HOME/systemd/user`` (default ``~/.config/systemd/user``); ``systemd/`` in the
repository holds the same units rendered for a ``pip install --user`` (a test keeps them equal).
Then ``systemctl --user daemon-reload``, ``enable``, ``start``. Every step is idempotent.

``systemctl`` is reached through :class:`Systemctl` (a seam for tests). Without a user service
manager (a container, a hosted notebook) the files are still written, and the command says so and
exits non-zero: run ``credd daemon --detach`` there instead (docs/service.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credd.errors import ConfigError

SERVICE = "credd.service"
SOCKET = "credd.socket"
UNITS = (SOCKET, SERVICE)
#: what the shipped units in ``systemd/`` run (``pip install --user`` puts the launcher there)
SHIPPED_EXEC = "%h/.local/bin/credd"
DOCS = "https://github.com/credd/credd/blob/main/docs/service.md"

SOCKET_UNIT = """\
[Unit]
Description=credd socket: AWS credentials for this user
Documentation={docs}

[Socket]
ListenStream={listen}
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""

SERVICE_UNIT = """\
[Unit]
Description=credd: fresh AWS session credentials for this user
Documentation={docs}
Requires=credd.socket
After=credd.socket

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
{environment}Restart=on-failure
RestartPreventExitStatus=3
RestartSec=2s
WatchdogSec=60s
TimeoutStopSec=30s
StandardOutput=journal
StandardError=journal
SyslogIdentifier=credd

# Hardening: everything a user service can have (the namespacing options need PrivateUsers=).
UMask=0077
PrivateUsers=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
# Where credd writes: the AWS credentials file and SSO cache, its runtime dir (socket, endpoint
# token), its own data/state dirs (the file secret store, the log). "-": may not exist.
ReadWritePaths={rw_paths}
PrivateTmp=yes
PrivateDevices=yes
PrivateIPC=yes
PrivateMounts=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProcSubset=pid
KeyringMode=private
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=default.target
Also=credd.socket
"""

#: writable paths besides the AWS files' directories
_RW_FIXED = ("%t/credd", "-%h/.local/share/credd", "-%h/.local/state/credd", "-%h/.config/credd")


def _quote(text: str) -> str:
    """One word of a command line or ``Environment=``, quoted when needed."""
    if any(c in text for c in " \t\"'\\;"):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _escape(text: str) -> str:
    """A literal word: specifiers and variables escaped, quoted when needed."""
    return _quote(text.replace("%", "%%").replace("$", "$$"))


def _in_home(path: Path, home: Path) -> str:
    """``path`` written with ``%h`` when it lies in the home directory (escaped otherwise)."""
    try:
        return "%h/" + str(path.relative_to(home)).replace("%", "%%")
    except ValueError:
        return str(path).replace("%", "%%")


def exec_command(launcher: Path | None = None) -> list[str]:
    """How this installation starts the daemon: the ``credd`` launcher next to the running
    interpreter (a venv, ``/usr/bin``), else ``python -m credd.cli``."""
    candidate = launcher or Path(sys.executable).parent / "credd"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return [str(candidate), "daemon"]
    return [sys.executable, "-m", "credd.cli", "daemon"]


@dataclass(frozen=True)
class Units:
    """The two unit files' text, by name."""

    files: dict[str, str]


def render(
    command: Sequence[str], environ: Mapping[str, str] | None = None, *, home: Path | None = None
) -> Units:
    """The units for ``command`` (ExecStart words; ``%h``-words pass through unescaped).

    AWS file locations set in ``environ`` (``AWS_CONFIG_FILE``, ``AWS_SHARED_CREDENTIALS_FILE``)
    are passed on with ``Environment=`` and their directories made writable; so is a
    ``CREDD_SOCKET`` outside the runtime directory (the socket unit listens there)."""
    env = os.environ if environ is None else environ
    home = home or Path(env.get("HOME") or Path.home())
    words = [w if w.startswith("%h/") else _escape(w) for w in command]
    environment: list[str] = []
    rw = ["-%h/.aws"]
    for name, default in (("AWS_CONFIG_FILE", "config"), ("AWS_SHARED_CREDENTIALS_FILE", "")):
        value = env.get(name)
        if value and Path(value).expanduser() != home / ".aws" / (default or "credentials"):
            path = Path(value).expanduser().absolute()
            environment.append(f"Environment={_quote(f'{name}={_in_home(path, home)}')}\n")
            rw.append("-" + _in_home(path.parent, home))
    listen = "%t/credd/credd.sock"
    if env.get("CREDD_SOCKET"):
        sock = Path(env["CREDD_SOCKET"]).absolute()
        runtime = env.get("XDG_RUNTIME_DIR")
        if not runtime or sock != Path(runtime) / "credd" / "credd.sock":
            listen = _in_home(sock, home)
            environment.append(f"Environment={_quote(f'CREDD_SOCKET={listen}')}\n")
            rw.append("-" + _in_home(sock.parent, home))
    rw += _RW_FIXED
    unique_rw = list(dict.fromkeys(rw))
    return Units(
        {
            SOCKET: SOCKET_UNIT.format(docs=DOCS, listen=listen),
            SERVICE: SERVICE_UNIT.format(
                docs=DOCS,
                exec_start=" ".join(words),
                environment="".join(environment),
                rw_paths=" ".join(unique_rw),
            ),
        }
    )


def unit_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "systemd" / "user"


class Systemctl:
    """``systemctl --user``. Raises :class:`ConfigError` when no user manager answers."""

    def __init__(self, program: str | None = None) -> None:
        self.program = program or shutil.which("systemctl")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.program is None:
            raise _no_manager("systemctl is not installed")
        done = subprocess.run(
            [self.program, "--user", *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0 and _no_bus(done.stderr):
            raise _no_manager(done.stderr.strip().splitlines()[-1])
        if check and done.returncode != 0:
            raise ConfigError(
                f"systemctl --user {' '.join(args)} failed: {done.stderr.strip()}",
                hint="see: journalctl --user -u credd",
            )
        return done


def _no_bus(stderr: str) -> bool:
    text = stderr.lower()
    return any(
        s in text
        for s in ("failed to connect to bus", "no medium found", "not been booted with systemd")
    )


def _no_manager(detail: str) -> ConfigError:
    return ConfigError(
        f"no systemd user manager is reachable ({detail})",
        hint="the unit files are written; on this host run the daemon with `credd daemon "
        "--detach` instead (see docs/service.md)",
    )


def write_units(units: Units, directory: Path) -> list[Path]:
    """Write each unit that differs (atomically); returns the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in units.files.items():
        path = directory / name
        if path.is_file() and path.read_text() == text:
            continue
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        changed.append(path)
    return changed


def install(
    systemctl: Systemctl, *, environ: Mapping[str, str] | None = None, start: bool = True
) -> list[str]:
    """Write, reload, enable, start. Returns what was done, one line each."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    (home / ".aws").mkdir(mode=0o700, exist_ok=True)  # ProtectHome: it must exist to be writable
    directory = unit_dir(env)
    changed = write_units(render(exec_command(), env, home=home), directory)
    lines = [f"wrote {p}" for p in changed] or [f"units in {directory} are up to date"]
    try:
        systemctl.run("daemon-reload")
        systemctl.run("enable", *UNITS)
        lines.append("enabled credd.socket and credd.service (start with your session)")
        if start:
            systemctl.run("start", SOCKET)
            # A changed unit takes effect on restart; an unchanged running one is left alone.
            systemctl.run("restart" if changed else "start", SERVICE)
            lines.append("started credd.service: check it with `credd service status`")
    except ConfigError as exc:
        raise ConfigError("\n".join([*lines, exc.message]), hint=exc.hint) from None
    return lines


def uninstall(systemctl: Systemctl, *, environ: Mapping[str, str] | None = None) -> list[str]:
    directory = unit_dir(environ)
    lines: list[str] = []
    manager_error: ConfigError | None = None
    try:
        systemctl.run("disable", "--now", *UNITS, check=False)
        lines.append("stopped and disabled credd.service and credd.socket")
    except ConfigError as exc:
        manager_error = exc
    for name in UNITS:
        path = directory / name
        if path.exists():
            path.unlink()
            lines.append(f"removed {path}")
    if not any(line.startswith("removed") for line in lines):
        lines.append(f"no credd units in {directory}")
    if manager_error is None:
        systemctl.run("daemon-reload")
    else:
        lines.append(manager_error.message)
        raise ConfigError("\n".join(lines), hint=manager_error.hint)
    return lines


def status_report(
    systemctl: Systemctl, *, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``{"active", "units": [{"name", "file", "enabled", "active", "sub", "status_text"}],
    "error"?}``: each unit's file and state (``credd service status --json``)."""
    directory = unit_dir(environ)
    units: list[dict[str, Any]] = []
    for name in UNITS:
        path = directory / name
        units.append({"name": name, "file": str(path) if path.exists() else None})
    report: dict[str, Any] = {"active": False, "units": units}
    props = "LoadState,UnitFileState,ActiveState,SubState,StatusText,MainPID"
    try:
        done = systemctl.run("show", "--property", props, *UNITS, check=False)
    except ConfigError as exc:
        report["error"] = exc.to_json()
        return report
    blocks = done.stdout.strip().split("\n\n")
    for unit, block in zip(units, blocks, strict=False):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        unit |= {
            "enabled": fields.get("UnitFileState") or None,
            "active": fields.get("ActiveState"),
            "sub": fields.get("SubState"),
            "status_text": fields.get("StatusText") or None,
        }
        if unit["name"] == SERVICE and fields.get("ActiveState") == "active":
            report["active"] = True
    return report


def status(systemctl: Systemctl, *, environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Each unit's file, enablement and state; exit 0 only when the service is active."""
    report = status_report(systemctl, environ=environ)
    out = [
        f"{u['name']}: {'installed in ' + u['file'] if u['file'] else 'not installed'}"
        for u in report["units"]
    ]
    if "error" in report:
        out.append(f"{report['error']['message']}; {report['error'].get('hint')}")
    for u in report["units"]:
        if "active" not in u:
            continue
        line = f"{u['name']}: {u['enabled'] or '-'}, {u['active'] or '?'} ({u['sub'] or '?'})"
        out.append(line + (f": {u['status_text']}" if u["status_text"] else ""))
    return (0 if report["active"] else 3), "\n".join(out)


__all__ = [
    "SERVICE",
    "SOCKET",
    "Systemctl",
    "Units",
    "exec_command",
    "install",
    "render",
    "status",
    "status_report",
    "uninstall",
    "unit_dir",
]
