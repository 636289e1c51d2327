"""``credd relay --netns NAME|PATH [--port PORT ...]``: the daemon's loopback endpoints, reachable
on 127.0.0.1 inside a container's network namespace (the relay: :mod:`credd.server.relay`)."""

from __future__ import annotations

import argparse

from credd.cli.base import Subparsers, command
from credd.cli.io import Io
from credd.errors import UsageError


def cmd_relay(args: argparse.Namespace, io: Io) -> int:
    from credd.server.relay import listen_in_netns, netns_path, serve

    ports = args.port or []
    if not ports:
        endpoint = (io.client(args.socket).status().get("daemon") or {}).get("endpoint") or {}
        if not endpoint.get("port"):
            raise UsageError("which port?", hint="--port N (the daemon's endpoint is off)")
        ports = [int(endpoint["port"])]
    path = netns_path(args.netns)
    listeners = {port: listen_in_netns(path, port) for port in ports}
    shown = ", ".join(f"127.0.0.1:{p}" for p in ports)
    io.warn(f"relaying {shown} in {path} to the same ports on this host")
    try:
        serve(listeners)
    except KeyboardInterrupt:  # the way a relay ends: no "cancelled"
        return 130
    return 0


def register(sub: Subparsers) -> None:
    """``relay``."""
    p = command(
        sub,
        "relay",
        cmd_relay,
        "make the daemon's endpoints reachable on 127.0.0.1 inside a container's network",
        description="Listen on 127.0.0.1:PORT inside a network namespace (an ip netns name, or "
        "/proc/PID/ns/net of a container's process) and carry each connection to the same port "
        "on this host's loopback, where credd's endpoints run. See docs/containers.md.",
        socket=True,
    )
    p.add_argument("--netns", required=True, metavar="NAME|PATH", help="the network namespace")
    p.add_argument(
        "--port",
        type=int,
        action="append",
        metavar="PORT",
        help="a port to relay (repeatable; default: the container endpoint's)",
    )
