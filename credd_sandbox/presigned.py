"""Presigned (query-string) SigV4 requests: what ``generate_presigned_url`` and
``aws s3 presign`` hand out.

The signature is recomputed with botocore's own ``S3SigV4QueryAuth`` (``SigV4QueryAuth`` for
other services) from the query string minus ``X-Amz-Signature``, exactly the headers named in
``X-Amz-SignedHeaders`` and ``UNSIGNED-PAYLOAD`` (S3). Unlike a header-signed request, a presigned
URL is not bound to the real clock's 15-minute skew: it is valid from ``X-Amz-Date`` for
``X-Amz-Expires`` seconds (at most 604,800, seven days) on the **sandbox** clock, so a test can
let a URL expire by advancing that clock.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials as BotoCredentials

from credd_sandbox.awsxml import AwsFault
from credd_sandbox.sigv4 import AuthHeader, signed_headers

MAX_EXPIRES = 604_800  # SigV4 query auth: seven days
_SIGNATURE_PARAM = re.compile(r"(?:^|&)X-Amz-Signature=[^&]*", re.IGNORECASE)


@dataclass(frozen=True)
class PresignedAuth(AuthHeader):
    """The SigV4 parameters of a presigned URL's query string."""

    timestamp: str = ""
    expires: int = 0
    token: str | None = None


def parse_presigned(raw_uri: str) -> PresignedAuth | None:
    """The parsed query-string signature, or ``None`` when the URL carries none.

    Raises ``AuthorizationQueryParametersError`` (400, S3's code) for an incomplete or malformed
    set of ``X-Amz-*`` parameters.
    """
    query = raw_uri.partition("?")[2]
    if "x-amz-signature=" not in query.lower():
        return None
    params = dict(parse_qsl(query, keep_blank_values=True))
    missing = [
        name
        for name in (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
        )
        if not params.get(name)
    ]
    if missing:
        raise _query_error(f"Query-string authentication requires {', '.join(missing)}.")
    if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        raise _query_error('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    parts = params["X-Amz-Credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise _query_error("Error parsing the X-Amz-Credential parameter.")
    try:
        datetime.strptime(params["X-Amz-Date"], SIGV4_TIMESTAMP)
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        raise _query_error("X-Amz-Date or X-Amz-Expires is malformed.") from None
    if not 1 <= expires <= MAX_EXPIRES:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
            if expires > MAX_EXPIRES
            else "X-Amz-Expires must be non-negative"
        )
    return PresignedAuth(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=tuple(params["X-Amz-SignedHeaders"].lower().split(";")),
        signature=params["X-Amz-Signature"].lower(),
        timestamp=params["X-Amz-Date"],
        expires=expires,
        token=params.get("X-Amz-Security-Token"),
    )


def _query_error(message: str) -> AwsFault:
    return AwsFault("AuthorizationQueryParametersError", message, 400)


class _Exact:
    signed: HTTPHeaders

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self.signed

    def _modify_request_before_signing(self, request: AWSRequest) -> None:
        return None  # the query already holds every X-Amz-* parameter the caller signed


class _S3QueryVerifier(_Exact, S3SigV4QueryAuth):  # type: ignore[misc]
    pass


class _QueryVerifier(_Exact, SigV4QueryAuth):  # type: ignore[misc]
    pass


def check_presigned_window(auth: PresignedAuth, now: datetime) -> None:
    """``AccessDenied`` "Request has expired" once ``X-Amz-Date + X-Amz-Expires`` has passed on
    the sandbox clock ``now`` (S3's answer), or when the URL is dated in the future."""
    signed_at = datetime.strptime(auth.timestamp, SIGV4_TIMESTAMP).replace(tzinfo=timezone.utc)
    if now > signed_at + timedelta(seconds=auth.expires):
        raise AwsFault("AccessDenied", "Request has expired", 403)
    if signed_at - now > timedelta(minutes=15):
        raise AwsFault("AccessDenied", "Request is not valid yet", 403)
    if auth.date != auth.timestamp[:8]:
        raise AwsFault(
            "SignatureDoesNotMatch",
            "Credential should be scoped to a valid date matching X-Amz-Date.",
            403,
        )


def verify_presigned(
    auth: PresignedAuth,
    *,
    secret: str,
    method: str,
    host: str,
    raw_uri: str,
    headers: dict[str, str],
) -> None:
    """Raise ``SignatureDoesNotMatch`` unless the URL's signature is right for ``secret``."""
    signed = signed_headers(auth.signed_headers, headers, host, "X-Amz-SignedHeaders")
    path, _, query = raw_uri.partition("?")
    unsigned_query = _SIGNATURE_PARAM.sub("", query).lstrip("&")
    request = AWSRequest(method=method.upper(), url=f"http://{host}{path}?{unsigned_query}")
    request.context["timestamp"] = auth.timestamp
    cls = _S3QueryVerifier if auth.service == "s3" else _QueryVerifier
    signer = cls(BotoCredentials(auth.access_key_id, secret), auth.service, auth.region)
    signer.signed = signed
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    expected = str(signer.signature(string_to_sign, request))
    if not hmac.compare_digest(expected, auth.signature):
        raise AwsFault(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            403,
        )


def parse_presigned_or_fault(raw_uri: str) -> tuple[PresignedAuth | None, AwsFault | None]:
    """:func:`parse_presigned`, with a malformed URL's fault returned to be raised later (after
    the knobs and with the caller's service known)."""
    try:
        return parse_presigned(raw_uri), None
    except AwsFault as fault:
        return None, fault
