"""IAM user + MFA device -> ``sts:GetSessionToken``: the MFA session other sources build on."""

from __future__ import annotations

import logging

from credd.aws.clients import ClientFactory
from credd.aws.config import ManagedProfile
from credd.aws.errors import translate
from credd.clock import UTC, Clock
from credd.models import Credentials
from credd.secrets.store import SecretStore
from credd.sources.codes import ProfileCodes
from credd.sources.keys import MfaDevice, long_term_keys
from credd.sources.mfa import CodeLedger
from credd.sources.mfa_call import send_code

log = logging.getLogger(__name__)


def from_sts(reply: dict[str, object]) -> Credentials:
    c = reply["Credentials"]
    assert isinstance(c, dict)
    return Credentials(
        access_key_id=c["AccessKeyId"],
        secret_access_key=c["SecretAccessKey"],
        session_token=c["SessionToken"],
        expiration=c["Expiration"].astimezone(UTC),
    )


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
        code_source: str | None = None,
    ) -> None:
        self.profile = profile
        self._secrets = secrets
        self._clients = clients
        self._ledger = ledger
        self.codes = ProfileCodes(profile, secrets, clock, code_source)
        self.device = MfaDevice(profile, clients)

    @property
    def mfa_source(self) -> str:
        return self.codes.chosen().name

    @property
    def unattended(self) -> bool:
        return self.codes.chosen().unattended

    def push_code(self, code: str) -> None:
        self.codes.person.push(code)

    def long_term_keys(self) -> Credentials:
        return long_term_keys(self.profile, self._secrets)

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        keys = self.long_term_keys()
        device = self.device.serial(keys)
        source = self.codes.for_fetch()
        sts = self._clients.client("sts", self.profile.name, keys)
        with self._ledger.device_lock(device):
            code = source.code(device, self._ledger)
            try:
                reply = send_code(
                    self._ledger,
                    device,
                    code,
                    sts,
                    lambda: sts.get_session_token(
                        DurationSeconds=self.profile.duration_seconds,
                        SerialNumber=device,
                        TokenCode=code,
                    ),
                )
            except Exception as exc:
                raise translate(
                    exc, profile=self.profile.name, action="sts:GetSessionToken"
                ) from None
        creds = from_sts(reply)
        log.info(
            "profile %s: new MFA session %s (code from %s)", self.profile.name, creds, source.name
        )
        return creds
