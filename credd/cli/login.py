"""``credd login PROFILE | --sso-session NAME``: sign in to IAM Identity Center.

The token goes to the cache the AWS CLI shares (``~/.aws/sso/cache``); then the daemon is asked
to refresh
every managed profile that uses this login, so it picks the token up at once, and the state it
reports back is what is printed: "picked up" only for a profile that is fresh now (otherwise its
state and what it waits for, and exit 1). See docs/sso.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from credd.cli.base import Subparsers, command
from credd.cli.io import Io
from credd.clock import isoformat_z
from credd.errors import CreddError, DaemonUnavailable, UsageError


def _managed(raw: Mapping[str, Any]) -> bool:
    return str(raw.get("credd", "")).strip().lower() in {"1", "true", "yes", "on"}


def _notify_daemon(args: argparse.Namespace, io: Io, names: list[str]) -> bool:
    """Tell the daemon; True when every profile it reports on is fresh (or it is not running)."""
    if not names:
        io.say("No profile managed by credd uses this login; nothing to tell the daemon.")
        return True
    client = io.client(args.socket)
    all_fresh = True
    for name in names:
        try:
            reply = client.refresh(name)
        except DaemonUnavailable:
            io.say(
                "The credd daemon is not running; it will use the new token when it starts "
                "(credd daemon)."
            )
            return True
        except CreddError as exc:
            io.say(f"The daemon could not refresh {name} yet: {exc}")
            all_fresh = False
            continue
        profile = reply.get("profile") if isinstance(reply, dict) else None
        line, fresh = _outcome(name, profile if isinstance(profile, dict) else {})
        io.say(line)
        all_fresh = all_fresh and fresh
    return all_fresh


def _outcome(name: str, p: Mapping[str, Any]) -> tuple[str, bool]:
    """What to say about ``name`` from the status the daemon reported after the refresh."""
    from credd.cli.status import profile_ok

    state = str(p.get("state") or "unknown")
    if profile_ok(dict(p)):
        until = p.get("expires_at")
        return (
            f"The daemon picked up the new token for {name}: fresh"
            + (f", credentials valid until {until}." if until else "."),
            True,
        )
    error = (p.get("error") or {}).get("message")
    waiting = p.get("waiting_for") or f"see: credd status {name}"
    line = f"The daemon has not picked up the new token for {name}: it is {state}"
    return line + (f": {error}" if error else "") + f"; {waiting}", False


def cmd_login(args: argparse.Namespace, io: Io) -> int:
    from credd.aws.config import profile_from_env
    from credd.sso.login import LoginFlow, LoginIo
    from credd.sso.settings import (
        load_full_config,
        profiles_using,
        resolve_profile,
        resolve_session,
        sso_profile_of,
    )

    if args.profile and args.sso_session:
        raise UsageError("give a PROFILE or --sso-session NAME, not both")
    full = load_full_config()
    if args.sso_session:
        target = resolve_session(args.sso_session, full)
        users = profiles_using(target, full)
        profile = users[0] if users else None
        shown: str | None = None
    else:
        name = args.profile or profile_from_env()
        if not name:
            raise UsageError("which profile?", hint="credd login PROFILE, or --sso-session NAME")
        target = resolve_profile(str(name), full)
        profile = sso_profile_of(str(name), full)
        shown = str(name)
    login_io = LoginIo(say=io.say)
    if io.open_browser is not None:
        login_io.open_browser = io.open_browser
    flow = LoginFlow(target, profile=profile, io=login_io, timeout=float(args.timeout))
    if args.device_code or target.legacy:
        token = flow.device_code(open_browser=not args.no_browser)
    else:
        token = flow.authorization_code(open_browser=not args.no_browser)
    refresh = (
        "credd refreshes it until the organisation's session ends"
        if token.has_refresh and not target.legacy
        else "it cannot be refreshed; log in again when it ends"
    )
    io.say(
        f"Signed in to {target.label}{f' (profile {shown})' if shown else ''}. The access token "
        f"is valid until {isoformat_z(token.expires_at)}; {refresh}."
    )
    io.say(f"Written to {flow.cache.path(target)} (the AWS CLI and SDKs use it too).")
    profiles: Mapping[str, Mapping[str, Any]] = full.get("profiles", {}) or {}
    managed = [n for n in profiles_using(target, full) if _managed(profiles[n])]
    return 0 if _notify_daemon(args, io, managed) else 1


def register(sub: Subparsers) -> None:
    """``login``."""
    p = command(
        sub,
        "login",
        cmd_login,
        "sign in to IAM Identity Center (SSO) for PROFILE or --sso-session NAME",
        description="Sign in with authorization code + PKCE in a browser (or --device-code), "
        "store the token in ~/.aws/sso/cache (shared with the AWS CLI) and tell the daemon.",
        socket=True,
        cancelled="login cancelled; nothing was written",
    )
    p.add_argument(
        "profile", nargs="?", metavar="PROFILE", help="an SSO profile (default: $AWS_PROFILE)"
    )
    p.add_argument("--sso-session", metavar="NAME", help="log in to [sso-session NAME] instead")
    p.add_argument(
        "--device-code",
        action="store_true",
        help="use the device code flow (SSH, hosted notebooks): open the URL anywhere",
    )
    p.add_argument(
        "--no-browser", action="store_true", help="print the sign-in URL instead of opening it"
    )
    p.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=int,
        default=600,
        help="how long to wait for the sign-in (default 600)",
    )
