"""``sts:AssumeRole`` for a role profile: from a parent node's credentials (an MFA session or
another role), from long-term keys, from the environment, or — for role sessions over 1 h —
straight from long-term keys with an MFA code."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from credd.aws.clients import ClientFactory
from credd.aws.errors import translate
from credd.clock import Clock
from credd.errors import ConfigError, UsageError
from credd.models import Credentials
from credd.plan.planner import Node
from credd.secrets.store import SecretStore
from credd.sources.codes import ProfileCodes
from credd.sources.keys import MfaDevice
from credd.sources.mfa import CodeLedger
from credd.sources.mfa_call import send_code
from credd.sources.session_token import from_sts

log = logging.getLogger(__name__)


def session_name(node: Node) -> str:
    role = node.profile.role
    if role and role.role_session_name:
        return role.role_session_name
    return re.sub(r"[^\w+=,.@-]", "-", f"credd-{node.profile.name}")[:64]


class AssumeRoleSource:
    kind = "assume-role"

    def __init__(
        self,
        node: Node,
        *,
        keys: Callable[[], Credentials] | None = None,
        secrets: SecretStore,
        clients: ClientFactory,
        ledger: CodeLedger,
        clock: Clock,
    ) -> None:
        assert node.profile.role is not None
        self.node = node
        self.role = node.profile.role
        self._keys = keys
        self._clients = clients
        self._ledger = ledger
        self.codes: ProfileCodes | None = None
        self.device: MfaDevice | None = None
        if node.with_code and node.base_profile is not None:
            self.codes = ProfileCodes(node.base_profile, secrets, clock, node.code_source)
            self.device = MfaDevice(node.base_profile, clients)

    @property
    def mfa_source(self) -> str | None:
        return self.codes.chosen().name if self.codes else None

    @property
    def unattended(self) -> bool:
        return self.codes.chosen().unattended if self.codes else True

    def _source_credentials(self, parent: Credentials | None) -> Credentials:
        if parent is not None:
            return parent
        if self._keys is None:
            raise ConfigError(
                f"{self.node.key}: no credentials to assume {self.role.role_arn} with",
                hint="a bug: please report it",
            )
        return self._keys()

    def push_code(self, code: str) -> None:
        if self.codes is None:
            raise UsageError(f"{self.node.profile.name!r} takes no MFA code itself")
        self.codes.person.push(code)

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        """``parent``: the parent node's credentials; without a parent node, the keys the
        source was built with (``keys``: long-term keys or the daemon's environment)."""
        source_creds = self._source_credentials(parent)
        name = self.node.profile.name
        sts = self._clients.client("sts", name, source_creds)
        params: dict[str, Any] = {
            "RoleArn": self.role.role_arn,
            "RoleSessionName": session_name(self.node),
            "DurationSeconds": self.node.duration,
        }
        if self.role.external_id:
            params["ExternalId"] = self.role.external_id
        try:
            if self.codes is not None and self.device is not None:
                device = self.device.serial(source_creds)
                source = self.codes.for_fetch()
                with self._ledger.device_lock(device):
                    code = source.code(device, self._ledger)
                    reply = send_code(
                        self._ledger,
                        device,
                        code,
                        sts,
                        lambda: sts.assume_role(**params, SerialNumber=device, TokenCode=code),
                    )
            else:
                reply = sts.assume_role(**params)
        except Exception as exc:
            raise translate(exc, profile=name, action="sts:AssumeRole") from None
        creds = from_sts(reply)
        account = self.role.role_arn.split(":")[4]
        creds = Credentials(
            creds.access_key_id,
            creds.secret_access_key,
            creds.session_token,
            creds.expiration,
            account,
        )
        log.info("profile %s: new role session %s for %s", name, creds, self.role.role_arn)
        return creds
