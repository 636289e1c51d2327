"""``credd daemon`` (foreground, or ``--detach``), ``credd stop``, ``credd service``: running
the daemon. The daemon itself is :mod:`credd.daemon.main`; detaching
(:mod:`credd.daemon.detach`) and the systemd units (:mod:`credd.daemon.units`) are library
modules these commands only drive."""

from __future__ import annotations

import argparse
import os

from credd.cli.base import Subparsers, command
from credd.cli.io import Io


def cmd_daemon(args: argparse.Namespace, io: Io) -> int:
    from credd.daemon.main import run
    from credd.paths import socket_path
    from credd.server.endpoint import EndpointSettings

    if args.passphrase_fd is not None:  # the encrypted secret store's passphrase, read once
        os.environ["CREDD_PASSPHRASE_FD"] = str(args.passphrase_fd)
    endpoint = EndpointSettings.resolve(port=args.endpoint_port, disabled=args.no_endpoint)
    socket = socket_path(override=args.socket)
    if args.detach:
        from credd.daemon.detach import start_detached

        return start_detached(
            socket, lambda: run(socket, log_level=args.log_level, endpoint=endpoint)
        )
    return run(socket, log_level=args.log_level, endpoint=endpoint)


def cmd_stop(args: argparse.Namespace, io: Io) -> int:
    from credd.daemon.detach import stop
    from credd.paths import socket_path

    return stop(socket_path(override=args.socket))


def cmd_service(args: argparse.Namespace, io: Io) -> int:
    from credd.daemon import units as service

    systemctl = getattr(args, "systemctl", None) or service.Systemctl()  # a seam for tests
    if args.action == "install":
        io.say("\n".join(service.install(systemctl, start=not args.no_start)))
    elif args.action == "uninstall":
        io.say("\n".join(service.uninstall(systemctl)))
    elif args.json:
        report = service.status_report(systemctl)
        io.json(report)
        return 0 if report["active"] else 3
    else:
        code, text = service.status(systemctl)
        io.say(text)
        return code
    return 0


def register(sub: Subparsers) -> None:
    """``daemon``, ``service``, ``stop``."""
    p = command(
        sub,
        "daemon",
        cmd_daemon,
        "run the daemon in the foreground (stops on SIGTERM/SIGINT)",
        socket=True,
    )
    p.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO (default), WARNING, ERROR")
    p.add_argument(
        "--endpoint-port",
        metavar="N",
        help="the container endpoint's port on 127.0.0.1 (default: $CREDD_ENDPOINT_PORT, else "
        "20000 + uid %% 10000; 0 = any free port); see docs/container-endpoint.md",
    )
    p.add_argument("--no-endpoint", action="store_true", help="do not serve the container endpoint")
    p.add_argument(
        "--detach",
        action="store_true",
        help="run in the background (pid file next to the socket, log in "
        "$XDG_STATE_HOME/credd/credd.log); returns once the socket answers; stop: credd stop",
    )
    p.add_argument(
        "--passphrase-fd",
        type=int,
        metavar="N",
        help="read the encrypted secret store's passphrase from file descriptor N",
    )

    p = command(
        sub,
        "service",
        cmd_service,
        "run credd as a systemd user service: install, uninstall, status",
    )
    p.add_argument(
        "action",
        choices=("install", "uninstall", "status"),
        help="install (write, enable, start), uninstall (stop, disable, remove), status",
    )
    p.add_argument(
        "--no-start", action="store_true", help="install: enable but do not start the units"
    )
    p.add_argument(
        "--json", action="store_true", help="status: {active, units: [...], error?} as JSON"
    )

    command(
        sub, "stop", cmd_stop, "stop the daemon started with `credd daemon --detach`", socket=True
    )
