"""IAM user + MFA device -> ``sts:GetSessionToken``: the MFA session every other source builds on.

Long-term keys come from the keyring (preferred) or the AWS files. The MFA device is the
profile's ``mfa_serial``, or discovered once with ``iam:ListMFADevices``. The code comes from,
in order: a code a person pushed (``credd mfa``), the configured source, or, with no
``credd_mfa_source``, ``mfa_process`` when set, else a TOTP seed when one is stored, else a person.
"""

from __future__ import annotations

import logging
import threading

from credd.awsclients import ClientFactory
from credd.awsconfig import ManagedProfile
from credd.clock import UTC, Clock
from credd.errors import ConfigError, SecretMissing, SecretStoreError
from credd.mfa import CodeLedger, CodeSource, PersonCodes, ProcessCodes, TotpCodes
from credd.models import Credentials
from credd.secrets import SecretStore
from credd.sources.aws_errors import translate

log = logging.getLogger(__name__)


class SessionTokenSource:
    """Fetches MFA-backed session credentials for an IAM user profile."""

    kind = "session-token"

    def __init__(
        self,
        profile: ManagedProfile,
        *,
        secrets: SecretStore,
        clients: ClientFactory,
        ledger: CodeLedger,
        clock: Clock,
    ) -> None:
        self.profile = profile
        self._secrets = secrets
        self._clients = clients
        self._ledger = ledger
        self._clock = clock
        self._person = PersonCodes(profile.name)
        self._device: str | None = profile.mfa_serial
        self._lock = threading.Lock()
        self._choice: CodeSource | None = None

    # -- MFA code source -------------------------------------------------------------------

    def _has_seed(self) -> bool:
        try:
            return self._secrets.get_totp_seed(self.profile.name) is not None
        except SecretMissing:
            return False

    def _configured(self) -> CodeSource:
        name = self.profile.mfa_source
        if name is None:
            if self.profile.mfa_process:
                name = "process"
            elif self._has_seed():
                name = "totp"
            else:
                name = "person"
        if name == "process" and self.profile.mfa_process:
            return ProcessCodes(self.profile.name, self.profile.mfa_process, self._clock)
        if name == "totp":
            return TotpCodes(
                self.profile.name,
                lambda: self._secrets.get_totp_seed(self.profile.name),
                self._clock,
            )
        return self._person

    def _chosen(self) -> CodeSource:
        # Deciding "auto" reads the keyring; remember the choice until the next fetch.
        if self._choice is None:
            self._choice = self._configured()
        return self._choice

    @property
    def mfa_source(self) -> str:
        return self._chosen().name

    @property
    def unattended(self) -> bool:
        return self._chosen().unattended

    def push_code(self, code: str) -> None:
        self._person.push(code)

    def _code_source(self) -> CodeSource:
        # A code a person pushed always wins: it is what they asked for.
        if self._person.has_pending():
            return self._person
        self._choice = self._configured()
        return self._choice

    # -- keys and device -------------------------------------------------------------------

    def long_term_keys(self) -> Credentials:
        raw = self.profile.raw
        in_files = bool(raw.get("aws_access_key_id") and raw.get("aws_secret_access_key"))
        try:
            keys = self._secrets.get_long_term_keys(self.profile.name)
        except SecretStoreError as exc:
            if not in_files:
                raise
            # The keyring is preferred, but keys in the files still work without it.
            log.info(
                "profile %s: keyring unusable (%s); using keys from the files",
                self.profile.name,
                exc.code,
            )
            keys = None
        if keys is not None:
            return keys
        if in_files:
            return Credentials(raw["aws_access_key_id"], raw["aws_secret_access_key"])
        raise SecretMissing(
            f"no long-term keys for profile {self.profile.name!r} in the keyring or the AWS files",
            hint=f"store them: credd keys set {self.profile.name}",
        )

    def device(self, keys: Credentials) -> str:
        with self._lock:
            if self._device:
                return self._device
        iam = self._clients.client("iam", self.profile.name, keys)
        try:
            devices = iam.list_mfa_devices().get("MFADevices", [])
        except Exception as exc:
            raise translate(exc, profile=self.profile.name, action="iam:ListMFADevices") from None
        if not devices:
            raise ConfigError(
                f"profile {self.profile.name!r}: the IAM user has no MFA device",
                hint="assign one in IAM, or set mfa_serial in the AWS config",
            )
        if len(devices) > 1:
            log.warning(
                "profile %s: %d MFA devices; using the first (set mfa_serial to choose)",
                self.profile.name,
                len(devices),
            )
        serial = str(devices[0]["SerialNumber"])
        log.info("profile %s: discovered MFA device %s", self.profile.name, serial)
        with self._lock:
            self._device = serial
        return serial

    # -- the verb --------------------------------------------------------------------------

    def fetch(self) -> Credentials:
        keys = self.long_term_keys()
        device = self.device(keys)
        source = self._code_source()
        sts = self._clients.client("sts", self.profile.name, keys)
        with self._ledger.device_lock(device):
            code = source.code(device, self._ledger)
            self._ledger.record(device, code)
            try:
                reply = sts.get_session_token(
                    DurationSeconds=self.profile.duration_seconds,
                    SerialNumber=device,
                    TokenCode=code,
                )
            except Exception as exc:
                raise translate(
                    exc, profile=self.profile.name, action="sts:GetSessionToken"
                ) from None
        c = reply["Credentials"]
        creds = Credentials(
            access_key_id=c["AccessKeyId"],
            secret_access_key=c["SecretAccessKey"],
            session_token=c["SessionToken"],
            expiration=c["Expiration"].astimezone(UTC),
        )
        log.info(
            "profile %s: new MFA session %s (code from %s)",
            self.profile.name,
            creds,
            source.name,
        )
        return creds
