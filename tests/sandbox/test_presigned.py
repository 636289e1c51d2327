"""The sandbox verifies presigned (query-string SigV4) URLs with expiry on its own clock, then
forwards them to moto: what ``credd presign`` and ``aws s3 presign`` hand out works with curl."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.fixtures.daemon import remember
from tests.fixtures.sandbox import SandboxHandle, unique_name

pytestmark = pytest.mark.integration


def curl(url: str, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args, url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def _s3(sandbox: SandboxHandle, creds: tuple[str, str, str | None]) -> Any:
    return sandbox.client("s3", *creds, signature_version="s3v4")


@pytest.fixture
def bucket(sandbox_clean: SandboxHandle) -> tuple[Any, str, tuple[str, str, str | None]]:
    user = sandbox_clean.new_user("presign")
    remember(user.secret_access_key)
    creds = (user.access_key_id, user.secret_access_key, None)
    s3 = _s3(sandbox_clean, creds)
    name = unique_name("bkt")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="dir/a file.txt", Body=b"hello presigned")
    return s3, name, creds


def test_presigned_get_works_until_its_expiry_on_the_sandbox_clock(
    sandbox_clean: SandboxHandle, bucket: tuple[Any, str, Any]
) -> None:
    s3, name, _ = bucket
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": name, "Key": "dir/a file.txt"}, ExpiresIn=604_800
    )
    assert curl(url) == (200, "hello presigned")
    sandbox_clean.admin.advance(604_800 - 120)  # six days and 23 h 58 min later: still good
    assert curl(url)[0] == 200
    sandbox_clean.admin.advance(121)
    status, body = curl(url)
    assert status == 403 and "Request has expired" in body


def test_tampered_or_unknown_presigned_urls_are_refused(
    sandbox_clean: SandboxHandle, bucket: tuple[Any, str, Any]
) -> None:
    s3, name, _ = bucket
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": name, "Key": "dir/a file.txt"}, ExpiresIn=60
    )
    other = url.replace("a%20file.txt", "other.txt")
    status, body = curl(other)
    assert status == 403 and "SignatureDoesNotMatch" in body
    longer = url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    assert "SignatureDoesNotMatch" in curl(longer)[1]
    too_long = url.replace("X-Amz-Expires=60", "X-Amz-Expires=604801")
    assert "AuthorizationQueryParametersError" in curl(too_long)[1]
    unknown = _s3(sandbox_clean, ("AKIAUNKNOWN000000000", "x" * 40, None))
    bad = unknown.generate_presigned_url(
        "get_object", Params={"Bucket": name, "Key": "dir/a file.txt"}, ExpiresIn=60
    )
    assert "InvalidAccessKeyId" in curl(bad)[1]


def test_presigned_put_uploads(bucket: tuple[Any, str, Any]) -> None:
    s3, name, _ = bucket
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": name, "Key": "up.txt"}, ExpiresIn=60, HttpMethod="PUT"
    )
    # (a form content type, curl's default for --data, makes moto drop the body)
    put = ("-X", "PUT", "-H", "Content-Type: text/plain", "--data-binary", "uploaded")
    assert curl(url, *put)[0] == 200
    assert s3.get_object(Bucket=name, Key="up.txt")["Body"].read() == b"uploaded"


def test_a_url_signed_with_session_credentials_dies_with_them(
    sandbox_clean: SandboxHandle, bucket: tuple[Any, str, Any]
) -> None:
    _, name, creds = bucket
    sts = sandbox_clean.client("sts", *creds)
    session = sts.get_session_token(DurationSeconds=900)["Credentials"]
    remember(session["SecretAccessKey"], session["SessionToken"])
    s3 = sandbox_clean.session_client("s3", session, signature_version="s3v4")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": name, "Key": "dir/a file.txt"}, ExpiresIn=3600
    )
    assert curl(url)[0] == 200
    sandbox_clean.admin.advance(901)  # the URL asked for 1 h, the session lasted 15 min
    status, body = curl(url)
    assert status == 403 and "ExpiredToken" in body


def test_header_signed_requests_still_work(bucket: tuple[Any, str, Any]) -> None:
    s3, name, _ = bucket
    assert s3.get_object(Bucket=name, Key="dir/a file.txt")["Body"].read() == b"hello presigned"
