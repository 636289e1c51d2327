"""``credd env PROFILE`` and ``credd exec PROFILE -- CMD``: point programs at the endpoint.

Both ask the daemon (over its socket) for the endpoint (the container endpoint's URL and token
file, or with ``--imds`` a profile's IMDS endpoint), check the profile is one it manages, and
apply or print the environment :mod:`credd.server.envplan` builds. ``credd exec --min-lifetime``
first makes sure the credentials last that long (the lifetime guard, :mod:`credd.lifetime`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from credd.errors import DaemonUnavailable, UsageError
from credd.server.envplan import (
    EnvPlan,
    build_imds_plan,
    build_plan,
    profile_state,
    render,
    require_managed,
)

__all__ = ["register"]


# -- commands -------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> dict[str, Any]:
    from credd.client import Client

    return Client(args.socket).status()


def _warn(plan: EnvPlan, status: Mapping[str, Any]) -> None:
    for note in plan.notes:
        sys.stderr.write(f"credd: note: {note}\n")
    state = profile_state(status, plan.profile)
    if state.get("state") not in ("fresh", "refreshing", "pending"):
        waiting = state.get("waiting_for") or (state.get("error") or {}).get("hint") or ""
        sys.stderr.write(
            f"credd: note: {plan.profile} is {state.get('state')}"
            + (f"; {waiting}" if waiting else "")
            + " (the endpoint answers 503 until then)\n"
        )


def _open_imds(args: argparse.Namespace, *, lease: bool) -> str:
    """Ask the daemon for the profile's IMDS endpoint; its base URL."""
    from credd.client import Client, quote_segment

    body = json.dumps({"lease": lease}).encode()
    raw = Client(args.socket).call("POST", f"/v1/imds/{quote_segment(args.profile)}", body)
    endpoint = json.loads(raw).get("imds") or {}
    url = endpoint.get("url")
    if not isinstance(url, str) or not url:
        raise DaemonUnavailable("the daemon did not say where the IMDS endpoint listens")
    if not lease and not endpoint.get("configured"):
        sys.stderr.write(
            f"credd: note: this IMDS endpoint ({url}) lasts until the daemon stops; "
            f"to keep one across restarts set credd_imds = PORT in [profile {args.profile}] "
            "(docs/imds.md)\n"
        )
    return url


def _plan_for(args: argparse.Namespace, status: Mapping[str, Any], *, lease: bool) -> EnvPlan:
    if getattr(args, "imds", False):
        require_managed(args.profile, status)
        return build_imds_plan(args.profile, _open_imds(args, lease=lease), status)
    return build_plan(args.profile, status)


def _guard(args: argparse.Namespace) -> None:
    """``--min-lifetime``: the profile's credentials last that long (refreshed first when they
    end sooner), or credd fails before the command starts, saying how long is possible."""
    from credd.client import Client

    Client(args.socket).credentials_raw(args.profile, args.min_lifetime)


def cmd_env(args: argparse.Namespace) -> int:
    status = _status(args)
    plan = _plan_for(args, status, lease=False)
    _warn(plan, status)
    sys.stdout.write(render(plan, args.format))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no command to run", hint=f"credd exec {args.profile} -- COMMAND ...")
    status = _status(args)
    if args.min_lifetime:
        _guard(args)
    # the lease is this process's: the command keeps its pid, the endpoint ends with it
    plan = _plan_for(args, status, lease=True)
    _warn(plan, status)
    env = plan.apply(os.environ)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 - the person's own command
    except FileNotFoundError:
        sys.stderr.write(f"credd: {command[0]}: command not found\n")
        return 127
    except OSError as exc:
        sys.stderr.write(f"credd: cannot run {command[0]}: {exc.strerror or exc}\n")
        return 126


IMDS_HELP = (
    "point the program at an IMDSv2 endpoint for PROFILE instead of the container endpoint "
    "(GDAL, DuckDB, object_store/Polars, old SDKs; docs/imds.md)"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``env`` and ``exec`` to the main parser's subcommands."""
    socket_help = (
        "the daemon's socket (default: $CREDD_SOCKET, else $XDG_RUNTIME_DIR/credd/credd.sock)"
    )
    p = subparsers.add_parser(
        "env",
        help="print the variables that point a program at the container endpoint for PROFILE",
        description="Print shell lines (or JSON) that point AWS SDKs and the AWS CLI at credd's "
        'container endpoint for PROFILE: eval "$(credd env work)". See '
        "docs/container-endpoint.md.",
    )
    p.add_argument("profile", metavar="PROFILE", help="a profile the daemon manages")
    p.add_argument("--imds", action="store_true", help=IMDS_HELP)
    p.add_argument(
        "--format",
        choices=("sh", "fish", "json"),
        default="sh",
        help="sh: export/unset lines (default); fish: set -gx / set -e; json: {set, unset}",
    )
    p.add_argument("--socket", metavar="PATH", help=socket_help)
    p.set_defaults(func=cmd_env)

    p = subparsers.add_parser(
        "exec",
        help="run a command whose AWS credentials come from the container endpoint",
        description="Run COMMAND with the environment `credd env PROFILE` prints (no static "
        "keys), replacing credd: signals and the exit code are the command's own.",
    )
    p.add_argument("profile", metavar="PROFILE", help="a profile the daemon manages")
    p.add_argument("--imds", action="store_true", help=IMDS_HELP)
    p.add_argument(
        "--min-lifetime",
        metavar="DURATION",
        help="start COMMAND only with credentials lasting this long (2h, 90m): refreshed first "
        "when they end sooner; fails at once, saying how long is possible, when the source "
        "cannot give that much",
    )
    p.add_argument("--socket", metavar="PATH", help=socket_help)
    p.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="what to run"
    )
    p.set_defaults(func=cmd_exec)
