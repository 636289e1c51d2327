"""AssumeRole in the sandbox: trust, external id, MFA, MaxSessionDuration and the chaining cap."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from botocore.exceptions import ClientError

from tests.fixtures.sandbox import SandboxHandle, unique_name

pytestmark = pytest.mark.integration

CHAINING = (
    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by "
    "role chaining."
)


def code_now(seed: str) -> str:
    return pyotp.TOTP(seed).at(time.time())


def err(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_assume_role_from_user_and_session_credentials(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    role = sb.admin.create_role(unique_name("role"), trusted=[user.arn])
    sts = sb.user_client("sts", user)
    result = sts.assume_role(RoleArn=role.arn, RoleSessionName="direct")
    assert result["AssumedRoleUser"]["Arn"].endswith(f":assumed-role/{role.name}/direct")
    role_ident = sb.session_client("sts", result["Credentials"]).get_caller_identity()
    assert role_ident["Arn"] == result["AssumedRoleUser"]["Arn"]
    assert role_ident["UserId"] == result["AssumedRoleUser"]["AssumedRoleId"]
    session: dict[str, Any] = sts.get_session_token(DurationSeconds=900)["Credentials"]
    chained = sb.session_client("sts", session).assume_role(
        RoleArn=role.arn, RoleSessionName="via-session"
    )
    assert chained["Credentials"]["AccessKeyId"] != result["Credentials"]["AccessKeyId"]
    assert sb.admin.calls("AssumeRole") == 2


def test_max_session_duration(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    sts = sb.user_client("sts", user)
    role = sb.admin.create_role(unique_name("role"), trusted=[user.arn], max_session_duration=7200)
    sts.assume_role(RoleArn=role.arn, RoleSessionName="sess", DurationSeconds=7200)
    with pytest.raises(ClientError) as exc:
        sts.assume_role(RoleArn=role.arn, RoleSessionName="sess", DurationSeconds=7201)
    assert err(exc) == (
        "ValidationError",
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
    )
    long_role = sb.admin.create_role(
        unique_name("role"), trusted=[user.arn], max_session_duration=43200
    )
    sts.assume_role(RoleArn=long_role.arn, RoleSessionName="sess", DurationSeconds=43200)
    strict = sb.user_client("sts", user, parameter_validation=False)
    for duration in (899, 43201):
        with pytest.raises(ClientError) as exc:
            strict.assume_role(
                RoleArn=long_role.arn, RoleSessionName="sess", DurationSeconds=duration
            )
        assert err(exc)[0] == "ValidationError"


def test_role_chaining_capped_at_one_hour(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    sts = sb.user_client("sts", user)
    first = sb.admin.create_role(
        unique_name("role"), trusted=[user.arn], max_session_duration=43200
    )
    second = sb.admin.create_role(
        unique_name("role"), trusted=[first.arn], max_session_duration=43200
    )
    session = sts.get_session_token(DurationSeconds=900)["Credentials"]
    from_session = sb.session_client("sts", session)
    with pytest.raises(ClientError) as exc:
        from_session.assume_role(RoleArn=first.arn, RoleSessionName="sess", DurationSeconds=3601)
    assert err(exc) == ("ValidationError", CHAINING)
    from_session.assume_role(RoleArn=first.arn, RoleSessionName="sess", DurationSeconds=3600)
    role_creds = sts.assume_role(RoleArn=first.arn, RoleSessionName="sess", DurationSeconds=43200)
    chain = sb.session_client("sts", role_creds["Credentials"])
    with pytest.raises(ClientError) as exc:
        chain.assume_role(RoleArn=second.arn, RoleSessionName="sess2", DurationSeconds=7200)
    assert err(exc) == ("ValidationError", CHAINING)
    chained = chain.assume_role(RoleArn=second.arn, RoleSessionName="sess2", DurationSeconds=3600)
    assert f"assumed-role/{second.name}/sess2" in chained["AssumedRoleUser"]["Arn"]


def test_trust_and_external_id(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    trusted, stranger = sb.new_user(), sb.new_user("stranger")
    role = sb.admin.create_role(unique_name("role"), trusted=[trusted.arn], external_id="ext-42")
    with pytest.raises(ClientError) as exc:
        sb.user_client("sts", stranger).assume_role(
            RoleArn=role.arn, RoleSessionName="sess", ExternalId="ext-42"
        )
    code, message = err(exc)
    assert code == "AccessDenied"
    assert stranger.arn in message and role.arn in message
    sts = sb.user_client("sts", trusted)
    for bad in ({}, {"ExternalId": "ext-41"}):
        with pytest.raises(ClientError):
            sts.assume_role(RoleArn=role.arn, RoleSessionName="sess", **bad)
    sts.assume_role(RoleArn=role.arn, RoleSessionName="sess", ExternalId="ext-42")
    with pytest.raises(ClientError) as exc:
        sts.assume_role(RoleArn=role.arn.replace(role.name, "no-such-role"), RoleSessionName="sess")
    assert err(exc)[0] == "AccessDenied"


def test_mfa_required_role(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user, device = sb.new_user_with_mfa()
    role = sb.admin.create_role(unique_name("role"), trusted=[user.arn], mfa_required=True)
    sts = sb.user_client("sts", user)
    with pytest.raises(ClientError) as exc:
        sts.assume_role(RoleArn=role.arn, RoleSessionName="sess")
    assert err(exc)[0] == "AccessDenied"
    sts.assume_role(
        RoleArn=role.arn,
        RoleSessionName="sess",
        SerialNumber=device.serial,
        TokenCode=code_now(device.seed),
    )
    plain = sts.get_session_token(DurationSeconds=900)["Credentials"]
    with pytest.raises(ClientError):
        sb.session_client("sts", plain).assume_role(RoleArn=role.arn, RoleSessionName="sess")
    step_ahead = pyotp.TOTP(device.seed).at(time.time() + 30)
    mfa_session = sts.get_session_token(SerialNumber=device.serial, TokenCode=step_ahead)
    # One MFA-backed session feeds any number of AssumeRole calls without further codes.
    for n in range(3):
        sb.session_client("sts", mfa_session["Credentials"]).assume_role(
            RoleArn=role.arn, RoleSessionName=f"sess{n}"
        )
