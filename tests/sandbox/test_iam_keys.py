"""The sandbox's IAM access keys behave as AWS's: two per user, Inactive keys refused, last use
recorded, a "deny without MFA" policy, sessions outliving the key that made them."""

from __future__ import annotations

import pyotp
import pytest
from botocore.exceptions import ClientError

from tests.fixtures.daemon import remember
from tests.fixtures.sandbox import SandboxHandle

pytestmark = pytest.mark.integration


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_two_keys_limit_status_and_last_used(sandbox_clean: SandboxHandle) -> None:
    user = sandbox_clean.new_user("keys")
    remember(user.secret_access_key)
    iam = sandbox_clean.user_client("iam", user)
    first = iam.get_access_key_last_used(AccessKeyId=user.access_key_id)["AccessKeyLastUsed"]
    assert first["ServiceName"] == "iam" and "LastUsedDate" in first  # this very call
    new = iam.create_access_key()["AccessKey"]
    remember(new["SecretAccessKey"])
    with pytest.raises(ClientError) as limit:
        iam.create_access_key()
    assert _code(limit) == "LimitExceeded" and "AccessKeysPerUser: 2" in str(limit.value)
    listed = iam.list_access_keys()["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [user.access_key_id, new["AccessKeyId"]]
    fresh = sandbox_clean.client("sts", new["AccessKeyId"], new["SecretAccessKey"])
    assert fresh.get_caller_identity()["Arn"] == user.arn
    unused = iam.get_access_key_last_used(AccessKeyId=new["AccessKeyId"])
    assert unused["AccessKeyLastUsed"]["ServiceName"] == "sts"
    iam.update_access_key(AccessKeyId=new["AccessKeyId"], Status="Inactive")
    with pytest.raises(ClientError) as inactive:
        fresh.get_caller_identity()
    assert _code(inactive) == "InvalidClientTokenId"
    iam.delete_access_key(AccessKeyId=new["AccessKeyId"])
    with pytest.raises(ClientError) as gone:
        iam.delete_access_key(AccessKeyId=new["AccessKeyId"])
    assert _code(gone) == "NoSuchEntity"


def test_mfa_policy_and_sessions_outliving_their_key(sandbox_clean: SandboxHandle) -> None:
    user, dev = sandbox_clean.new_user_with_mfa("mfapol")
    remember(user.secret_access_key, dev.seed)
    sandbox_clean.admin.set_user_policy(user, require_mfa=True)
    with pytest.raises(ClientError) as denied:
        sandbox_clean.user_client("iam", user).create_access_key()
    assert _code(denied) == "AccessDenied" and "explicit deny" in str(denied.value)
    sts = sandbox_clean.user_client("sts", user)
    code = pyotp.TOTP(dev.seed).now()
    session = sts.get_session_token(SerialNumber=dev.serial, TokenCode=code)["Credentials"]
    remember(session["SecretAccessKey"], session["SessionToken"])
    iam = sandbox_clean.session_client("iam", session)
    new = iam.create_access_key()["AccessKey"]
    remember(new["SecretAccessKey"])
    iam.delete_access_key(AccessKeyId=user.access_key_id)  # the key behind the session
    ident = sandbox_clean.session_client("sts", session).get_caller_identity()
    assert ident["Arn"] == user.arn  # the session stays valid until it expires
    assert [k["AccessKeyId"] for k in iam.list_access_keys()["AccessKeyMetadata"]] == [
        new["AccessKeyId"]
    ]
