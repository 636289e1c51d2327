"""``credd env PROFILE`` and ``credd exec PROFILE -- CMD``: point programs at the endpoint.

Both ask the daemon (over its socket) for the endpoint (the container endpoint's URL and token
file, or with ``--imds`` a profile's IMDS endpoint), check the profile is one it manages, and
apply or print the environment :mod:`credd.server.envplan` builds. ``credd exec --min-lifetime``
first makes sure the credentials last that long (the lifetime guard, :mod:`credd.plan.lifetime`).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from credd.cli.base import Subparsers, command
from credd.cli.io import Io
from credd.engine.state import State
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


def _warn(plan: EnvPlan, status: Mapping[str, Any], io: Io) -> None:
    for note in plan.notes:
        io.warn(f"note: {note}")
    state = profile_state(status, plan.profile)
    if state.get("state") not in (State.FRESH, State.REFRESHING, State.PENDING):
        waiting = state.get("waiting_for") or (state.get("error") or {}).get("hint") or ""
        io.warn(
            f"note: {plan.profile} is {state.get('state')}"
            + (f"; {waiting}" if waiting else "")
            + " (the endpoint answers 503 until then)"
        )


def _open_imds(args: argparse.Namespace, io: Io, *, lease: bool) -> str:
    """Ask the daemon for the profile's IMDS endpoint; its base URL."""
    from credd.client import quote_segment

    body = json.dumps({"lease": lease}).encode()
    raw = io.client(args.socket).call("POST", f"/v1/imds/{quote_segment(args.profile)}", body)
    endpoint = json.loads(raw).get("imds") or {}
    url = endpoint.get("url")
    if not isinstance(url, str) or not url:
        raise DaemonUnavailable("the daemon did not say where the IMDS endpoint listens")
    if not lease and not endpoint.get("configured"):
        io.warn(
            f"note: this IMDS endpoint ({url}) lasts until the daemon stops; "
            f"to keep one across restarts set credd_imds = PORT in [profile {args.profile}] "
            "(docs/imds.md)"
        )
    return url


def _plan_for(
    args: argparse.Namespace, io: Io, status: Mapping[str, Any], *, lease: bool
) -> EnvPlan:
    if args.imds:
        require_managed(args.profile, status)
        return build_imds_plan(args.profile, _open_imds(args, io, lease=lease), status)
    return build_plan(args.profile, status)


def cmd_env(args: argparse.Namespace, io: Io) -> int:
    status = io.client(args.socket).status()
    plan = _plan_for(args, io, status, lease=False)
    _warn(plan, status, io)
    io.stdout.write(render(plan, args.format))
    return 0


def cmd_exec(args: argparse.Namespace, io: Io) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no command to run", hint=f"credd exec {args.profile} -- COMMAND ...")
    client = io.client(args.socket)
    status = client.status()
    if args.min_lifetime:
        # the lifetime guard: the credentials last that long (refreshed first when they end
        # sooner), or credd fails before the command starts, saying how long is possible
        client.credentials_raw(args.profile, args.min_lifetime)
    # the lease is this process's: the command keeps its pid, the endpoint ends with it
    plan = _plan_for(args, io, status, lease=True)
    _warn(plan, status, io)
    env = plan.apply(os.environ)
    io.stdout.flush()
    io.stderr.flush()
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 - the person's own command
    except FileNotFoundError:
        io.warn(f"{command[0]}: command not found")
        return 127
    except OSError as exc:
        io.warn(f"cannot run {command[0]}: {exc.strerror or exc}")
        return 126


IMDS_HELP = (
    "point the program at an IMDSv2 endpoint for PROFILE instead of the container endpoint "
    "(GDAL, DuckDB, object_store/Polars, old SDKs; docs/imds.md)"
)


def register(sub: Subparsers) -> None:
    """``env``, ``exec``."""
    p = command(
        sub, "env", cmd_env,
        "print the variables that point a program at the container endpoint for PROFILE",
        description="Print shell lines (or JSON) that point AWS SDKs and the AWS CLI at credd's "
        'container endpoint for PROFILE: eval "$(credd env work)". See '
        "docs/container-endpoint.md.",
        socket=True,
    )  # fmt: skip
    p.add_argument("profile", metavar="PROFILE", help="a profile the daemon manages")
    p.add_argument("--imds", action="store_true", help=IMDS_HELP)
    p.add_argument(
        "--format",
        choices=("sh", "fish", "json"),
        default="sh",
        help="sh: export/unset lines (default); fish: set -gx / set -e; json: {set, unset}",
    )
    p.add_argument(
        "--json", dest="format", action="store_const", const="json", help="--format json"
    )

    p = command(
        sub, "exec", cmd_exec,
        "run a command whose AWS credentials come from the container endpoint",
        description="Run COMMAND with the environment `credd env PROFILE` prints (no static "
        "keys), replacing credd: signals and the exit code are the command's own.",
        socket=True,
    )  # fmt: skip
    p.add_argument("profile", metavar="PROFILE", help="a profile the daemon manages")
    p.add_argument("--imds", action="store_true", help=IMDS_HELP)
    p.add_argument(
        "--min-lifetime",
        metavar="DURATION",
        help="start COMMAND only with credentials lasting this long (2h, 90m): refreshed first "
        "when they end sooner; fails at once, saying how long is possible, when the source "
        "cannot give that much",
    )
    p.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="what to run"
    )
