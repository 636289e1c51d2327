"""Every ``credd`` command but the fast ``credd get`` (see :mod:`credd.cli`), built on argparse.

The parser is assembled from each ``credd/cli/<group>.py``'s ``register(sub)`` (the one
registration style of :mod:`credd.cli.base`); :func:`run` parses and calls ``args.func``, which
already turns every outcome into an exit code (the one error wrapper).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import import_module

from credd import __version__
from credd.cli.base import command, socket_parent
from credd.cli.io import Io

PROG = "credd"
DESCRIPTION = "Keeps AWS session credentials fresh and serves them to every program."

# The command groups, in the order `credd --help` lists them.
GROUPS = (
    "daemon",
    "status",
    "get",
    "profiles",
    "secrets",
    "env",
    "login",
    "sso",
    "store",
    "forget",
    "relay",
    "doctor",
    "actions",
    "vault",
    "completion",
)


def cmd_version(args: argparse.Namespace, io: Io) -> int:
    if args.json:
        io.json({"version": __version__})
    else:
        io.say(f"credd {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in GROUPS:
        import_module(f"credd.cli.{name}").register(sub)
    p = command(sub, "version", cmd_version, "print credd's version")
    p.add_argument("--json", action="store_true", help='{"version": ...}')
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    return int(args.func(args))


def command_names() -> list[str]:
    """Every top-level command, for the docs test."""
    return sorted(subcommands(build_parser()))


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


__all__ = ["build_parser", "command_names", "run", "socket_parent", "subcommands"]
