"""The sandbox's strict STS, seen by real boto3 clients against the real subprocess."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pyotp
import pytest
from botocore.exceptions import ClientError

from tests.fixtures.sandbox import SandboxHandle

pytestmark = pytest.mark.integration

INVALID_CODE = "MultiFactorAuthentication failed with invalid MFA one time pass code."


def totp(seed: str, steps: int = 0) -> str:
    """The code a device shows now (``steps`` 30 s steps ahead)."""
    return pyotp.TOTP(seed).at(time.time() + 30 * steps)


def wrong_code(seed: str) -> str:
    """A well-formed code that is valid in none of the nearby steps."""
    nearby = {totp(seed, s) for s in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in nearby)


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    err = exc.value.response["Error"]
    return err["Code"], err["Message"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_get_session_token_with_totp(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user, device = sb.new_user_with_mfa()
    sts = sb.user_client("sts", user)
    before = sb.admin.now()
    creds = sts.get_session_token(SerialNumber=device.serial, TokenCode=totp(device.seed))[
        "Credentials"
    ]
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", creds["AccessKeyId"])
    lifetime = creds["Expiration"] - before
    assert timedelta(hours=12) - timedelta(seconds=5) <= lifetime <= timedelta(hours=12, seconds=5)
    ident = sb.session_client("sts", creds).get_caller_identity()
    assert ident["Arn"] == user.arn
    assert ident["Account"] == "123456789012"
    assert sb.admin.calls_by_key(user.access_key_id) == {"GetSessionToken": 1}
    assert sb.admin.calls_by_key(creds["AccessKeyId"]) == {"GetCallerIdentity": 1}


def test_reused_code_is_rejected_and_next_step_accepted(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user, device = sb.new_user_with_mfa()
    sts = sb.user_client("sts", user)
    code = totp(device.seed)
    sts.get_session_token(SerialNumber=device.serial, TokenCode=code)
    with pytest.raises(ClientError) as exc:
        sts.get_session_token(SerialNumber=device.serial, TokenCode=code)
    assert error(exc) == ("AccessDenied", INVALID_CODE, 403)
    sts.get_session_token(SerialNumber=device.serial, TokenCode=totp(device.seed, 1))
    with pytest.raises(ClientError):  # an older code is no good after a newer one was used
        sts.get_session_token(SerialNumber=device.serial, TokenCode=code)
    stats = sb.admin.call_stats()["actions"]["GetSessionToken"]
    assert stats == {"total": 4, "ok": 2, "error": 2}


def test_wrong_code_rejected_without_using_up_the_right_one(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user, device = sb.new_user_with_mfa()
    sts = sb.user_client("sts", user)
    with pytest.raises(ClientError) as exc:
        sts.get_session_token(SerialNumber=device.serial, TokenCode=wrong_code(device.seed))
    assert error(exc) == ("AccessDenied", INVALID_CODE, 403)
    sts.get_session_token(SerialNumber=device.serial, TokenCode=totp(device.seed))


def test_device_of_another_user_and_missing_code(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    _, other_device = sb.new_user_with_mfa("other")
    sts = sb.user_client("sts", user)
    with pytest.raises(ClientError) as exc:
        sts.get_session_token(SerialNumber=other_device.serial, TokenCode=totp(other_device.seed))
    code, message, _ = error(exc)
    assert code == "AccessDenied"
    assert "associated with this user" in message
    with pytest.raises(ClientError) as exc:
        sts.get_session_token(SerialNumber=other_device.serial)
    assert "must provide both" in error(exc)[1]


@pytest.mark.parametrize("duration", [899, 129_601, 0])
def test_duration_out_of_bounds_rejected(sandbox_clean: SandboxHandle, duration: int) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user(), parameter_validation=False)
    with pytest.raises(ClientError) as exc:
        sts.get_session_token(DurationSeconds=duration)
    code, message, status = error(exc)
    assert (code, status) == ("ValidationError", 400)
    assert f"Value '{duration}' at 'durationSeconds'" in message


def test_duration_bounds_inclusive(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user())
    for duration in (900, 129_600):
        now = sb.admin.now()
        creds = sts.get_session_token(DurationSeconds=duration)["Credentials"]
        assert abs((creds["Expiration"] - now).total_seconds() - duration) <= 5


def test_min_duration_relaxation_for_demos(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user(), parameter_validation=False)
    sb.admin.set_min_duration(60)
    assert sb.admin.settings()["min_duration_seconds"] == 60
    sts.get_session_token(DurationSeconds=60)
    with pytest.raises(ClientError):
        sts.get_session_token(DurationSeconds=59)
    sb.admin.reset()
    with pytest.raises(ClientError):
        sts.get_session_token(DurationSeconds=60)


def test_every_call_gets_unique_keys(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user())
    issued = [sts.get_session_token(DurationSeconds=900)["Credentials"] for _ in range(5)]
    for field in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
        assert len({c[field] for c in issued}) == 5


def test_wrong_secret_unknown_key_and_foreign_token(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    with pytest.raises(ClientError) as exc:
        sb.client("sts", user.access_key_id, "x" * 40).get_caller_identity()
    assert error(exc)[0::2] == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as exc:
        sb.client("sts", "AKIAUNKNOWNUNKNOWN00", "x" * 40).get_caller_identity()
    assert error(exc)[0::2] == ("InvalidClientTokenId", 403)
    sts = sb.user_client("sts", user)
    one = sts.get_session_token(DurationSeconds=900)["Credentials"]
    two = sts.get_session_token(DurationSeconds=900)["Credentials"]
    mixed = {**one, "SessionToken": two["SessionToken"]}
    with pytest.raises(ClientError) as exc:
        sb.session_client("sts", mixed).get_caller_identity()
    assert error(exc)[0] == "InvalidClientTokenId"
    no_token = sb.client("sts", one["AccessKeyId"], one["SecretAccessKey"])
    with pytest.raises(ClientError) as exc:
        no_token.get_caller_identity()
    assert error(exc)[0] == "InvalidClientTokenId"


def test_request_signed_with_skewed_clock_rejected(
    sandbox_clean: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user())
    skewed = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=20)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: skewed)
    with pytest.raises(ClientError) as exc:
        sts.get_caller_identity()
    code, message, status = error(exc)
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert "Signature expired" in message


def test_expired_session_rejected_after_clock_advance(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    creds = sb.user_client("sts", user).get_session_token(DurationSeconds=900)["Credentials"]
    session_sts = sb.session_client("sts", creds)
    session_sts.get_caller_identity()
    # The sandbox clock also runs in real time: judged against the issued Expiration with a
    # minute's margin before it and none after (real time only moves it later), not against
    # "899 s after issue", which a busy machine's second of real time turned into ExpiredToken.
    expiration = creds["Expiration"]
    sb.admin.set_now(expiration - timedelta(seconds=60))
    session_sts.get_caller_identity()
    sb.admin.set_now(expiration)
    with pytest.raises(ClientError) as exc:
        session_sts.get_caller_identity()
    assert error(exc)[0::2] == ("ExpiredToken", 403)
    s3 = sb.session_client("s3", creds)
    with pytest.raises(ClientError) as exc:
        s3.list_buckets()
    assert error(exc)[0] == "ExpiredToken"
    assert sb.user_client("sts", user).get_caller_identity()["Arn"] == user.arn  # long-term keys


def test_clock_get_advance_set(sandbox_clean: SandboxHandle) -> None:
    admin = sandbox_clean.admin
    start = admin.now()
    assert abs((start - datetime.now(timezone.utc)).total_seconds()) < 60
    assert admin.advance(3600) - start >= timedelta(hours=1)
    target = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    assert abs((admin.set_now(target) - target).total_seconds()) < 5
    admin.reset()
    assert abs((admin.now() - datetime.now(timezone.utc)).total_seconds()) < 60


def test_session_credentials_cannot_get_session_token(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    creds = sb.user_client("sts", sb.new_user()).get_session_token(DurationSeconds=900)
    with pytest.raises(ClientError) as exc:
        sb.session_client("sts", creds["Credentials"]).get_session_token()
    code, message, _ = error(exc)
    assert code == "AccessDenied"
    assert "session credentials" in message


def test_unsupported_sts_action(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    with pytest.raises(ClientError) as exc:
        sb.user_client("sts", sb.new_user()).get_access_key_info(AccessKeyId="AKIAEXAMPLE000000000")
    assert error(exc)[0] == "InvalidAction"


def test_list_mfa_devices(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user, device = sb.new_user_with_mfa()
    other, other_device = sb.new_user_with_mfa("other")
    iam = sb.user_client("iam", user)
    mine = iam.list_mfa_devices()["MFADevices"]
    assert [(d["UserName"], d["SerialNumber"]) for d in mine] == [(user.name, device.serial)]
    theirs = iam.list_mfa_devices(UserName=other.name)["MFADevices"]
    assert [d["SerialNumber"] for d in theirs] == [other_device.serial]
    with pytest.raises(ClientError) as exc:
        iam.list_mfa_devices(UserName="no-such-user-here")
    assert error(exc)[0::2] == ("NoSuchEntity", 404)
    mfa_creds: dict[str, Any] = sb.user_client("sts", user).get_session_token(
        SerialNumber=device.serial, TokenCode=totp(device.seed)
    )["Credentials"]
    assert sb.session_client("iam", mfa_creds).list_mfa_devices()["MFADevices"] == mine
    plain = sb.user_client("sts", user).get_session_token(DurationSeconds=900)["Credentials"]
    with pytest.raises(ClientError) as exc:
        sb.session_client("iam", plain).list_mfa_devices()
    assert error(exc)[0] == "InvalidClientTokenId"


def test_totp_clock_real_by_default_or_sandbox(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user, device = sb.new_user_with_mfa()
    sts = sb.user_client("sts", user)
    sb.admin.advance(3600)
    sts.get_session_token(SerialNumber=device.serial, TokenCode=totp(device.seed))  # real time
    sb.admin.set_totp_clock("sandbox")
    assert sb.admin.settings()["totp_clock"] == "sandbox"
    with pytest.raises(ClientError) as exc:
        sts.get_session_token(SerialNumber=device.serial, TokenCode=totp(device.seed, 1))
    assert error(exc)[1] == INVALID_CODE
    sandbox_code = pyotp.TOTP(device.seed).at(sb.admin.now().timestamp())
    sts.get_session_token(SerialNumber=device.serial, TokenCode=sandbox_code)


def wait_in_flight(sb: SandboxHandle, count: int) -> None:
    """Until the sandbox is processing ``count`` AWS calls (a bounded poll of its counters)."""
    deadline = time.monotonic() + 30
    while sb.admin.call_stats()["in_flight"] != count:
        assert time.monotonic() < deadline, sb.admin.call_stats()
        time.sleep(0.01)


def test_credentials_are_judged_when_the_request_starts(sandbox_clean: SandboxHandle) -> None:
    """A request (an upload) that started with valid credentials is accepted though they expire
    while its body is streaming, as AWS does; one that starts after the expiry is refused."""
    import http.client
    from urllib.parse import urlsplit

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    sb = sandbox_clean
    user = sb.new_user()
    creds = sb.user_client("sts", user).get_session_token(DurationSeconds=900)["Credentials"]
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    request = AWSRequest(
        method="POST",
        url=sb.endpoint + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    keys = Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    SigV4Auth(keys, "sts", "us-east-1").add_auth(request)
    parts = urlsplit(sb.endpoint)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.putrequest("POST", "/", skip_accept_encoding=True)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body[:10])
        wait_in_flight(sb, 1)  # the sandbox has the request and is reading its body
        sb.admin.advance(901)  # the credentials expire while the body is on its way
        conn.send(body[10:])
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 200, answer
        assert user.arn.encode() in answer
    finally:
        conn.close()
    with pytest.raises(ClientError) as exc:
        sb.session_client("sts", creds).get_caller_identity()
    assert error(exc)[0::2] == ("ExpiredToken", 403)
