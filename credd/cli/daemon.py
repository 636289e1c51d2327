"""``credd daemon`` (foreground, or ``--detach``), ``credd stop``, ``credd service``: running
the daemon. The daemon itself is :mod:`credd.daemon`; detaching and the systemd units are
library modules this file only drives."""

from __future__ import annotations

import argparse
import os

from credd.cli.base import Subparsers, command
from credd.cli.io import Io


def cmd_daemon(args: argparse.Namespace, io: Io) -> int:
    from credd.daemon import run
    from credd.endpoint import EndpointSettings
    from credd.paths import socket_path

    if args.passphrase_fd is not None:  # the encrypted secret store's passphrase, read once
        os.environ["CREDD_PASSPHRASE_FD"] = str(args.passphrase_fd)
    endpoint = EndpointSettings.resolve(port=args.endpoint_port, disabled=args.no_endpoint)
    socket = socket_path(override=args.socket)
    if args.detach:
        from credd.detach import start_detached

        return start_detached(
            socket, lambda: run(socket, log_level=args.log_level, endpoint=endpoint)
        )
    return run(socket, log_level=args.log_level, endpoint=endpoint)


def register(sub: Subparsers) -> None:
    """``daemon``."""
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
