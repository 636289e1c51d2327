"""The one translator of botocore exceptions into credd errors, for every AWS call credd makes
(STS, IAM, SSO-OIDC, the SSO portal). Never echoes a secret: SSO answers can quote what was sent,
so for them only the error code is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from credd.errors import (
    AwsAccessDenied,
    AwsError,
    AwsThrottled,
    AwsUnreachable,
    CreddError,
    LoginRequired,
    MfaCodeRejected,
)

THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "SlowDownException",
        "RequestThrottled",
    }
)
#: Long-term keys AWS does not accept.
BAD_KEY_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "IncompleteSignature",
    }
)
#: IAM Identity Center answers meaning the login (token, refresh token or client registration)
#: can no longer be used: CreateToken's, and the portal's UnauthorizedException.
LOGIN_CODES = frozenset(
    {
        "InvalidGrantException",
        "ExpiredTokenException",
        "InvalidClientException",
        "UnauthorizedClientException",
        "AccessDeniedException",
        "InvalidScopeException",
        "UnauthorizedException",
    }
)
DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "ForbiddenException", "ResourceNotFoundException"}
)


@dataclass(frozen=True)
class Subject:
    """Whom a call was for, as messages name it, and what to do about a refusal."""

    name: str  # "'prod'" for a profile, the sso-session (or start URL) for a login
    login: str | None = None  # set for IAM Identity Center calls: the command to log in again
    profile: str | None = None  # the profile, for the commands suggested
    denied_hint: str = "check the IAM policy of this user"

    @property
    def sso(self) -> bool:
        return self.login is not None


def profile_subject(profile: str) -> Subject:
    return Subject(repr(profile), profile=profile)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``, else ``None``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def translate(
    exc: BaseException,
    *,
    action: str,
    profile: str | None = None,
    subject: Subject | None = None,
) -> CreddError:
    """Map a botocore exception raised by ``action`` to a ``CreddError``; ``profile`` is a
    shorthand for ``subject=profile_subject(profile)``."""
    import botocore.exceptions as bx

    if isinstance(exc, CreddError):
        return exc
    who = subject or profile_subject(profile or "?")
    if isinstance(exc, bx.ClientError):
        return _client_error(exc, action, who)
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionError, bx.HTTPClientError)):
        what = "IAM Identity Center" if who.sso else "AWS"
        return AwsUnreachable(
            f"{action} for {who.name}: {what} could not be reached ({type(exc).__name__})",
            hint="check the network or the endpoint; credd retries with backoff",
        )
    if isinstance(exc, bx.ParamValidationError) and not who.sso:
        # Names the parameter and the bound it broke (duration, serial): no secrets are sent here.
        return AwsError(f"{action} for {who.name}: {str(exc)[:300]}")
    if isinstance(exc, bx.BotoCoreError):
        return AwsError(f"{action} for {who.name} failed: {type(exc).__name__}")
    return AwsError(f"{action} for {who.name} failed unexpectedly ({type(exc).__name__})")


def _client_error(exc: BaseException, action: str, who: Subject) -> CreddError:
    response = getattr(exc, "response", {}) or {}
    code = error_code(exc) or "Unknown"
    # SSO-OIDC messages can quote what was sent (client secret, device code): never shown.
    message = "" if who.sso else str(response.get("Error", {}).get("Message", ""))[:300]
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if who.sso and code in LOGIN_CODES:
        return LoginRequired(
            f"SSO login for {who.name} has ended ({action}: {code})", hint=f"run: {who.login}"
        )
    if code in THROTTLE_CODES or status == 429:
        return AwsThrottled(
            f"{action} for {who.name} was throttled by AWS ({code})",
            hint="credd retries with backoff",
        )
    if code == "AccessDenied" and ("MultiFactorAuthentication" in message or "MFA" in message):
        return MfaCodeRejected(
            f"AWS rejected the MFA code for {who.name}: {message}",
            hint=f"check the device and the clock, then run: credd mfa {who.profile or 'PROFILE'}",
        )
    if code in BAD_KEY_CODES and not who.sso:
        return AwsAccessDenied(
            f"AWS rejected the long-term keys of {who.name} ({code})",
            hint=f"replace them: credd keys set {who.profile or 'PROFILE'}",
        )
    if status >= 500 or code == "InternalServerException":
        return AwsUnreachable(
            f"{action} for {who.name} failed on the AWS side ({code}, HTTP {status})",
            hint="credd retries with backoff",
        )
    if code in DENIED_CODES:
        detail = f": {message}" if message else f" ({code})"
        return AwsAccessDenied(f"{action} for {who.name} was denied{detail}", hint=who.denied_hint)
    if who.sso:
        return AwsError(
            f"{action} for {who.name} failed: {code}",
            hint=f"check sso_start_url and sso_region, then run: {who.login}",
        )
    return AwsError(f"{action} for {who.name} failed: {code}: {message}")
