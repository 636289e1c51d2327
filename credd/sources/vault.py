"""OpenBao/Vault's AWS secrets engine as a source: ``MOUNT/creds/ROLE`` or ``MOUNT/sts/ROLE``.

The central issuer decides who may have which role and audits it; credd is the local door that
caches, refreshes ahead of the lease's end and serves. All four credential types work:
``assumed_role``, ``federation_token`` and ``session_token`` give STS credentials,
``iam_user`` gives new access keys (IAM is eventually consistent: credd waits until STS accepts
them before serving them). The expiry is the lease's end (``now + lease_duration``).

Authentication (``credd_vault_auth``): ``token`` (kept in the secret store, renewed with
``renew-self`` at each fetch when renewable; credentials are announced as ending no later than
the token, so the next fetch, and renewal, comes before it ends), ``approle`` (role_id in the
config, secret_id in the secret store) or ``jwt`` (the host's ``web_identity_token_file``, read
at each login). A login's token is held in memory and logged in again when Vault refuses it or it
nears its end. The token, secret_id and JWT are never logged nor put in an error. Uses the
``hvac`` client.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from credd.aws import keys as source_keys
from credd.aws.clients import ClientFactory
from credd.clock import Clock
from credd.errors import (
    CreddError,
    SecretMissing,
    UsageError,
    VaultDenied,
    VaultError,
    VaultUnreachable,
)
from credd.models import Credentials
from credd.plan.planner import Node
from credd.secrets.store import SecretStore
from credd.sources.web_identity import read_token

log = logging.getLogger(__name__)

IAM_SETTLE_TRIES = 8  # iam_user keys: how many times STS is asked before they are served
IAM_SETTLE_STEP = 2.0  # seconds between those tries
RENEW_MARGIN = timedelta(minutes=5)  # a login token this close to its end is replaced


def secret_entry(profile: str) -> str:
    """The secret store entry (a JSON object) holding a profile's Vault token or secret_id."""
    return f"vault-{profile}"


class VaultSource:
    kind = "vault"
    unattended = True
    mfa_source = None

    def __init__(
        self,
        node: Node,
        *,
        secrets: SecretStore,
        clients: ClientFactory,
        clock: Clock,
        hvac_client: Any = None,
    ) -> None:
        self.name = node.profile.name
        self.settings = source_keys.vault_settings(self.name, node.profile.raw)
        self._secrets = secrets
        self._clients = clients
        self._clock = clock
        self._client = hvac_client
        self._login_ends: datetime | None = None  # approle/jwt: when the held token ends
        self._token_ends: datetime | None = None  # token auth: when the renewed token ends

    def push_code(self, code: str) -> None:
        raise UsageError(f"{self.name!r} takes no MFA code (OpenBao/Vault issues its keys)")

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        try:
            client = self._authenticated()
            reply = self._read(client)
        except CreddError:
            raise
        except Exception as exc:
            raise self._translate(exc, "the read") from None
        creds = self._credentials(reply)
        if creds.session_token is None:
            self._settle(creds)
        log.info("profile %s: new credentials %s from %s", self.name, creds, self.settings.path)
        return creds

    # -- authentication ---------------------------------------------------------------------

    def _new_client(self) -> Any:
        import hvac

        verify: str | bool = self.settings.ca_bundle or True
        return hvac.Client(url=self.settings.addr, verify=verify, timeout=10)

    def _stored(self, key: str, what: str, fix: str) -> str:
        data = self._secrets.get_session(secret_entry(self.name)) or {}
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise SecretMissing(f"no Vault {what} for profile {self.name!r}", hint=fix)
        return value

    def _authenticated(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        client = self._client
        if self.settings.auth == "token":
            client.token = self._stored(
                "token", "token", f"store it: credd vault token set {self.name}"
            )
            self._renew(client)
            return client
        now = self._clock.now()
        if self._login_ends is None or now >= self._login_ends - RENEW_MARGIN:
            self._login(client)
        return client

    def _renew(self, client: Any) -> None:
        try:
            info = client.auth.token.lookup_self()["data"]
            ttl = int(info.get("ttl") or 0)
            if info.get("renewable"):
                reply = client.auth.token.renew_self()
                ttl = int(reply.get("auth", {}).get("lease_duration") or ttl)
                log.info("profile %s: Vault token renewed for %d s", self.name, ttl)
        except Exception as exc:
            raise self._translate(exc, "the token lookup") from None
        # Only a renewable token is worth an early fetch (0: a token that never ends).
        renewable = bool(info.get("renewable")) and ttl > 0
        self._token_ends = self._clock.now() + timedelta(seconds=ttl) if renewable else None

    def _login(self, client: Any) -> None:
        s = self.settings
        try:
            if s.auth == "approle":
                secret_id = self._stored(
                    "secret_id", "AppRole secret_id", f"credd vault secret-id set {self.name}"
                )
                reply = client.auth.approle.login(
                    role_id=s.approle_role_id, secret_id=secret_id, mount_point=s.auth_path
                )
            else:
                assert s.jwt_file is not None
                reply = client.auth.jwt.jwt_login(
                    role=s.jwt_role, jwt=read_token(self.name, s.jwt_file), path=s.auth_path
                )
        except CreddError:
            raise
        except Exception as exc:
            raise self._translate(exc, f"the {s.auth} login") from None
        lease = int(reply.get("auth", {}).get("lease_duration") or 0)
        now = self._clock.now()
        self._login_ends = now + timedelta(seconds=lease) if lease else now + RENEW_MARGIN * 2
        log.info("profile %s: logged in to Vault with %s for %d s", self.name, s.auth, lease)

    # -- the read ----------------------------------------------------------------------------

    def _read(self, client: Any) -> dict[str, Any]:
        if self.settings.ttl:  # a POST carries the ttl (assumed_role, federation/session token)
            reply = client.write_data(self.settings.path, data={"ttl": self.settings.ttl})
        else:
            reply = client.read(self.settings.path)
        if not isinstance(reply, dict) or not isinstance(reply.get("data"), dict):
            raise VaultError(
                f"profile {self.name!r}: OpenBao/Vault gave nothing at {self.settings.path}",
                hint="check credd_vault_mount, credd_vault_type and credd_vault_role",
            )
        return reply

    def _credentials(self, reply: dict[str, Any]) -> Credentials:
        data = reply["data"]
        key, secret = data.get("access_key"), data.get("secret_key")
        if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
            raise VaultError(
                f"profile {self.name!r}: {self.settings.path} gave no access_key/secret_key",
                hint="is this mount the AWS secrets engine?",
            )
        token = data.get("security_token") or data.get("session_token") or None
        lease = int(reply.get("lease_duration") or 0)
        expiration = self._clock.now() + timedelta(seconds=lease) if lease > 0 else None
        if expiration and self._token_ends and self._token_ends < expiration:
            # The next fetch (which renews the token) must come before the token ends: the
            # credentials are announced as ending with it, so credd and SDKs refresh in time.
            expiration = self._token_ends
        arn = str(data.get("arn") or "")
        account = arn.split(":")[4] if arn.count(":") >= 5 else None
        return Credentials(key, secret, str(token) if token else None, expiration, account)

    def _settle(self, creds: Credentials) -> None:
        """New IAM user keys take seconds to reach STS: ask until it accepts them."""
        sts = self._clients.client("sts", self.name, creds)
        for attempt in range(1, IAM_SETTLE_TRIES + 1):
            try:
                sts.get_caller_identity()
                return
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code not in ("InvalidClientTokenId", "SignatureDoesNotMatch"):
                    return  # another error is not IAM's delay; the caller's own call will say
                log.info("profile %s: new IAM keys not live yet (try %d)", self.name, attempt)
                self._clock.sleep(IAM_SETTLE_STEP)
        raise VaultUnreachable(
            f"profile {self.name!r}: the IAM user keys from {self.settings.path} were not "
            f"accepted by STS after {IAM_SETTLE_TRIES} tries",
            hint="IAM is eventually consistent; credd retries with backoff",
        )

    def _translate(self, exc: BaseException, what: str) -> CreddError:
        import hvac.exceptions as hx
        import requests

        where = f"profile {self.name!r}: OpenBao/Vault at {self.settings.addr}"
        if isinstance(exc, (hx.Forbidden, hx.Unauthorized)):
            self._login_ends = None  # a login token is replaced at the next try
            fix = (
                f"store a new token: credd vault token set {self.name}"
                if self.settings.auth == "token"
                else f"check the {self.settings.auth} role and its policies in Vault"
            )
            return VaultDenied(f"{where} refused {what} (permission denied)", hint=fix)
        down = (hx.VaultDown, hx.InternalServerError, hx.BadGateway, hx.RateLimitExceeded)
        if isinstance(exc, (*down, requests.exceptions.RequestException)):
            return VaultUnreachable(
                f"{where}: {what} failed ({type(exc).__name__})",
                hint="credd serves what it holds and retries with backoff",
            )
        if isinstance(exc, (hx.InvalidPath, hx.InvalidRequest)):
            said = "; ".join(str(e)[:200] for e in (getattr(exc, "errors", None) or [])[:2])
            return VaultError(
                f"{where}: {what} for {self.settings.path} failed ({type(exc).__name__}"
                + (f": {said})" if said else ")"),
                hint="check credd_vault_mount, credd_vault_type and credd_vault_role",
            )
        return VaultError(f"{where}: {what} failed unexpectedly ({type(exc).__name__})")
