"""``credd status``, ``credd mfa`` and ``credd refresh``: what the daemon holds, and nudging it.

``status`` exits 0 only when every profile shown is fresh; ``--json`` prints the daemon's
status document (docs/cli.md) plus each IAM user's key age, and still prints a document (with
``daemon: null`` and the error) when the daemon is down.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from credd.cli.base import Subparsers, command, profile_arg
from credd.cli.io import Io
from credd.durations import format_duration
from credd.engine.state import State
from credd.errors import DaemonUnavailable, UsageError


def profile_ok(p: dict[str, Any]) -> bool:
    """A profile counts as fresh when it holds credentials fit to serve and is not parked."""
    left = p.get("expires_in_seconds")
    has_time = left is not None and left > 60
    state = p.get("state")
    return bool(state == State.FRESH or (state == State.REFRESHING and has_time))


def render_status(status: dict[str, Any], out: TextIO) -> None:
    rows = [("PROFILE", "KIND", "STATE", "EXPIRES IN", "NEXT REFRESH", "WAITING FOR")]
    for p in status["profiles"]:
        waiting = p.get("waiting_for") or ""
        if p.get("error") and not waiting:
            waiting = p["error"].get("hint") or p["error"].get("message", "")
        rows.append(
            (
                p["name"],
                p["kind"],
                p["state"],
                format_duration(p.get("expires_in_seconds")),
                format_duration(p.get("next_refresh_in_seconds")),
                waiting,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        out.write(
            "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=False)) + "  " + r[5] + "\n"
        )
    for p in status["profiles"]:
        if p.get("error"):
            out.write(f"\n{p['name']}: {p['error']['message']}\n")
    daemon = status.get("daemon", {})
    out.write(f"\ncredd {daemon.get('version', '?')}, pid {daemon.get('pid', '?')}\n")
    endpoint = daemon.get("endpoint")
    if isinstance(endpoint, dict):
        if endpoint.get("url"):
            out.write(f"container endpoint: {endpoint['url']}PROFILE\n")
        elif endpoint.get("error"):
            out.write(f"container endpoint: not serving: {endpoint['error'].get('message')}\n")
        else:
            out.write("container endpoint: off\n")
        if endpoint.get("note") and endpoint.get("url"):
            out.write(f"  note: {endpoint['note']}\n")


def cmd_status(args: argparse.Namespace, io: Io) -> int:
    try:
        status = io.client(args.socket).status()
    except DaemonUnavailable as exc:
        if args.json:
            io.json({"version": 1, "daemon": None, "profiles": [], "error": exc.to_json()})
        raise
    if args.profile:
        status["profiles"] = [p for p in status["profiles"] if p["name"] == args.profile]
        if not status["profiles"]:
            raise UsageError(
                f"credd does not manage {args.profile!r}",
                hint=f"enable it: credd enable {args.profile}",
            )
    from credd.cli.keys import status_keys

    keys = status_keys(args.profile)
    if args.json:
        io.json({**status, "keys": keys})
    else:
        render_status(status, io.stdout)
        for k in keys:
            io.say(f"keys {k['profile']}: {k['text']}")
        if args.profile:  # one profile: say how credd gets its credentials
            _explain(status["profiles"], io)
    return 0 if all(profile_ok(p) for p in status["profiles"]) else 1


def _explain(profiles: list[dict[str, Any]], io: Io) -> None:
    for p in profiles:
        if p.get("plan"):
            io.say(f"\nplan: {p['plan']}")
        longest = p.get("longest_lifetime") or {}
        if longest.get("why"):  # the lifetime guard's limit (--min-lifetime)
            secs = longest.get("seconds")
            most = format_duration(secs) if isinstance(secs, int) else "unknown"
            io.say(f"longest lifetime: {most}: {longest['why']}")


def _read_code(args: argparse.Namespace, io: Io) -> str:
    if args.code:
        return str(args.code)
    if not io.stdin_is_tty():
        line = io.stdin.readline().strip()
        if line:
            return line
        raise UsageError(
            "no MFA code given", hint="credd mfa PROFILE CODE, or type it at the prompt"
        )
    return io.ask(f"MFA code for {args.profile or 'the profile'}: ").strip()


def _outcome(profile: str, p: dict[str, Any], *, why: bool) -> str:
    line = f"{profile}: {p['state']}, expires in {format_duration(p.get('expires_in_seconds'))}"
    if why and p.get("waiting_for"):
        line += f"; waiting for {p['waiting_for']}"
    elif why and p.get("error"):
        line += f"; {p['error']['message']}"
    return line


def cmd_mfa(args: argparse.Namespace, io: Io) -> int:
    from credd.sources.mfa import check_code

    profile = profile_arg(args)
    code = check_code(_read_code(args, io))
    p = io.client(args.socket).push_mfa(profile, code)["profile"]
    io.say(_outcome(profile, p, why=False))
    return 0 if profile_ok(p) else 1


def cmd_refresh(args: argparse.Namespace, io: Io) -> int:
    profile = profile_arg(args)
    p = io.client(args.socket).refresh(profile)["profile"]
    io.say(_outcome(profile, p, why=True))
    return 0 if profile_ok(p) else 1


DEFAULT_PROFILE = "the profile (default: $AWS_PROFILE)"


def register(sub: Subparsers) -> None:
    """``status``, ``mfa``, ``refresh``."""
    p = command(
        sub,
        "status",
        cmd_status,
        "show every managed profile; exit 0 only when all are fresh",
        socket=True,
    )
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="show only this profile")
    p.add_argument("--json", action="store_true", help="machine-readable output (docs/cli.md)")

    p = command(
        sub,
        "mfa",
        cmd_mfa,
        "give the daemon an MFA code for PROFILE (prompts when CODE is omitted)",
        socket=True,
    )
    p.add_argument("profile", nargs="?", metavar="PROFILE", help=DEFAULT_PROFILE)
    p.add_argument("code", nargs="?", metavar="CODE", help="the six-digit code your device shows")

    p = command(
        sub, "refresh", cmd_refresh, "refresh PROFILE now and show the outcome", socket=True
    )
    p.add_argument("profile", nargs="?", metavar="PROFILE", help=DEFAULT_PROFILE)
