"""S3, SQS and IAM calls forwarded to moto, authenticated by the gateway first."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fixtures.sandbox import SandboxHandle, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def session_creds(sandbox_clean: SandboxHandle) -> dict[str, Any]:
    user = sandbox_clean.new_user()
    sts = sandbox_clean.user_client("sts", user)
    creds: dict[str, Any] = sts.get_session_token(DurationSeconds=900)["Credentials"]
    return creds


def test_s3_put_get_list_with_session_credentials(
    sandbox_clean: SandboxHandle, session_creds: dict[str, Any]
) -> None:
    s3 = sandbox_clean.session_client("s3", session_creds)
    urls: list[str] = []
    s3.meta.events.register("before-send.s3", lambda request, **_: urls.append(request.url))
    bucket = unique_name("bucket")
    s3.create_bucket(Bucket=bucket)
    keys = ["plain.txt", "dir/with space.txt", "dir/ünïcode+plus=&.bin"]
    for n, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * (n * 70_000 + 1))
    assert s3.get_object(Bucket=bucket, Key=keys[2])["Body"].read() == b"x" * 140_001
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(keys[1:])
    assert s3.head_object(Bucket=bucket, Key=keys[0])["ContentLength"] == 1
    # botocore uses path-style addressing against an IP endpoint: the bucket is in the path.
    assert all(url.startswith(f"{sandbox_clean.endpoint}/{bucket}") for url in urls[:2])
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="missing")
    assert exc.value.response["Error"]["Code"] == "NoSuchKey"  # moto's answer, passed through
    unsigned = sandbox_clean.session_client(
        "s3", session_creds, s3={"payload_signing_enabled": False}
    )
    sent: list[str] = []
    unsigned.meta.events.register(
        "before-send.s3",
        lambda request, **_: sent.append(request.headers.get("X-Amz-Content-SHA256", b"")),
    )
    unsigned.put_object(Bucket=bucket, Key="unsigned", Body=b"payload not hashed")
    assert sent[-1] in ("UNSIGNED-PAYLOAD", b"UNSIGNED-PAYLOAD")
    assert s3.get_object(Bucket=bucket, Key="unsigned")["Body"].read() == b"payload not hashed"


def test_s3_rejects_bad_signature_and_unknown_key(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    with pytest.raises(ClientError) as exc:
        sb.client("s3", user.access_key_id, "wrong" * 8).list_buckets()
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as exc:
        sb.client("s3", "AKIANOBODYNOBODY0000", "x" * 40).list_buckets()
    assert exc.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_sqs_send_receive_with_session_credentials(
    sandbox_clean: SandboxHandle, session_creds: dict[str, Any]
) -> None:
    sqs = sandbox_clean.session_client("sqs", session_creds)
    url = sqs.create_queue(QueueName=unique_name("queue"))["QueueUrl"]
    assert url.startswith(sandbox_clean.endpoint)  # moto builds it from the gateway's Host
    sqs.send_message(QueueUrl=url, MessageBody="hello through the gateway")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert [m["Body"] for m in messages] == ["hello through the gateway"]
    assert sandbox_clean.admin.calls_by_key(session_creds["AccessKeyId"]) == {
        "CreateQueue": 1,
        "SendMessage": 1,
        "ReceiveMessage": 1,
    }


def test_sqs_unknown_key_gets_json_error(sandbox_clean: SandboxHandle) -> None:
    sqs = sandbox_clean.client("sqs", "AKIANOBODYNOBODY0000", "x" * 40)
    with pytest.raises(ClientError) as exc:
        sqs.list_queues()
    assert exc.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_moto_side_iam_knows_sandbox_users(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    iam = sb.user_client("iam", user)
    assert iam.get_user(UserName=user.name)["User"]["Arn"] == user.arn
    keys = iam.list_access_keys(UserName=user.name)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [user.access_key_id]
    role = sb.admin.create_role(unique_name("role"), trusted=[user.arn], max_session_duration=7200)
    assert iam.get_role(RoleName=role.name)["Role"]["MaxSessionDuration"] == 7200


def test_iam_needs_mfa_backed_session(
    sandbox_clean: SandboxHandle, session_creds: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as exc:
        sandbox_clean.session_client("iam", session_creds).list_users()
    assert exc.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_unsigned_request_rejected(sandbox_clean: SandboxHandle) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - the sandbox's http URL
        sandbox_clean.endpoint + "/",
        data=b"Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as exc:
        opener.open(request, timeout=10)
    assert exc.value.code == 403
    assert b"MissingAuthenticationToken" in exc.value.read()
