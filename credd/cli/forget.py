"""``credd forget PROFILE | --all`` and ``credd logout --sso-session NAME``: forgetting on purpose.

* ``forget`` asks the daemon to drop held sessions, saved sessions (credd/engine/persist.py) and the
  sections credd wrote into the credentials file, for one profile or all, and prints what went.
  Long-term keys, TOTP seeds and the SSO cache are kept (``credd keys delete``, ``credd totp
  delete`` and ``credd logout`` remove those).
* ``logout`` ends an IAM Identity Center sign-in as ``aws sso logout`` does: the portal's
  ``Logout`` call ends the session (its access and refresh tokens stop working), then the token
  file of that sso-session is removed from the shared cache (``~/.aws/sso/cache``), and the
  daemon forgets the profiles that used it. When the service cannot be reached the local copy is
  still removed, and it says so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from credd.cli.base import Subparsers, command
from credd.cli.io import Io
from credd.errors import CreddError, DaemonUnavailable, UsageError

__all__ = ["register"]


def _forget(io: Io, socket: str | None, profile: str | None) -> dict[str, list[str]]:
    body = json.dumps({"all": True} if profile is None else {"profile": profile}).encode()
    client = io.client(socket)
    answer = json.loads(client.call("POST", "/v1/forget", body, client.action_timeout))
    forgot: dict[str, list[str]] = answer.get("forgot") or {}
    return forgot


def _say_forgot(io: Io, who: str, forgot: dict[str, list[str]]) -> None:
    parts = [
        f"{len(forgot.get('sessions', []))} held session(s)"
        + (f" ({', '.join(forgot['sessions'])})" if forgot.get("sessions") else ""),
        f"{len(forgot.get('saved', []))} saved session(s)",
        f"{len(forgot.get('file_sections', []))} credentials-file section(s)"
        + (f" ([{'], ['.join(forgot['file_sections'])}])" if forgot.get("file_sections") else ""),
    ]
    io.say(f"Forgot {who}: " + "; ".join(parts) + ".")
    io.say(
        "Kept: long-term keys, TOTP seeds and the SSO cache. The next request (or credd refresh) "
        "fetches a new session."
    )


def cmd_forget(args: argparse.Namespace, io: Io) -> int:
    if bool(args.profile) == bool(args.all):
        raise UsageError("give a PROFILE or --all", hint="credd forget work, or credd forget --all")
    forgot = _forget(io, args.socket, None if args.all else args.profile)
    _say_forgot(io, "every profile" if args.all else args.profile, forgot)
    return 0


def _revoke(target: Any, token: Any, profile: str | None) -> str:
    """End the sign-in with the portal's ``Logout``; what happened, in words."""
    from credd.aws.clients import ClientFactory

    try:
        client = ClientFactory().unsigned_client("sso", profile, target.region)
        client.logout(accessToken=token.access_token)
    except Exception as exc:  # its text may hold the token: name the type only
        return (
            f"the sign-in could not be ended with IAM Identity Center ({type(exc).__name__}); "
            "it ends on its own when its session expires"
        )
    return "the sign-in was ended with IAM Identity Center (its tokens no longer work)"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def cmd_logout(args: argparse.Namespace, io: Io) -> int:
    from credd.sso.cache import TokenCache
    from credd.sso.settings import load_full_config, profiles_using, resolve_session

    full = load_full_config()
    target = resolve_session(args.sso_session, full)
    users = profiles_using(target, full)
    cache = TokenCache()
    path = cache.path(target)
    token = cache.read(target)
    if token is None:
        io.say(f"No cached sign-in for {target.label} ({path} does not exist).")
    else:
        io.say(_sentence(_revoke(target, token, users[0] if users else None)) + ".")
        with cache.locked(target), contextlib.suppress(FileNotFoundError):
            path.unlink()
        io.say(f"Removed {path} from the shared cache (the AWS CLI used it too).")
    profiles: dict[str, Any] = full.get("profiles", {}) or {}
    managed = [
        n for n in users if str(profiles[n].get("credd", "")).lower() in ("1", "true", "yes", "on")
    ]
    for name in managed:
        try:
            _say_forgot(io, name, _forget(io, args.socket, name))
        except DaemonUnavailable:
            io.say("The daemon is not running; nothing held to forget.")
            break
        except CreddError as exc:
            io.say(f"The daemon could not forget {name}: {exc.message}")
    return 0


def register(sub: Subparsers) -> None:
    """``forget``, ``logout``."""
    p = command(
        sub,
        "forget",
        cmd_forget,
        "drop held and saved sessions and credd's file sections (PROFILE or --all)",
        description="Drop the sessions the daemon holds for PROFILE (or every profile), the "
        "sessions it saved in the secret store, and the sections it wrote into the credentials "
        "file; say what was removed. Long-term keys, TOTP seeds and the SSO cache are kept.",
        socket=True,
    )
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="the profile to forget")
    p.add_argument("--all", action="store_true", help="forget every profile")

    p = command(
        sub,
        "logout",
        cmd_logout,
        "end an IAM Identity Center sign-in and remove it from the shared cache",
        description="As aws sso logout does: end the sign-in with the portal (its access and "
        "refresh tokens stop working), remove the sso-session's token from ~/.aws/sso/cache, "
        "and make the daemon forget the profiles that used it.",
        socket=True,
    )
    p.add_argument("--sso-session", required=True, metavar="NAME", help="the [sso-session NAME]")
