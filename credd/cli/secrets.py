"""``credd keys``, ``credd totp`` and ``credd secrets``: put secrets into the keyring.

Secrets are read from a prompt (the secret part without echo) or, with ``--stdin``, from
standard input; never from argv. Commands follow credd/cli/base.py: ``(args, io) -> exit code``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from credd.cli.base import Subparsers, command, group
from credd.cli.io import Io
from credd.errors import CreddError, UsageError
from credd.models import mask_key_id
from credd.secrets.store import SecretStore, validate_access_key_id, validate_long_term_keys

MAX_STDIN = 64 * 1024


def _read_stdin(io: Io) -> str:
    text = io.stdin.read(MAX_STDIN + 1)
    if len(text) > MAX_STDIN:
        raise UsageError(f"standard input is larger than {MAX_STDIN} bytes")
    if not text.strip():
        raise UsageError("standard input is empty", hint="pipe the secret into the command")
    return text


def _need_tty(io: Io, what: str) -> None:
    if not io.stdin_is_tty():
        raise UsageError(
            "standard input is not a terminal, so credd cannot prompt",
            hint=f"pass --stdin to read {what} from standard input",
        )


def parse_keys_input(text: str) -> tuple[str, str]:
    """Two lines (key id, secret) or a JSON object with AccessKeyId and SecretAccessKey."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data: Any = json.loads(stripped)
        except ValueError:
            raise UsageError(
                "standard input is not valid JSON",
                hint='send {"AccessKeyId": ..., "SecretAccessKey": ...} or two lines',
            ) from None
        if not isinstance(data, dict):
            raise UsageError("the JSON on standard input is not an object")
        if data.get("SessionToken"):
            raise UsageError(
                "those are temporary credentials (they have a SessionToken)",
                hint="store the IAM user's long-term keys; credd makes the sessions",
            )
        key_id, secret = data.get("AccessKeyId"), data.get("SecretAccessKey")
        if not isinstance(key_id, str) or not isinstance(secret, str):
            raise UsageError("the JSON needs string AccessKeyId and SecretAccessKey fields")
        return key_id.strip(), secret.strip()
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if len(lines) != 2:
        raise UsageError(
            f"expected two lines on standard input (key id, then secret), got {len(lines)}",
            hint='or send {"AccessKeyId": ..., "SecretAccessKey": ...}',
        )
    return lines[0], lines[1]


def cmd_keys_set(args: argparse.Namespace, io: Io) -> int:
    """credd keys set PROFILE [--stdin]"""
    if not args.stdin:
        _need_tty(io, "the keys")
    store = io.store_factory()
    store.check()  # a locked or missing keyring is reported before anyone types a secret
    if args.stdin:
        key_id, secret = parse_keys_input(_read_stdin(io))
    else:
        key_id = io.ask("AWS access key id: ").strip()
        validate_access_key_id(key_id)
        secret = io.getpass("AWS secret access key (not shown): ").strip()
    validate_long_term_keys(key_id, secret)
    store.set_long_term_keys(args.profile, key_id, secret)
    _remember_stored(store, args.profile, key_id)
    io.say(
        f"Stored long-term keys {mask_key_id(key_id)} for profile {args.profile} "
        f"in the keyring ({store.backend_name()})."
    )
    return 0


def _remember_stored(store: SecretStore, profile: str, key_id: str) -> None:
    """The key's age for ``status``/``doctor`` (docs/keys.md); best effort."""
    from credd.actions.rotation import remember_key_age
    from credd.clock import SystemClock

    with contextlib.suppress(CreddError):
        remember_key_age(store, profile, key_id, SystemClock().now())


def cmd_keys_import(args: argparse.Namespace, io: Io) -> int:
    """credd keys import PROFILE [--from-section NAME]"""
    from credd.sources.keys import credentials_file_path, read_credentials_section

    section = args.from_section or args.profile
    path = credentials_file_path()
    key_id, secret = read_credentials_section(path, section)
    validate_long_term_keys(key_id, secret)
    store = io.store_factory()
    store.set_long_term_keys(args.profile, key_id, secret)
    _remember_stored(store, args.profile, key_id)
    io.say(
        f"Imported long-term keys {mask_key_id(key_id)} from [{section}] of {path} into the "
        f"keyring ({store.backend_name()}) for profile {args.profile}."
    )
    io.say(
        f"The plain-text copy is still in {path}; credd did not change that file. Once credd "
        f"works for {args.profile}, delete the aws_access_key_id and aws_secret_access_key "
        f"lines of [{section}] (or the whole section) with an editor, then run credd doctor "
        "--accept-files: credd's copies of the file (credentials.credd-good, -saved) hold them "
        "too until then."
    )
    if section == args.profile:
        io.say(
            "Until then AWS tools use those plain-text keys directly for that profile "
            "(they take precedence over credential_process)."
        )
    return 0


def cmd_keys_delete(args: argparse.Namespace, io: Io) -> int:
    """credd keys delete PROFILE"""
    store = io.store_factory()
    if store.delete_long_term_keys(args.profile):
        from credd.actions.rotation import forget_key_age

        with contextlib.suppress(CreddError):  # best effort, as when it was recorded
            forget_key_age(store, args.profile)
        io.say(f"Deleted the long-term keys of profile {args.profile} from the keyring.")
    else:
        io.say(f"No long-term keys were stored for profile {args.profile}; nothing to delete.")
    return 0


def cmd_totp_set(args: argparse.Namespace, io: Io) -> int:
    """credd totp set PROFILE [--stdin]"""
    if not args.stdin:
        _need_tty(io, "the seed")
    store = io.store_factory()
    store.check()
    if args.stdin:
        value = _read_stdin(io).strip()
    else:
        value = io.getpass("TOTP seed or otpauth:// URI (not shown): ").strip()
    store.set_totp_seed(args.profile, value)
    io.say(
        f"Stored the TOTP seed for profile {args.profile} in the keyring ({store.backend_name()})."
    )
    return 0


def cmd_totp_delete(args: argparse.Namespace, io: Io) -> int:
    """credd totp delete PROFILE"""
    if io.store_factory().delete_totp_seed(args.profile):
        io.say(f"Deleted the TOTP seed of profile {args.profile} from the keyring.")
    else:
        io.say(f"No TOTP seed was stored for profile {args.profile}; nothing to delete.")
    return 0


def cmd_secrets_check(args: argparse.Namespace, io: Io) -> int:
    """credd secrets check [--json]"""
    store = io.store_factory()
    if not args.json:
        io.say(f"backend: {store.backend_name()}")
        store.check()
        io.say("keyring: usable")
        return 0
    try:
        store.check()
    except CreddError as exc:
        io.json({"backend": store.backend_name(), "usable": False, "error": exc.to_json()})
        raise
    io.json({"backend": store.backend_name(), "usable": True})
    return 0


def _profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profile", metavar="PROFILE", help="the AWS profile name")


def register(sub: Subparsers) -> None:
    """``keys`` (with ``keys rotate`` from :mod:`credd.cli.keys`), ``totp``, ``secrets``."""
    keys = group(
        sub,
        "keys",
        "store or remove an IAM user's long-term keys in the keyring",
        description="Long-term AWS keys live in the OS keyring (see docs/secrets.md).",
    )
    p = command(
        keys,
        "set",
        cmd_keys_set,
        "store long-term keys (prompted, or read with --stdin)",
        description="Prompt for the access key id and (without echo) the secret access key, "
        "or read them with --stdin. Secrets are never taken from the command line.",
        cancelled="cancelled; nothing was stored",
    )
    _profile(p)
    p.add_argument(
        "--stdin",
        action="store_true",
        help='read two lines (key id, secret) or JSON {"AccessKeyId", "SecretAccessKey"} '
        "from standard input",
    )
    p = command(
        keys,
        "import",
        cmd_keys_import,
        "copy long-term keys from the credentials file into the keyring",
        description="Read a section of the shared credentials file (not changed) and store "
        "its keys in the keyring; then tells you how to remove the plain-text copy.",
    )
    _profile(p)
    p.add_argument(
        "--from-section",
        metavar="NAME",
        help="the credentials file section to read (default: PROFILE)",
    )
    p = command(
        keys, "delete", cmd_keys_delete, "remove a profile's long-term keys from the keyring"
    )
    _profile(p)
    from credd.cli.keys import register_rotate

    register_rotate(keys)

    totp = group(
        sub,
        "totp",
        "store or remove a TOTP seed (an unattended MFA code source)",
        description="A TOTP seed in the keyring lets credd make MFA codes by itself.",
    )
    p = command(
        totp,
        "set",
        cmd_totp_set,
        "store a TOTP seed or otpauth:// URI (prompted, or read with --stdin)",
        description="Prompt (without echo) for the base32 seed or otpauth://totp/ URI of the "
        "profile's MFA device, or read it with --stdin. Never taken from the command line.",
        cancelled="cancelled; nothing was stored",
    )
    _profile(p)
    p.add_argument("--stdin", action="store_true", help="read the seed or URI from standard input")
    p = command(totp, "delete", cmd_totp_delete, "remove a profile's TOTP seed from the keyring")
    _profile(p)

    secrets = group(sub, "secrets", "inspect the secret store")
    p = command(
        secrets,
        "check",
        cmd_secrets_check,
        "show the keyring backend and whether it is usable (exit 0 if so)",
    )
    p.add_argument("--json", action="store_true", help="{backend, usable, error?} as JSON")
