"""Verifying callers' SigV4 signatures with botocore's own signer.

The request is rebuilt from exactly the headers the caller listed in ``SignedHeaders``, the
signing timestamp is taken from ``X-Amz-Date``, and botocore computes the canonical request,
string to sign and signature; the result is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl

from botocore.auth import SIGV4_TIMESTAMP, S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials as BotoCredentials

from credd_sandbox.awsxml import AwsFault

MAX_SKEW = timedelta(minutes=15)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AuthHeader:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> AuthHeader | None:
    """The parsed header, or ``None`` when it is absent or not SigV4."""
    if not value:
        return None
    match = _AUTH_RE.match(value.strip())
    if not match:
        return None
    parts = match["cred"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return None
    return AuthHeader(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=tuple(match["signed"].lower().split(";")),
        signature=match["sig"].lower(),
    )


class _ExactHeaders:
    """Sign exactly the headers the caller named, no more and no fewer."""

    signed: HTTPHeaders

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        return self.signed


class _Verifier(_ExactHeaders, SigV4Auth):  # type: ignore[misc]
    pass


class _S3Verifier(_ExactHeaders, S3SigV4Auth):  # type: ignore[misc]
    pass


def request_timestamp(headers: dict[str, str]) -> str:
    """The signing timestamp (``YYYYMMDDTHHMMSSZ``) from ``X-Amz-Date`` or ``Date``."""
    amz_date = headers.get("x-amz-date")
    if amz_date:
        try:
            datetime.strptime(amz_date, SIGV4_TIMESTAMP)
        except ValueError:
            raise AwsFault(
                "IncompleteSignature", "X-Amz-Date is not a valid timestamp.", 400
            ) from None
        return amz_date
    date = headers.get("date")
    if date:
        try:
            return parsedate_to_datetime(date).astimezone(timezone.utc).strftime(SIGV4_TIMESTAMP)
        except (TypeError, ValueError):
            pass
    raise AwsFault(
        "IncompleteSignature",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        400,
    )


def check_skew(timestamp: str, real_now: datetime) -> None:
    """Reject a request signed more than 15 minutes away from the real wall clock."""
    signed_at = datetime.strptime(timestamp, SIGV4_TIMESTAMP).replace(tzinfo=timezone.utc)
    if abs(real_now - signed_at) > MAX_SKEW:
        raise AwsFault(
            "SignatureDoesNotMatch",
            f"Signature expired: {timestamp} is now earlier than "
            f"{(real_now - MAX_SKEW).strftime(SIGV4_TIMESTAMP)} "
            f"({real_now.strftime(SIGV4_TIMESTAMP)} - 15 min.)"
            if signed_at < real_now
            else f"Signature not yet current: {timestamp} is still later than "
            f"{(real_now + MAX_SKEW).strftime(SIGV4_TIMESTAMP)} "
            f"({real_now.strftime(SIGV4_TIMESTAMP)} + 15 min.)",
            403,
        )


def check_payload_hash(headers: dict[str, str], body: bytes) -> None:
    """A hex ``X-Amz-Content-SHA256`` must be the hash of the body actually sent."""
    declared = headers.get("x-amz-content-sha256", "")
    if _HEX64.match(declared) and not hmac.compare_digest(
        declared, hashlib.sha256(body).hexdigest()
    ):
        raise AwsFault(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            400,
        )


def signed_headers(
    names: Iterable[str], headers: dict[str, str], host: str, listed_in: str = "SignedHeaders"
) -> HTTPHeaders:
    """The request's values of the headers the signature covers (``host`` defaults to the
    request's host); ``SignatureDoesNotMatch`` when one of them was not sent."""
    signed = HTTPHeaders()
    for name in names:
        if name == "host":
            signed[name] = headers.get("host", host)
        elif name in headers:
            signed[name] = headers[name]
        else:
            raise AwsFault(
                "SignatureDoesNotMatch",
                f"Header {name!r} is listed in {listed_in} but absent from the request.",
                403,
            )
    return signed


def compute_signature(
    auth: AuthHeader,
    *,
    secret: str,
    method: str,
    host: str,
    raw_uri: str,
    headers: dict[str, str],
    body: bytes,
    timestamp: str,
    requote_query: bool = False,
) -> str:
    """The signature botocore would produce for this request with ``secret``.

    ``headers`` maps lower-cased names to values as received. With ``requote_query`` the query
    string is canonicalised from its decoded parameters (as SDKs other than botocore sign it)
    instead of botocore's split of the raw string.
    """
    signed = signed_headers(auth.signed_headers, headers, host)
    path, _, query = raw_uri.partition("?")
    request = AWSRequest(method=method.upper(), url=f"http://{host}{path}", data=body)
    if requote_query:
        request.params = parse_qsl(query, keep_blank_values=True)
    elif query:
        request.url = f"http://{host}{path}?{query}"
    if "x-amz-content-sha256" in headers:
        request.headers["X-Amz-Content-SHA256"] = headers["x-amz-content-sha256"]
    request.context["timestamp"] = timestamp
    creds = BotoCredentials(auth.access_key_id, secret)
    cls = _S3Verifier if auth.service == "s3" else _Verifier
    signer = cls(creds, auth.service, auth.region)
    signer.signed = signed
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    return str(signer.signature(string_to_sign, request))


def verify_signature(
    auth: AuthHeader,
    *,
    secret: str,
    method: str,
    host: str,
    raw_uri: str,
    headers: dict[str, str],
    body: bytes,
    timestamp: str,
) -> None:
    """Raise ``SignatureDoesNotMatch`` unless ``auth.signature`` is right for ``secret``."""
    if auth.date != timestamp[:8]:
        raise AwsFault(
            "SignatureDoesNotMatch",
            "Credential should be scoped to a valid date matching the request's X-Amz-Date.",
            403,
        )
    kwargs: dict[str, Any] = {
        "secret": secret,
        "method": method,
        "host": host,
        "raw_uri": raw_uri,
        "headers": headers,
        "body": body,
        "timestamp": timestamp,
    }
    expected = compute_signature(auth, **kwargs)
    if hmac.compare_digest(expected, auth.signature):
        return
    if "?" in raw_uri and hmac.compare_digest(
        compute_signature(auth, requote_query=True, **kwargs), auth.signature
    ):
        return
    raise AwsFault(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. "
        "Consult the service documentation for details.",
        403,
    )
