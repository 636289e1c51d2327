"""``credd enable`` and ``credd disable``: which profiles credd manages (edits the AWS config,
keeps comments; see :mod:`credd.files.config`)."""

from __future__ import annotations

import argparse

from credd.cli.base import Subparsers, command
from credd.cli.io import Io
from credd.errors import CreddError, UsageError


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


def cmd_enable(args: argparse.Namespace, io: Io) -> int:
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
    io.say(f"{args.profile}: managed by credd ({path}); reload a running daemon: kill -HUP <pid>")
    return 0


def cmd_disable(args: argparse.Namespace, io: Io) -> int:
    from credd.files.config import disable_profile

    changed = disable_profile(args.profile)
    io.say(f"{args.profile}: " + ("no longer managed by credd" if changed else "was not managed"))
    return 0


def register(sub: Subparsers) -> None:
    """``enable``, ``disable``."""
    p = command(
        sub, "enable", cmd_enable, "let credd manage PROFILE (edits the AWS config, keeps comments)"
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

    p = command(
        sub, "disable", cmd_disable, "stop managing PROFILE (keeps its other credd settings)"
    )
    p.add_argument("profile", metavar="PROFILE", help="the profile")
