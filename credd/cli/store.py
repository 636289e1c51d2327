"""``credd store init | use``: choose a file secret store on a host with no keyring.

The choice is explicit: ``init`` creates the store and records it in
``$XDG_CONFIG_HOME/credd/secret-store``; ``CREDD_SECRET_STORE`` overrides that record. See
:mod:`credd.secrets.files` and docs/secrets.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from credd.cli.base import Subparsers, command, group
from credd.cli.io import Io
from credd.errors import UsageError
from credd.secrets import files as filestore

MIN_PASSPHRASE = 8


def _new_passphrase(args: argparse.Namespace, io: Io) -> bytes:
    env = dict(os.environ)
    if args.passphrase_fd is not None:
        env[filestore.FD_ENV] = str(args.passphrase_fd)
    prompt: Callable[[str], str] | None = None
    if io.stdin_is_tty():
        prompt = io.getpass
    source = filestore.passphrase_source(env, prompt=prompt)
    if source is None:
        raise UsageError(
            "no passphrase for the new encrypted store",
            hint="run this in a terminal to be asked, or pass --passphrase-fd N "
            "(e.g. --passphrase-fd 3 3< file)",
        )
    where, read = source
    passphrase = read()
    if where == "the terminal":
        again = io.getpass("The same passphrase again: ").encode()
        if again != passphrase:
            raise UsageError("the two passphrases differ; nothing was created")
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(
            f"the passphrase is shorter than {MIN_PASSPHRASE} characters; nothing was created",
            hint="use a long passphrase: it is all that protects the file",
        )
    return passphrase


def cmd_init(args: argparse.Namespace, io: Io) -> int:
    kind = args.kind
    path = filestore.store_path(kind)
    if kind == filestore.ENCRYPTED:
        passphrase = _new_passphrase(args, io)
        filestore.EncryptedFileKeyring(path).create_with(passphrase)
    else:
        filestore.PlaintextFileKeyring(path).create()
    choice = filestore.select_store(kind)
    io.say(f"created {path} (0600); credd now uses it (recorded in {choice})")
    if kind == filestore.PLAINTEXT:
        io.warn(
            "WARNING: secrets in this store are NOT encrypted: anyone who can read "
            f"{path} (or a backup of it) gets your AWS keys and TOTP seeds"
        )
    else:
        io.say(
            "the daemon needs the passphrase at start: --passphrase-fd N, the systemd "
            f"credential {filestore.CREDENTIAL_NAME} (LoadCredential=), a file "
            f"({filestore.FILE_ENV}) or a command ({filestore.COMMAND_ENV})"
        )
    io.say("store secrets as usual: credd keys set PROFILE / credd totp set PROFILE")
    env = os.environ.get(filestore.STORE_ENV)
    if env and env != kind:
        io.warn(f"note: {filestore.STORE_ENV}={env} overrides that choice")
    return 0


def cmd_use(args: argparse.Namespace, io: Io) -> int:
    kind = args.kind
    if kind != filestore.KEYRING and not filestore.store_path(kind).exists():
        raise UsageError(
            f"there is no {kind} store at {filestore.store_path(kind)}",
            hint=f"create it: credd store init {kind}",
        )
    choice = filestore.select_store(kind)
    io.say(f"credd now uses the {kind} secret store (recorded in {choice}); restart the daemon")
    return 0


def cmd_show(args: argparse.Namespace, io: Io) -> int:
    kind, source = filestore.selected()
    shown: dict[str, object] = {"store": kind, "chosen_by": source}
    if kind != filestore.KEYRING:
        path = filestore.store_path(kind)
        shown |= {"file": str(path), "present": path.exists()}
    if args.json:
        io.json(shown)
        return 0
    io.say(f"secret store: {kind} (chosen by {source})")
    if "file" in shown:
        io.say(f"file: {shown['file']} ({'present' if shown['present'] else 'missing'})")
    return 0


def register(sub: Subparsers) -> None:
    """``store init|use|show``."""
    store = group(
        sub,
        "store",
        "choose where secrets live on a host with no keyring",
        description="Create and choose a file secret store for hosts with no Secret Service "
        "(SSH boxes, hosted notebooks). See docs/secrets.md.",
    )
    p = command(
        store,
        "init",
        cmd_init,
        "create an encrypted (or, opted in, plain-text) file store and use it",
        description="Create $XDG_DATA_HOME/credd/secrets.enc (encrypted with a passphrase) "
        "or secrets.json (plain text, 0600) and make credd use it.",
        cancelled="cancelled; nothing was created",
    )
    p.add_argument(
        "kind",
        choices=(filestore.ENCRYPTED, filestore.PLAINTEXT),
        help="encrypted-file (a passphrase unlocks it) or plaintext-file (0600, unencrypted)",
    )
    p.add_argument(
        "--passphrase-fd",
        type=int,
        metavar="N",
        help="read the new passphrase from file descriptor N (else a terminal prompt)",
    )
    p = command(store, "use", cmd_use, "switch credd to an existing store (or back to the keyring)")
    p.add_argument(
        "kind", choices=filestore.KINDS, help="keyring, encrypted-file or plaintext-file"
    )
    p = command(store, "show", cmd_show, "which secret store credd uses, and why")
    p.add_argument("--json", action="store_true", help="{store, chosen_by, file?, present?}")
