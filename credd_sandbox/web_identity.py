"""``sts:AssumeRoleWithWebIdentity`` for the sandbox: an unsigned call whose proof is an RS256 JWT.

A test registers an OIDC provider (issuer, audience, RSA public key in PEM) and lets a role trust
it, through the admin API (``POST /_sandbox/oidc-providers``, ``POST /_sandbox/roles/NAME/
web-identity``). The call is then checked as STS checks it: the signature against the provider's
key, ``iss`` registered, ``aud`` the provider's audience, ``exp`` after the sandbox's clock, the
role trusting that issuer and audience (and, when set, that ``sub``). The token is never logged.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from credd.clock import UTC, isoformat_z
from credd_sandbox.awsxml import AwsFault, element
from credd_sandbox.state import ACCOUNT_ID, SandboxState

log = logging.getLogger(__name__)

ROLE_DEFAULT = 3_600
ROLE_MAX = 43_200


@dataclass(frozen=True)
class Provider:
    issuer: str
    audience: str
    public_key_pem: str


@dataclass(frozen=True)
class Trust:
    issuer: str
    audience: str
    subject: str | None


class WebIdentityRegistry:
    """OIDC providers by issuer, and which provider each role trusts (by role ARN)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.providers: dict[str, Provider] = {}
        self.trusts: dict[str, Trust] = {}

    def add_provider(self, provider: Provider) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        load_pem_public_key(provider.public_key_pem.encode())  # ValueError when not a key
        with self.lock:
            self.providers[provider.issuer] = provider

    def trust(self, role_arn: str, trust: Trust) -> None:
        with self.lock:
            self.trusts[role_arn] = trust


REGISTRY = WebIdentityRegistry()


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _invalid(message: str) -> AwsFault:
    return AwsFault("InvalidIdentityToken", message, 400)


def verify(token: str, now: datetime, registry: WebIdentityRegistry = REGISTRY) -> dict[str, Any]:
    """The token's claims when its signature, issuer, audience and expiry hold."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    parts = token.split(".")
    if len(parts) != 3:
        raise _invalid("The web identity token is not a JWT.")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except ValueError:
        raise _invalid("The web identity token cannot be decoded.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _invalid("The web identity token cannot be decoded.")
    if header.get("alg") != "RS256":
        raise _invalid("Unsupported signing algorithm (the sandbox checks RS256).")
    with registry.lock:
        provider = registry.providers.get(str(claims.get("iss", "")))
    if provider is None:
        raise _invalid("Couldn't retrieve verification key from your identity provider.")
    key = load_pem_public_key(provider.public_key_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(
            signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise _invalid("The signature of the web identity token is not valid.") from None
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if provider.audience not in audiences:
        raise _invalid("Incorrect token audience.")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)):
        raise _invalid("The web identity token has no exp claim.")
    expires = datetime.fromtimestamp(exp, UTC)
    if expires <= now:
        raise AwsFault(
            "ExpiredTokenException",
            f"Token expired: current date/time {isoformat_z(now)} must be before the "
            f"expiration date/time {isoformat_z(expires)}",
            400,
        )
    return claims


def assume_role_with_web_identity(
    state: SandboxState, params: dict[str, str], registry: WebIdentityRegistry = REGISTRY
) -> str:
    from credd_sandbox.sts import _SESSION_NAME, _duration, _validation

    role_arn = params.get("RoleArn", "")
    session_name = params.get("RoleSessionName", "")
    token = params.get("WebIdentityToken", "")
    if not role_arn or not session_name or not token:
        raise _validation("RoleArn, RoleSessionName and WebIdentityToken are required.")
    if not _SESSION_NAME.match(session_name):
        raise _validation("RoleSessionName must be 2-64 characters of [\\w+=,.@-].")
    claims = verify(token, state.clock.now(), registry)
    with state.lock:
        role = state.roles.get(role_arn)
    with registry.lock:
        trust = registry.trusts.get(role_arn)
    subject = str(claims.get("sub", ""))
    if (
        role is None
        or trust is None
        or trust.issuer != claims.get("iss")
        or trust.audience != registry.providers[trust.issuer].audience
        or (trust.subject is not None and trust.subject != subject)
    ):
        raise AwsFault(
            "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403
        )
    duration = _duration(params, ROLE_DEFAULT, state.min_duration, ROLE_MAX)
    if duration > role.max_session_duration:
        raise _validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    record = state.issue(
        kind="role",
        arn=f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role.name}/{session_name}",
        principal_id=f"{role.role_id}:{session_name}",
        user_name=None,
        duration=duration,
        mfa=False,
        role_arn=role.arn,
    )
    log.info("AssumeRoleWithWebIdentity %s for sub %s", role.name, subject[:64])
    assert record.expiration is not None and record.token is not None
    return (
        "<Credentials>"
        + element("AccessKeyId", record.access_key_id)
        + element("SecretAccessKey", record.secret)
        + element("SessionToken", record.token)
        + element("Expiration", isoformat_z(record.expiration))
        + "</Credentials>"
        + element("SubjectFromWebIdentityToken", subject)
        + "<AssumedRoleUser>"
        + element("AssumedRoleId", record.principal_id)
        + element("Arn", record.arn)
        + "</AssumedRoleUser>"
        + element("Provider", str(claims.get("iss")))
        + element("Audience", registry.providers[trust.issuer].audience)
    )


def admin_rules(route: str, state: SandboxState) -> list[Any]:
    """The admin routes: register a provider; let a role trust one."""
    from werkzeug.routing import Rule

    from credd_sandbox.admin_body import AdminError, Json, _name

    def add_provider(body: Json) -> tuple[int, Json]:
        fields = [body.get(k) for k in ("issuer", "audience", "public_key_pem")]
        if not all(isinstance(f, str) and f for f in fields):
            raise AdminError(400, "bad_value", "issuer, audience, public_key_pem are strings")
        try:
            REGISTRY.add_provider(Provider(*(str(f) for f in fields)))
        except ValueError:
            raise AdminError(400, "bad_value", "public_key_pem is not a PEM public key") from None
        return 200, {"issuer": fields[0]}

    def trust(body: Json, name: str) -> tuple[int, Json]:
        arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{_name({'name': name})}"
        issuer = body.get("issuer")
        with REGISTRY.lock:
            provider = REGISTRY.providers.get(str(issuer))
        with state.lock:
            known = arn in state.roles
        if not known or provider is None:
            raise AdminError(404, "not_found", "no such role, or the issuer is not registered")
        subject = body.get("subject")
        REGISTRY.trust(arn, Trust(provider.issuer, provider.audience, subject and str(subject)))
        return 200, {"role_arn": arn, "issuer": provider.issuer}

    return [
        Rule(f"{route}/oidc-providers", endpoint=add_provider, methods=["POST"]),
        Rule(f"{route}/roles/<name>/web-identity", endpoint=trust, methods=["POST"]),
    ]
