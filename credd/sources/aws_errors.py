"""Turn botocore's exceptions into credd errors that say what to do. Never echoes a secret."""

from __future__ import annotations

from credd.errors import (
    AwsAccessDenied,
    AwsError,
    AwsThrottled,
    AwsUnreachable,
    CreddError,
    MfaCodeRejected,
)

THROTTLED = {  # error codes of throttling: the request was not processed
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "RequestThrottled",
}
_BAD_KEYS = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "IncompleteSignature",
}


def translate(exc: BaseException, *, profile: str, action: str) -> CreddError:
    """Map a botocore exception raised by ``action`` for ``profile`` to a ``CreddError``."""
    import botocore.exceptions as bx

    if isinstance(exc, CreddError):
        return exc
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        message = str(err.get("Message", ""))[:300]
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in THROTTLED or status == 429:
            return AwsThrottled(
                f"{action} for {profile!r} was throttled by AWS ({code})",
                hint="credd retries with backoff",
            )
        if code == "AccessDenied" and ("MultiFactorAuthentication" in message or "MFA" in message):
            return MfaCodeRejected(
                f"AWS rejected the MFA code for {profile!r}: {message}",
                hint=f"check the device and the clock, then run: credd mfa {profile}",
            )
        if code in _BAD_KEYS:
            return AwsAccessDenied(
                f"AWS rejected the long-term keys of {profile!r} ({code})",
                hint=f"replace them: credd keys set {profile}",
            )
        if status >= 500:
            return AwsUnreachable(
                f"{action} for {profile!r} failed on the AWS side ({code}, HTTP {status})",
                hint="credd retries with backoff",
            )
        if code in {"AccessDenied", "AccessDeniedException"}:
            return AwsAccessDenied(
                f"{action} for {profile!r} was denied: {message}",
                hint="check the IAM policy of this user",
            )
        return AwsError(f"{action} for {profile!r} failed: {code}: {message}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionError, bx.HTTPClientError)):
        return AwsUnreachable(
            f"{action} for {profile!r}: AWS could not be reached ({type(exc).__name__})",
            hint="check the network or the endpoint; credd retries with backoff",
        )
    if isinstance(exc, bx.ParamValidationError):
        # Names the parameter and the bound it broke (duration, serial): no secrets are sent here.
        return AwsError(f"{action} for {profile!r}: {str(exc)[:300]}")
    if isinstance(exc, bx.BotoCoreError):
        return AwsError(f"{action} for {profile!r} failed: {type(exc).__name__}")
    return AwsError(f"{action} for {profile!r} failed unexpectedly ({type(exc).__name__})")
