"""``credd keys rotate`` (and ``--due``): the CLI side of :mod:`credd.actions.rotation`.

Where the keys live decides how the new pair is stored: the secret store (one atomic entry), or
the credentials file section they came from (rewritten in place under credd's lock, temp file +
fsync + rename, every other byte kept). What signs the IAM calls: the daemon's MFA session when
it serves one for the profile (no code at all); else the keys themselves; and when the user's
policy denies that without MFA, one MFA-backed session made with exactly one code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credd.actions.rotation import Iam, Rotator, key_ages
from credd.cli.base import Subparsers, command
from credd.cli.io import Io
from credd.clock import Clock, SystemClock
from credd.errors import AwsAccessDenied, CreddError, SecretMissing, UsageError
from credd.models import Credentials, mask_key_id

log = logging.getLogger(__name__)


class StoreKeys:
    """Keys in the secret store: one entry, replaced in one write."""

    where = "secret store"

    def __init__(self, store: Any, profile: str) -> None:
        self._store, self._profile = store, profile

    def get(self) -> Credentials:
        keys: Credentials | None = self._store.get_long_term_keys(self._profile)
        if keys is None:
            raise SecretMissing(f"no long-term keys stored for profile {self._profile!r}")
        return keys

    def put(self, keys: Credentials) -> None:
        self._store.set_long_term_keys(self._profile, keys.access_key_id, keys.secret_access_key)


class FileKeys:
    """Keys in a credentials file section, rewritten in place by :mod:`credd.files.ini`."""

    where = "credentials file"

    def __init__(self, path: Path, section: str, clock: Clock) -> None:
        self._path, self._section, self._clock = path, section, clock

    def get(self) -> Credentials:
        from credd.sources.keys import read_credentials_section

        key_id, secret = read_credentials_section(str(self._path), self._section)
        return Credentials(key_id, secret)

    def put(self, keys: Credentials) -> None:
        from credd.files import ini as inifile

        def transform(text: str) -> str:
            updater = inifile.parse_ini(text, self._path, inifile.CREDENTIALS_ERRORS)
            section = updater[self._section]
            section["aws_access_key_id"].value = keys.access_key_id
            section["aws_secret_access_key"].value = keys.secret_access_key
            return inifile.reassemble(updater)

        inifile.locked_update(
            self._path,
            transform,
            keep_mode=False,
            lock_timeout=10.0,
            clock=self._clock,
            errors=inifile.CREDENTIALS_ERRORS,
        )


def key_holder(profile: str, store: Any, clock: Clock) -> StoreKeys | FileKeys:
    """The secret store when it holds the profile's keys, else the credentials file."""
    from credd.errors import SecretStoreError
    from credd.sources.keys import credentials_file_path

    try:
        if store.get_long_term_keys(profile) is not None:
            return StoreKeys(store, profile)
    except SecretStoreError:
        pass  # no usable secret store: the keys can only be in the file
    holder = FileKeys(Path(credentials_file_path()), profile, clock)
    holder.get()  # a clear error when the file has no keys for it either
    return holder


class IamCredentials:
    """What signs the IAM calls: the daemon's MFA session, else the keys; ``escalate`` makes
    one MFA-backed session (one code) when the policy denies the keys alone."""

    def __init__(
        self,
        keys: Callable[[], Credentials],
        daemon_session: Callable[[], Credentials | None],
        mfa_session: Callable[[], Credentials] | None,
    ) -> None:
        self._keys, self._daemon, self._mfa = keys, daemon_session, mfa_session
        self._session: Credentials | None = None
        self._asked_daemon = False
        self.codes_used = 0

    def __call__(self) -> Credentials:
        if not self._asked_daemon:
            self._asked_daemon = True
            self._session = self._daemon()
        return self._session or self._keys()

    @property
    def session(self) -> Credentials | None:
        return self._session

    def escalate(self) -> Credentials | None:
        if self._mfa is None or self._session is not None:
            return None
        self._session = self._mfa()
        self.codes_used += 1
        return self._session


class EscalatingIam(Iam):
    """IAM calls that retry once with an MFA session when the keys alone are denied."""

    def __init__(
        self,
        make_client: Callable[[str, Credentials], Any],
        user: str | None,
        creds: IamCredentials,
        *,
        label: str = "",
    ) -> None:
        super().__init__(make_client, user, label=label)
        self._creds = creds

    def _call(self, creds: Credentials, action: str, **kwargs: Any) -> Any:
        if creds.session_token is None and self._creds.session is not None:
            creds = self._creds.session  # escalated once: the MFA session signs the rest
        try:
            return super()._call(creds, action, **kwargs)
        except AwsAccessDenied:
            session = None if creds.session_token else self._creds.escalate()
            if session is None:
                raise
            log.info("iam:%s denied without MFA; using an MFA session", action)
            return super()._call(session, action, **kwargs)


def _daemon_session(profile: str, socket: str | None) -> Callable[[], Credentials | None]:
    def get() -> Credentials | None:
        from credd.client import Client

        client = Client(socket)
        try:
            status = client.status()
            mine = [p for p in status["profiles"] if p["name"] == profile]
            if not mine or mine[0].get("kind") != "session-token":
                return None
            return Credentials.from_process_json(client.credentials(profile))
        except CreddError:  # not running, or no session for it: the keys sign
            return None

    return get


def _mfa_session(
    profile: str, store: Any, clients: Any, clock: Clock, code: str | None
) -> Callable[[], Credentials] | None:
    from credd.aws import config as awsconfig

    managed = awsconfig.load().managed.get(profile)
    if managed is None or managed.kind != "session-token":
        return None

    def get() -> Credentials:
        from credd.sources.mfa import CodeLedger
        from credd.sources.session_token import SessionTokenSource

        source = SessionTokenSource(
            managed, secrets=store, clients=clients, ledger=CodeLedger(clock), clock=clock
        )
        if code is not None:
            source.push_code(code)
        elif source.mfa_source == "person" and sys.stdin.isatty():
            import getpass

            source.push_code(getpass.getpass(f"MFA code for {profile}: ").strip())
        return source.fetch()

    return get


def build_rotator(args: argparse.Namespace, clock: Clock) -> tuple[Rotator, IamCredentials]:
    from credd.aws.clients import ClientFactory
    from credd.secrets.store import SecretStore

    store = SecretStore()
    holder = key_holder(args.profile, store, clock)
    clients = ClientFactory()
    creds = IamCredentials(
        holder.get,
        _daemon_session(args.profile, args.socket),
        _mfa_session(args.profile, store, clients, clock, args.mfa_code),
    )

    def make(service: str, c: Credentials) -> Any:
        return clients.client(service, args.profile, c)

    rotator = Rotator(
        args.profile,
        keys=holder,
        journal=store,
        iam=EscalatingIam(make, None, creds, label=args.profile),
        iam_credentials=creds,
        clock=clock,
    )
    return rotator, creds


def cmd_rotate(args: argparse.Namespace, io: Io) -> int:
    clock = SystemClock()
    if args.due:
        return _rotate_due(args, io, clock)
    if not args.profile:
        raise UsageError("which profile?", hint="credd keys rotate PROFILE, or --due")
    _rotate(args, io, clock)
    return 0


def _rotate(args: argparse.Namespace, io: Io, clock: Clock) -> None:
    rotator, creds = build_rotator(args, clock)
    outcome = rotator.rotate()
    where = rotator.keys.where
    if args.json:
        io.json(
            {
                "profile": args.profile,
                "old_key": _mask(outcome.old_key),
                "new_key": _mask(outcome.new_key),
                "recovered": outcome.recovered,
                "cleaned": [_mask(k) for k in outcome.cleaned],
                "stored_in": where,
                "verify_attempts": outcome.verify_attempts,
                "mfa_codes_used": creds.codes_used,
            },
            indent=None,
        )
    else:
        io.say(outcome.sentence(args.profile) + f" (stored in the {where})")


def _mask(key_id: str | None) -> str | None:
    return mask_key_id(key_id) if key_id else None


def _rotate_due(args: argparse.Namespace, io: Io, clock: Clock) -> int:
    """Every credd profile whose ``credd_key_max_age`` has passed (for a timer or cron)."""
    from credd.secrets.store import SecretStore

    failed = 0
    for name, age, max_age in key_ages(SecretStore(), clock):
        if max_age is None or age is None or age < max_age:
            continue
        try:
            _rotate(argparse.Namespace(**{**vars(args), "profile": name}), io, clock)
        except CreddError as exc:
            failed += 1
            io.warn(str(exc))
    return 1 if failed else 0


def status_keys(profile: str | None = None) -> list[dict[str, Any]]:
    """For ``credd status``: each IAM user's stored key age (best effort: ``[]`` when the secret
    store or the files cannot be read)."""
    from credd.secrets.store import SecretStore

    try:
        ages = key_ages(SecretStore(allow_prompt=False, passphrase_prompt=False), SystemClock())
    except CreddError:
        return []
    out = []
    for name, age, max_age in ages:
        if profile and name != profile:
            continue
        text = f"access key {age.days} days old" if age is not None else "access key age unknown"
        if max_age:
            text += f", rotated every {max_age.days} days"
        out.append(
            {
                "profile": name,
                "age_days": age.days if age is not None else None,
                "max_age_days": max_age.days if max_age else None,
                "text": text,
            }
        )
    return out


def register_rotate(keys: Subparsers) -> None:
    """``keys rotate`` (the rest of ``keys`` is in :mod:`credd.cli.secrets`)."""
    p = command(
        keys,
        "rotate",
        cmd_rotate,
        "rotate a profile's IAM access key (create, store, verify, delete the old one)",
        description="Crash-safe IAM access key rotation; see docs/keys.md.",
        socket=True,
    )
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="the IAM user's profile")
    p.add_argument(
        "--due",
        action="store_true",
        help="rotate every profile whose credd_key_max_age has passed (for a timer)",
    )
    p.add_argument("--mfa-code", metavar="CODE", help="an MFA code, if the policy needs one")
    p.add_argument("--json", action="store_true", help="machine-readable outcome")
