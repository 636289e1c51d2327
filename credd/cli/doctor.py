"""``credd doctor [--json]``: check the environment end to end, one line per finding; or act
on lost sections of the AWS files (``--restore-files`` / ``--accept-files``). The checks are
the library module :mod:`credd.doctor`; the JSON schema is in docs/doctor.md."""

from __future__ import annotations

import argparse

from credd.cli.base import Subparsers, command
from credd.cli.io import Io
from credd.errors import UsageError


def cmd_doctor(args: argparse.Namespace, io: Io) -> int:
    from credd import doctor
    from credd.paths import socket_path

    if args.restore_files or args.accept_files:
        from credd.files.restore import restore_files

        return restore_files(
            None, io.stdout, accepting=args.accept_files, include_keys=args.include_keys
        )
    if args.include_keys:
        raise UsageError("--include-keys goes with --restore-files")
    checks = doctor.run_checks(socket=str(socket_path(override=args.socket)))
    report = doctor.report(checks)
    if args.json:
        io.json(report)
    else:
        doctor.render(checks, io.stdout)
    return 0 if report["ok"] else 1


def register(sub: Subparsers) -> None:
    """``doctor``."""
    p = command(
        sub,
        "doctor",
        cmd_doctor,
        "check the environment end to end and say what to fix",
        description="Check the AWS files, each managed profile's plan and secrets, the secret "
        "store, the daemon and its container endpoint, the systemd unit and the clock against "
        "STS. One line per check; exit 0 only when none fails. See docs/doctor.md.",
        socket=True,
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (see docs)")
    fix = p.add_mutually_exclusive_group()
    fix.add_argument(
        "--restore-files",
        action="store_true",
        help="add back the sections the AWS files lost since credd's last-known-good copy",
    )
    fix.add_argument(
        "--accept-files",
        action="store_true",
        help="the AWS files are as you want them: make them credd's last-known-good copy",
    )
    p.add_argument(
        "--include-keys",
        action="store_true",
        help="with --restore-files: also restore sections holding secret keys (left out "
        "otherwise: you may have removed them on purpose)",
    )
