"""Every ``credd`` command but ``get`` (see :mod:`credd.cli`), built on argparse.

Each command is a plain function taking the parsed arguments and returning an exit code; a
``CreddError`` becomes a one-line message on stderr and the error's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from credd import __version__
from credd.errors import CreddError, DaemonUnavailable, UsageError

Handler = Callable[[argparse.Namespace], int]


def _client(args: argparse.Namespace) -> Any:
    from credd.client import Client

    return Client(args.socket)


def _profile_arg(args: argparse.Namespace) -> str:
    from credd.aws.config import profile_from_env

    name = args.profile or profile_from_env()
    if not name:
        raise UsageError("which profile?", hint="name it, or set AWS_PROFILE")
    return str(name)


# -- daemon ---------------------------------------------------------------------------------


def cmd_daemon(args: argparse.Namespace) -> int:
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


# -- status ---------------------------------------------------------------------------------


def _human(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s >= 3600:
        return f"{sign}{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    return f"{sign}{s}s"


def profile_ok(p: dict[str, Any]) -> bool:
    """A profile counts as fresh when it holds credentials fit to serve and is not parked."""
    left = p.get("expires_in_seconds")
    has_time = left is not None and left > 60
    return bool(p.get("state") == "fresh" or (p.get("state") == "refreshing" and has_time))


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
                _human(p.get("expires_in_seconds")),
                _human(p.get("next_refresh_in_seconds")),
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


def cmd_status(args: argparse.Namespace) -> int:
    from credd.lifetime import hours

    try:
        status = _client(args).status()
    except DaemonUnavailable as exc:
        if args.json:
            json.dump(
                {"version": 1, "daemon": None, "profiles": [], "error": exc.to_json()},
                sys.stdout,
                indent=2,
            )
            sys.stdout.write("\n")
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
        json.dump({**status, "keys": keys}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_status(status, sys.stdout)
        for k in keys:
            sys.stdout.write(f"keys {k['profile']}: {k['text']}\n")
        if args.profile:  # one profile: say how credd gets its credentials
            for p in status["profiles"]:
                if p.get("plan"):
                    sys.stdout.write(f"\nplan: {p['plan']}\n")
                longest = p.get("longest_lifetime") or {}
                if longest.get("why"):  # the lifetime guard's limit (--min-lifetime)
                    secs = longest.get("seconds")
                    most = hours(secs) if isinstance(secs, int) else "unknown"
                    sys.stdout.write(f"longest lifetime: {most}: {longest['why']}\n")
    return 0 if all(profile_ok(p) for p in status["profiles"]) else 1


# -- mfa / refresh --------------------------------------------------------------------------


def _read_code(args: argparse.Namespace) -> str:
    if args.code:
        return str(args.code)
    if not sys.stdin.isatty():
        line = sys.stdin.readline().strip()
        if line:
            return line
        raise UsageError(
            "no MFA code given", hint="credd mfa PROFILE CODE, or type it at the prompt"
        )
    return input(f"MFA code for {args.profile or 'the profile'}: ").strip()


def cmd_mfa(args: argparse.Namespace) -> int:
    from credd.mfa import check_code

    profile = _profile_arg(args)
    code = check_code(_read_code(args))
    result = _client(args).push_mfa(profile, code)
    p = result["profile"]
    print(f"{profile}: {p['state']}, expires in {_human(p.get('expires_in_seconds'))}")
    return 0 if profile_ok(p) else 1


def cmd_refresh(args: argparse.Namespace) -> int:
    profile = _profile_arg(args)
    p = _client(args).refresh(profile)["profile"]
    line = f"{profile}: {p['state']}, expires in {_human(p.get('expires_in_seconds'))}"
    if p.get("waiting_for"):
        line += f"; waiting for {p['waiting_for']}"
    elif p.get("error"):
        line += f"; {p['error']['message']}"
    print(line)
    return 0 if profile_ok(p) else 1


# -- enable / disable -----------------------------------------------------------------------


def _duration_setting(profile: str, text: str) -> dict[str, str]:
    """``--duration``: a role's own ``duration_seconds``, an IAM user's session length."""
    from credd.aws import config as awsconfig

    try:
        seconds = awsconfig.parse_duration(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:  # the raw files only: other profiles' problems are not this command's to print
        raw = awsconfig.read_files()[0].get(profile, {})
    except CreddError:
        raw = {}
    if "role_arn" in raw:
        if not awsconfig.ROLE_MIN <= seconds <= awsconfig.ROLE_MAX:
            raise UsageError(f"--duration for a role must be between 15m and 12h, not {text}")
        return {"duration_seconds": str(seconds)}
    if not awsconfig.SESSION_MIN <= seconds <= awsconfig.SESSION_MAX:
        raise UsageError(f"--duration must be between 15m and 36h, not {text}")
    return {"credd_session_duration": text}


def cmd_enable(args: argparse.Namespace) -> int:
    from credd.files.config import enable_profile

    settings: dict[str, str] = {}
    if args.mfa_source:
        settings["credd_mfa_source"] = args.mfa_source
    if args.duration:
        settings.update(_duration_setting(args.profile, args.duration))
    if args.file_profile:
        settings["credd_file_profile"] = args.file_profile
    if args.mfa_serial:
        settings["mfa_serial"] = args.mfa_serial
    if args.mfa_process:
        settings["mfa_process"] = args.mfa_process
    path = enable_profile(args.profile, settings, create=args.create)
    print(f"{args.profile}: managed by credd ({path}); reload a running daemon: kill -HUP <pid>")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    from credd.files.config import disable_profile

    changed = disable_profile(args.profile)
    print(f"{args.profile}: " + ("no longer managed by credd" if changed else "was not managed"))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"credd {__version__}")
    return 0


# -- the parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credd",
        description="Keeps AWS session credentials fresh and serves them to every program.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_text: str, *, socket: bool = True) -> Any:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if socket:
            p.add_argument(
                "--socket",
                metavar="PATH",
                help="the daemon's socket (default: $CREDD_SOCKET, else "
                "$XDG_RUNTIME_DIR/credd/credd.sock)",
            )
        p.set_defaults(handler=handler)
        return p

    p = add("daemon", cmd_daemon, "run the daemon in the foreground (stops on SIGTERM/SIGINT)")
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

    p = add("status", cmd_status, "show every managed profile; exit 0 only when all are fresh")
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="show only this profile")
    p.add_argument("--json", action="store_true", help="machine-readable output (docs/cli.md)")

    p = add("get", cmd_get_help, "print credentials for PROFILE (what credential_process runs)")
    p.add_argument("profile", metavar="PROFILE", help="a profile credd manages")
    p.add_argument(
        "--format",
        choices=("json", "env"),
        default="json",
        help="json: the credential_process shape (default); env: export lines",
    )

    p = add(
        "mfa", cmd_mfa, "give the daemon an MFA code for PROFILE (prompts when CODE is omitted)"
    )
    p.add_argument(
        "profile", nargs="?", metavar="PROFILE", help="the profile (default: $AWS_PROFILE)"
    )
    p.add_argument("code", nargs="?", metavar="CODE", help="the six-digit code your device shows")

    p = add("refresh", cmd_refresh, "refresh PROFILE now and show the outcome")
    p.add_argument(
        "profile", nargs="?", metavar="PROFILE", help="the profile (default: $AWS_PROFILE)"
    )

    p = add(
        "enable",
        cmd_enable,
        "let credd manage PROFILE (edits the AWS config, keeps comments)",
        socket=False,
    )
    p.add_argument("profile", metavar="PROFILE", help="the profile to manage")
    p.add_argument(
        "--mfa-source",
        choices=("totp", "process", "person"),
        help="where MFA codes come from (default: decided automatically)",
    )
    p.add_argument("--duration", metavar="DURATION", help="session length, e.g. 12h (15m..36h)")
    p.add_argument(
        "--file-profile",
        metavar="NAME",
        help="section written to the credentials file (default PROFILE-credd; off)",
    )
    p.add_argument("--mfa-serial", metavar="ARN", help="the MFA device (default: discovered)")
    p.add_argument("--mfa-process", metavar="COMMAND", help="a command that prints the MFA code")
    p.add_argument(
        "--create",
        action="store_true",
        help="create [profile PROFILE] in the config if it does not exist",
    )

    p = add(
        "disable",
        cmd_disable,
        "stop managing PROFILE (keeps its other credd settings)",
        socket=False,
    )
    p.add_argument("profile", metavar="PROFILE", help="the profile")

    from credd.cli.secrets import register

    register(sub)
    from credd.exec_env import register as register_exec

    register_exec(sub)
    from credd.cli.login import register as register_login

    register_login(sub)
    from credd.daemon.units import register as register_service

    register_service(sub)
    from credd.daemon.detach import register as register_stop

    register_stop(sub)
    from credd.cli.store import register as register_store

    register_store(sub)
    from credd.cli.forget import register as register_forget

    register_forget(sub)
    from credd.server.relay import register as register_relay

    register_relay(sub)
    from credd.doctor import register as register_doctor

    register_doctor(sub)
    from credd.actions.presign import register as register_presign

    register_presign(sub)
    from credd.cli.vault import register as register_vault

    register_vault(sub)
    from credd.actions.console import register as register_console

    register_console(sub)

    add("version", cmd_version, "print credd's version", socket=False)
    return parser


def cmd_get_help(args: argparse.Namespace) -> int:
    """Only reached through ``credd.cli.app.run``; ``credd get`` normally takes the fast path."""
    from credd.cli.get import main as get_main

    argv = [args.profile, "--format", args.format]
    if args.socket:
        argv += ["--socket", args.socket]
    return get_main(argv)


def run(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    try:
        handler = getattr(args, "handler", None) or args.func
        return int(handler(args))
    except CreddError as exc:
        sys.stderr.write(f"credd: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("credd: interrupted\n")
        return 130


def command_names() -> list[str]:
    """Every command, for the docs test."""
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    return []


__all__ = ["build_parser", "command_names", "run"]
