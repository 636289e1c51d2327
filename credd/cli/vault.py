"""``credd vault token set|delete PROFILE`` and ``credd vault secret-id set PROFILE``: the
secrets the OpenBao/Vault source authenticates with (docs/teams.md).

Both are read from a prompt without echo or, with ``--stdin``, from standard input; never from
argv. They are kept in the secret store in one JSON entry per profile (``vault-PROFILE``).
"""

from __future__ import annotations

import argparse

from credd.cli.base import Body, Subparsers, command, group
from credd.cli.io import Io
from credd.cli.secrets import _need_tty, _read_stdin
from credd.errors import UsageError
from credd.sources.vault import secret_entry

_WHAT = {"token": "Vault token", "secret_id": "AppRole secret_id"}


def _set(key: str) -> Body:
    def body(args: argparse.Namespace, io: Io) -> int:
        what = _WHAT[key]
        if not args.stdin:
            _need_tty(io, f"the {what}")
        store = io.store_factory()
        store.check()
        if args.stdin:
            value = _read_stdin(io).strip()
        else:
            value = io.getpass(f"{what} for profile {args.profile} (not shown): ").strip()
        if not value or any(c.isspace() for c in value):
            raise UsageError(f"that is not a {what} (empty, or spaces inside); nothing stored")
        data = store.get_session(secret_entry(args.profile)) or {}
        data[key] = value
        store.set_session(secret_entry(args.profile), data)
        io.say(f"Stored the {what} for profile {args.profile} ({store.backend_name()}).")
        return 0

    body.__name__ = f"cmd_vault_{key}_set"
    return body


def cmd_vault_delete(args: argparse.Namespace, io: Io) -> int:
    """credd vault token delete PROFILE: forget the token and secret_id of PROFILE."""
    if io.store_factory().delete_session(secret_entry(args.profile)):
        io.say(f"Deleted the Vault secrets of profile {args.profile}.")
    else:
        io.say(f"No Vault secrets were stored for profile {args.profile}; nothing to delete.")
    return 0


def register(sub: Subparsers) -> None:
    """``vault token set|delete``, ``vault secret-id set|delete``."""
    vault = group(
        sub,
        "vault",
        "store the OpenBao/Vault token or AppRole secret_id of a profile",
        description="Secrets the OpenBao/Vault source logs in with (docs/teams.md).",
    )
    for name, key in (("token", "token"), ("secret-id", "secret_id")):
        what = _WHAT[key]
        gsub = group(vault, name, f"store or remove the {what} of a profile")
        p = command(
            gsub,
            "set",
            _set(key),
            f"store the {what} (prompted, or read with --stdin)",
            description=f"Prompt (without echo) for the {what}, or read it with --stdin. "
            "Never taken from the command line.",
            cancelled="cancelled; nothing was stored",
        )
        p.add_argument("profile", metavar="PROFILE", help="the AWS profile name")
        p.add_argument("--stdin", action="store_true", help="read it from standard input")
        p = command(
            gsub, "delete", cmd_vault_delete, "remove the profile's Vault token and secret_id"
        )
        p.add_argument("profile", metavar="PROFILE", help="the AWS profile name")
