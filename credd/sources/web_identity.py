"""``sts:AssumeRoleWithWebIdentity`` for a profile with ``role_arn`` + ``web_identity_token_file``
(botocore's keys): the OIDC token a CI runner, a Kubernetes pod or JupyterHub already holds.

The call is unsigned (the token is the proof); the token file is read again at every refresh,
since whoever writes it rotates it. The token is never logged nor put in an error.
"""

from __future__ import annotations

import logging
import os

from credd.aws.clients import DEFAULT_REGION, ClientFactory
from credd.aws.errors import error_code, translate
from credd.errors import ConfigError, UsageError, WebIdentityTokenExpired
from credd.models import Credentials
from credd.plan.planner import Node
from credd.sources.assume_role import session_name
from credd.sources.session_token import from_sts

log = logging.getLogger(__name__)

TOKEN_MAX = 64 * 1024  # bytes; STS takes at most 20,000 characters


def read_token(profile: str, path: str) -> str:
    """The token in ``path`` now; ``ConfigError`` naming the file (never its content)."""
    full = os.path.expanduser(path)
    try:
        with open(full, "rb") as fh:
            data = fh.read(TOKEN_MAX + 1)
    except OSError as exc:
        raise ConfigError(
            f"profile {profile!r}: web_identity_token_file {path!r} cannot be read "
            f"({exc.strerror or type(exc).__name__})",
            hint="check that whoever writes the token (CI, Kubernetes, JupyterHub) has run",
        ) from None
    token = data.decode("utf-8", "replace").strip()
    if not token or len(data) > TOKEN_MAX:
        raise ConfigError(
            f"profile {profile!r}: web_identity_token_file {path!r} holds no usable token",
            hint="it must hold one JWT (header.payload.signature)",
        )
    return token


class WebIdentitySource:
    kind = "web-identity"
    unattended = True
    mfa_source = None

    def __init__(self, node: Node, *, clients: ClientFactory) -> None:
        role = node.profile.role
        assert role is not None and role.web_identity_token_file is not None
        self.node = node
        self.role = role
        self.token_file = role.web_identity_token_file
        self._clients = clients

    def push_code(self, code: str) -> None:
        raise UsageError(f"{self.node.profile.name!r} takes no MFA code (a web identity does)")

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        name = self.node.profile.name
        token = read_token(name, self.token_file)
        region = self.node.profile.region or DEFAULT_REGION
        sts = self._clients.unsigned_client("sts", name, region)
        try:
            reply = sts.assume_role_with_web_identity(
                RoleArn=self.role.role_arn,
                RoleSessionName=session_name(self.node),
                WebIdentityToken=token,
                DurationSeconds=self.node.duration,
            )
        except Exception as exc:
            if error_code(exc) == "ExpiredTokenException":
                raise WebIdentityTokenExpired(
                    f"sts:AssumeRoleWithWebIdentity for {name!r}: the token in "
                    f"{self.token_file} has expired",
                    hint="whoever writes the token file must renew it; credd re-reads it "
                    "at each retry",
                ) from None
            raise translate(exc, profile=name, action="sts:AssumeRoleWithWebIdentity") from None
        creds = from_sts(reply)
        creds = Credentials(
            creds.access_key_id,
            creds.secret_access_key,
            creds.session_token,
            creds.expiration,
            self.role.role_arn.split(":")[4],
        )
        log.info("profile %s: new web identity session %s for %s", name, creds, self.role.role_arn)
        return creds
