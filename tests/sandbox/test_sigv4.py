"""Signature checks against requests signed by botocore's real signer (pure logic, no server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from credd_sandbox.awsxml import AwsFault
from credd_sandbox.knobs import Knob, Knobs
from credd_sandbox.sigv4 import (
    check_payload_hash,
    check_skew,
    parse_authorization,
    verify_signature,
)

KEY, SECRET = "AKIAEXAMPLEEXAMPLE00", "secret/EXAMPLE+key/0123456789abcdefghijkl"


def signed(
    service: str,
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    params: list[tuple[str, str]] | None = None,
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {}, params=params)
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
        Credentials(KEY, SECRET), service, "us-east-1"
    )
    signer.add_auth(request)
    return request


def verify(request: AWSRequest, *, secret: str = SECRET, body: bytes | None = None) -> None:
    headers = {
        k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
    }
    parts = urlsplit(request.url)
    headers.setdefault("host", parts.netloc)
    auth = parse_authorization(headers["authorization"])
    assert auth is not None
    raw_uri = parts.path + (f"?{parts.query}" if parts.query else "")
    if request.params:
        from urllib.parse import urlencode

        raw_uri += "?" + urlencode(request.params)
    verify_signature(
        auth,
        secret=secret,
        method=request.method,
        host=parts.netloc,
        raw_uri=raw_uri,
        headers=headers,
        body=request.body if body is None else body,
        timestamp=headers["x-amz-date"],
    )


def test_query_protocol_request_verifies_and_tampering_fails() -> None:
    body = b"Action=GetSessionToken&Version=2011-06-15&DurationSeconds=900"
    request = signed(
        "sts",
        "http://127.0.0.1:4566/",
        body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    verify(request)
    with pytest.raises(AwsFault) as exc:
        verify(request, secret="wrong")
    assert exc.value.code == "SignatureDoesNotMatch"
    with pytest.raises(AwsFault):
        verify(request, body=body.replace(b"900", b"901"))


def test_s3_paths_queries_and_payload_modes() -> None:
    url = (
        "http://127.0.0.1:4566/bucket/dir/with%20space%2Bplus.txt?list-type=2&prefix=a%2Fb&uploads"
    )
    verify(signed("s3", url, method="GET"))
    for mode in ("UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):

        class ModeSigner(S3SigV4Auth):  # type: ignore[misc]
            def payload(self, request: AWSRequest, mode: str = mode) -> str:
                return mode

        request = AWSRequest(method="PUT", url=url.split("?")[0], data=b"anything")
        ModeSigner(Credentials(KEY, SECRET), "s3", "us-east-1").add_auth(request)
        assert request.headers["X-Amz-Content-SHA256"] == mode
        verify(request)
        verify(request, body=b"a different body: the payload is not signed")


def test_sdk_style_query_canonicalisation_accepted() -> None:
    request = signed(
        "sqs", "http://127.0.0.1:4566/", method="GET", params=[("b", "x y"), ("a", "1/2")]
    )
    verify(request)


def test_signed_header_must_be_present() -> None:
    request = signed("sts", "http://127.0.0.1:4566/", b"x", headers={"X-Custom": "1"})
    headers = {k.lower(): str(v) for k, v in request.headers.items()}
    headers.pop("x-custom")
    auth = parse_authorization(headers["authorization"])
    assert auth is not None and "x-custom" in auth.signed_headers
    with pytest.raises(AwsFault):
        verify_signature(
            auth,
            secret=SECRET,
            method="POST",
            host="127.0.0.1:4566",
            raw_uri="/",
            headers=headers,
            body=b"x",
            timestamp=headers["x-amz-date"],
        )


def test_payload_hash_and_skew_checks() -> None:
    check_payload_hash({"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}, b"x")
    with pytest.raises(AwsFault) as exc:
        check_payload_hash({"x-amz-content-sha256": "0" * 64}, b"x")
    assert exc.value.code == "XAmzContentSHA256Mismatch"
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    check_skew((now - timedelta(minutes=14)).strftime("%Y%m%dT%H%M%SZ"), now)
    for delta in (timedelta(minutes=16), -timedelta(minutes=16)):
        with pytest.raises(AwsFault):
            check_skew((now - delta).strftime("%Y%m%dT%H%M%SZ"), now)


def test_parse_authorization_rejects_other_schemes() -> None:
    assert parse_authorization(None) is None
    assert parse_authorization("AWS AKIA:abc") is None
    assert (
        parse_authorization("AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=h, Signature=0")
        is None
    )


def test_knob_counts_and_matching() -> None:
    knobs = Knobs()
    knobs.set(Knob("fail", frozenset({"sts"}), frozenset({"AssumeRole"}), remaining=2))
    assert knobs.take("fail", "sts", "GetSessionToken") is None
    assert knobs.take("fail", "s3", "AssumeRole") is None
    assert knobs.take("fail", "sts", "AssumeRole") is not None
    assert knobs.take("fail", "sts", "AssumeRole") is not None
    assert knobs.take("fail", "sts", "AssumeRole") is None
    knobs.set(Knob("down", None))
    assert knobs.take("down", "sqs", None) is not None
    assert knobs.take("down", None, None) is not None
