"""Where a chain starts: long-term keys (keyring first, then the AWS files) or the environment,
and the IAM user's MFA device (``mfa_serial``, else discovered once with iam:ListMFADevices)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from credd.aws.clients import ClientFactory
from credd.aws.config import ManagedProfile
from credd.aws.errors import translate
from credd.errors import ConfigError, CreddError, ProfileNotFound, SecretMissing, SecretStoreError
from credd.models import Credentials
from credd.secrets.store import SecretStore

log = logging.getLogger(__name__)


def long_term_keys(profile: ManagedProfile, secrets: SecretStore) -> Credentials:
    """The IAM user's keys: keyring preferred; the files when the keyring has none or is down."""
    raw = profile.raw
    in_files = bool(raw.get("aws_access_key_id") and raw.get("aws_secret_access_key"))
    try:
        keys = secrets.get_long_term_keys(profile.name)
    except SecretStoreError as exc:
        if not in_files:
            raise
        log.info(
            "profile %s: keyring unusable (%s); using keys from the files", profile.name, exc.code
        )
        keys = None
    if keys is not None:
        return keys
    if in_files:
        return _fresh_file_keys(profile.name) or Credentials(
            raw["aws_access_key_id"], raw["aws_secret_access_key"]
        )
    raise SecretMissing(
        f"no long-term keys for profile {profile.name!r} in the keyring or the AWS files",
        hint=f"store them: credd keys set {profile.name}",
    )


def _fresh_file_keys(name: str) -> Credentials | None:
    """The keys in the credentials file *now*: ``credd keys rotate`` rewrites them in place, and
    the daemon's view of the files (loaded at start or SIGHUP) would still hold the deleted key."""
    try:
        key_id, secret = read_credentials_section(credentials_file_path(), name)
    except CreddError:
        return None
    return Credentials(key_id, secret)


def credentials_file_path() -> str:
    """The shared credentials file, as botocore finds it."""
    path = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    return os.path.expanduser(os.path.expandvars(path))


def read_credentials_section(path: str, section: str) -> tuple[str, str]:
    """Long-term keys from one section of the credentials file (read with botocore's loader)."""
    from botocore.configloader import raw_config_parse
    from botocore.exceptions import ConfigNotFound, ConfigParseError

    try:
        sections: dict[str, Any] = raw_config_parse(path)
    except ConfigNotFound:
        raise ProfileNotFound(
            f"the credentials file {path} does not exist",
            hint="use `credd keys set PROFILE` to type the keys in instead",
        ) from None
    except ConfigParseError:
        # configparser's message can quote a line of the file (a secret): never repeat it
        raise ConfigError(
            f"the credentials file {path} cannot be parsed", hint="fix its syntax"
        ) from None
    values = sections.get(section)
    if not isinstance(values, dict):
        raise ProfileNotFound(
            f"no section [{section}] in {path}",
            hint="name the section with --from-section",
        )
    if values.get("aws_session_token"):
        raise ConfigError(
            f"section [{section}] of {path} holds temporary credentials (aws_session_token)",
            hint="import a section with an IAM user's long-term keys",
        )
    key_id, secret = values.get("aws_access_key_id"), values.get("aws_secret_access_key")
    if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
        raise ConfigError(
            f"section [{section}] of {path} has no aws_access_key_id/aws_secret_access_key",
            hint="name the section that holds the keys with --from-section",
        )
    return key_id.strip(), secret.strip()


def environment_keys(profile: str, environ: Mapping[str, str] | None = None) -> Credentials:
    """``credential_source = Environment``: the daemon's own ``AWS_ACCESS_KEY_ID`` & co."""
    env = os.environ if environ is None else environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise ConfigError(
            f"profile {profile!r} uses credential_source = Environment, but the daemon's "
            "environment has no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            hint="set them in the daemon's environment, or use source_profile",
        )
    return Credentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)


class MfaDevice:
    """The MFA device of one IAM user profile; discovered at most once."""

    def __init__(self, profile: ManagedProfile, clients: ClientFactory) -> None:
        self._profile = profile
        self._clients = clients
        self._serial = profile.mfa_serial
        self._lock = threading.Lock()

    def serial(self, keys: Credentials) -> str:
        with self._lock:
            if self._serial:
                return self._serial
        name = self._profile.name
        iam = self._clients.client("iam", name, keys)
        try:
            devices = iam.list_mfa_devices().get("MFADevices", [])
        except Exception as exc:
            raise translate(exc, profile=name, action="iam:ListMFADevices") from None
        if not devices:
            raise ConfigError(
                f"profile {name!r}: the IAM user has no MFA device",
                hint="assign one in IAM, or set mfa_serial in the AWS config",
            )
        if len(devices) > 1:
            log.warning(
                "profile %s: %d MFA devices; using the first (set mfa_serial to choose)",
                name,
                len(devices),
            )
        serial = str(devices[0]["SerialNumber"])
        log.info("profile %s: discovered MFA device %s", name, serial)
        with self._lock:
            self._serial = serial
        return serial
