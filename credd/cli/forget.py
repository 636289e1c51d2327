"""``credd forget PROFILE | --all`` and ``credd logout --sso-session NAME``: forgetting on purpose.

* ``forget`` asks the daemon to drop held sessions, saved sessions (credd/persist.py) and the
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
import sys
from typing import Any

from credd.errors import CreddError, DaemonUnavailable, UsageError

__all__ = ["register"]

_SOCKET_HELP = (
    "the daemon's socket (default: $CREDD_SOCKET, else $XDG_RUNTIME_DIR/credd/credd.sock)"
)


def _forget(socket: str | None, profile: str | None) -> dict[str, list[str]]:
    from credd.client import Client

    body = json.dumps({"all": True} if profile is None else {"profile": profile}).encode()
    client = Client(socket)
    answer = json.loads(client.call("POST", "/v1/forget", body, client.action_timeout))
    forgot: dict[str, list[str]] = answer.get("forgot") or {}
    return forgot


def _say_forgot(who: str, forgot: dict[str, list[str]]) -> None:
    parts = [
        f"{len(forgot.get('sessions', []))} held session(s)"
        + (f" ({', '.join(forgot['sessions'])})" if forgot.get("sessions") else ""),
        f"{len(forgot.get('saved', []))} saved session(s)",
        f"{len(forgot.get('file_sections', []))} credentials-file section(s)"
        + (f" ([{'], ['.join(forgot['file_sections'])}])" if forgot.get("file_sections") else ""),
    ]
    sys.stdout.write(f"Forgot {who}: " + "; ".join(parts) + ".\n")
    sys.stdout.write(
        "Kept: long-term keys, TOTP seeds and the SSO cache. The next request (or credd refresh) "
        "fetches a new session.\n"
    )


def cmd_forget(args: argparse.Namespace) -> int:
    if bool(args.profile) == bool(args.all):
        raise UsageError("give a PROFILE or --all", hint="credd forget work, or credd forget --all")
    forgot = _forget(args.socket, None if args.all else args.profile)
    _say_forgot("every profile" if args.all else args.profile, forgot)
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


def cmd_logout(args: argparse.Namespace) -> int:
    from credd.sso.cache import TokenCache
    from credd.sso.settings import load_full_config, profiles_using, resolve_session

    full = load_full_config()
    target = resolve_session(args.sso_session, full)
    users = profiles_using(target, full)
    cache = TokenCache()
    path = cache.path(target)
    token = cache.read(target)
    if token is None:
        sys.stdout.write(f"No cached sign-in for {target.label} ({path} does not exist).\n")
    else:
        sys.stdout.write(_sentence(_revoke(target, token, users[0] if users else None)) + ".\n")
        with cache.locked(target), contextlib.suppress(FileNotFoundError):
            path.unlink()
        sys.stdout.write(f"Removed {path} from the shared cache (the AWS CLI used it too).\n")
    profiles: dict[str, Any] = full.get("profiles", {}) or {}
    managed = [
        n for n in users if str(profiles[n].get("credd", "")).lower() in ("1", "true", "yes", "on")
    ]
    for name in managed:
        try:
            _say_forgot(name, _forget(args.socket, name))
        except DaemonUnavailable:
            sys.stdout.write("The daemon is not running; nothing held to forget.\n")
            break
        except CreddError as exc:
            sys.stdout.write(f"The daemon could not forget {name}: {exc.message}\n")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``forget`` and ``logout`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "forget",
        help="drop held and saved sessions and credd's file sections (PROFILE or --all)",
        description="Drop the sessions the daemon holds for PROFILE (or every profile), the "
        "sessions it saved in the secret store, and the sections it wrote into the credentials "
        "file; say what was removed. Long-term keys, TOTP seeds and the SSO cache are kept.",
    )
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="the profile to forget")
    p.add_argument("--all", action="store_true", help="forget every profile")
    p.add_argument("--socket", metavar="PATH", help=_SOCKET_HELP)
    p.set_defaults(func=cmd_forget)

    p = subparsers.add_parser(
        "logout",
        help="end an IAM Identity Center sign-in and remove it from the shared cache",
        description="As aws sso logout does: end the sign-in with the portal (its access and "
        "refresh tokens stop working), remove the sso-session's token from ~/.aws/sso/cache, "
        "and make the daemon forget the profiles that used it.",
    )
    p.add_argument("--sso-session", required=True, metavar="NAME", help="the [sso-session NAME]")
    p.add_argument("--socket", metavar="PATH", help=_SOCKET_HELP)
    p.set_defaults(func=cmd_logout)
