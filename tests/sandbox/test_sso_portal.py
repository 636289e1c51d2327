"""The SSO portal in the sandbox, with botocore's ``sso`` client: role credentials that the
SigV4 gateway (strict STS, moto S3) accepts, assignments, token checks, pagination, logout,
lifetimes and knobs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from credd_sandbox import SandboxError
from tests.fixtures.sandbox import SandboxHandle, unique_name
from tests.sandbox.test_sso_oidc import ROLE, Idc, code, make_idc, sso_clients

pytestmark = pytest.mark.integration


@pytest.fixture
def idc(sandbox_clean: SandboxHandle) -> Idc:
    return make_idc(sandbox_clean)


def session_client(sb: SandboxHandle, service: str, creds: dict[str, Any]) -> Any:
    return sb.client(service, creds["accessKeyId"], creds["secretAccessKey"], creds["sessionToken"])


def test_role_credentials_work_against_sts_and_s3(idc: Idc) -> None:
    token = idc.device_token()
    before = idc.sb.admin.now()
    creds = idc.role_credentials(token["accessToken"])
    expires = datetime.fromtimestamp(creds["expiration"] / 1000, timezone.utc)
    assert 3590 <= (expires - before).total_seconds() <= 3610  # the permission set's hour
    ident = session_client(idc.sb, "sts", creds).get_caller_identity()
    reserved = idc.assignment.role_arn.rsplit("/", 1)[-1]
    assert reserved.startswith(f"AWSReservedSSO_{ROLE}_")
    assert ident["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{reserved}/{idc.user.name}"
    s3 = session_client(idc.sb, "s3", creds)
    bucket = unique_name("sso")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"via sso")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"via sso"
    again = idc.role_credentials(token["accessToken"])
    assert again["accessKeyId"] != creds["accessKeyId"]  # every call: new keys
    assert idc.sb.admin.calls("GetRoleCredentials") == 2


def test_unassigned_roles_and_accounts_are_refused(idc: Idc) -> None:
    admin = idc.sb.admin
    token = idc.device_token()
    admin.assign_sso_role(idc.user, "ReadOnly", start_url=idc.instance)
    assert idc.role_credentials(token["accessToken"], "ReadOnly")
    for role, account in [("Billing", "123456789012"), (ROLE, "210987654321")]:
        with pytest.raises(ClientError) as exc:
            idc.portal.get_role_credentials(
                roleName=role, accountId=account, accessToken=token["accessToken"]
            )
        assert code(exc) == "ForbiddenException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    admin.unassign_sso_role(idc.user, "ReadOnly", start_url=idc.instance)
    with pytest.raises(ClientError) as exc:
        idc.role_credentials(token["accessToken"], "ReadOnly")
    assert code(exc) == "ForbiddenException"
    other = admin.create_sso_user(unique_name("other"), start_url=idc.instance)
    with pytest.raises(SandboxError) as err:
        admin.unassign_sso_role(other, ROLE, start_url=idc.instance)
    assert err.value.status == 404


def test_expired_unknown_and_logged_out_tokens_are_refused(idc: Idc) -> None:
    token = idc.device_token()
    with pytest.raises(ClientError) as exc:
        idc.role_credentials("aoa" + "x" * 40)
    assert code(exc) == "UnauthorizedException"
    assert exc.value.response["Error"]["Message"] == "Session token not found or invalid"
    idc.sb.admin.advance(3600)
    with pytest.raises(ClientError) as exc:
        idc.role_credentials(token["accessToken"])
    assert code(exc) == "UnauthorizedException"
    with pytest.raises(ClientError) as exc:
        idc.portal.list_accounts(accessToken=token["accessToken"])
    assert code(exc) == "UnauthorizedException"
    fresh = idc.refresh(token)
    idc.portal.logout(accessToken=fresh["accessToken"])
    with pytest.raises(ClientError) as exc:
        idc.role_credentials(fresh["accessToken"])
    assert code(exc) == "UnauthorizedException"
    with pytest.raises(ClientError) as exc:
        idc.refresh(fresh)  # logout ends the session
    assert code(exc) == "InvalidGrantException"


def test_list_accounts_and_roles_paginate(idc: Idc) -> None:
    admin = idc.sb.admin
    for account in ("111111111111", "222222222222"):
        admin.assign_sso_role(
            idc.user, "Dev", start_url=idc.instance, account_id=account, account_name=f"a{account}"
        )
    admin.assign_sso_role(idc.user, "Dev", start_url=idc.instance)
    token = idc.device_token()["accessToken"]
    pages = list(
        idc.portal.get_paginator("list_accounts").paginate(
            accessToken=token, PaginationConfig={"PageSize": 1}
        )
    )
    assert len(pages) == 3
    accounts = [a for p in pages for a in p["accountList"]]
    assert [a["accountId"] for a in accounts] == ["111111111111", "123456789012", "222222222222"]
    assert accounts[0]["accountName"] == "a111111111111"
    roles = [
        r["roleName"]
        for p in idc.portal.get_paginator("list_account_roles").paginate(
            accessToken=token, accountId="123456789012", PaginationConfig={"PageSize": 1}
        )
        for r in p["roleList"]
    ]
    assert roles == [ROLE, "Dev"]
    listed = idc.portal.list_account_roles(accessToken=token, accountId="999999999999")
    assert listed["roleList"] == []
    with pytest.raises(ClientError) as exc:
        idc.portal.list_accounts(accessToken=token, nextToken="garbage!")
    assert code(exc) == "InvalidRequestException"


def test_portal_page_size_caps_every_page_and_role_credentials_name_their_account(
    idc: Idc,
) -> None:
    admin = idc.sb.admin
    for account in ("111111111111", "222222222222"):
        admin.assign_sso_role(idc.user, "Dev", start_url=idc.instance, account_id=account)
    admin.set_sso_settings(portal_page_size=2)
    token = idc.device_token()["accessToken"]
    first = idc.portal.list_accounts(accessToken=token, maxResults=100)
    assert len(first["accountList"]) == 2 and first["nextToken"]
    rest = idc.portal.list_accounts(accessToken=token, nextToken=first["nextToken"])
    assert len(rest["accountList"]) == 1 and "nextToken" not in rest
    with pytest.raises(SandboxError, match="portal_page_size"):
        admin.set_sso_settings(portal_page_size=0)
    creds = idc.portal.get_role_credentials(
        roleName="Dev", accountId="222222222222", accessToken=token
    )["roleCredentials"]
    ident = session_client(idc.sb, "sts", creds).get_caller_identity()
    assert ident["Account"] == "222222222222"
    assert ident["Arn"].startswith("arn:aws:sts::222222222222:assumed-role/AWSReservedSSO_Dev_")
    admin.reset()
    assert admin.sso_settings()["portal_page_size"] == 20


def test_permission_set_lifetime_and_min_duration(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    idc = make_idc(sb, session_duration=43200)
    token = idc.device_token()
    creds = idc.role_credentials(token["accessToken"])
    expires = datetime.fromtimestamp(creds["expiration"] / 1000, timezone.utc)
    assert 43190 <= (expires - sb.admin.now()).total_seconds() <= 43200
    for bad in (900, 43201):
        with pytest.raises(SandboxError) as err:
            sb.admin.assign_sso_role(
                idc.user, "Short", start_url=idc.instance, session_duration=bad
            )
        assert err.value.status == 400
    sb.admin.set_min_duration(60)  # the demo's relaxation applies to permission sets too
    sb.admin.assign_sso_role(idc.user, "Short", start_url=idc.instance, session_duration=120)
    short = idc.role_credentials(token["accessToken"], "Short")
    sts = session_client(sb, "sts", short)
    assert sts.get_caller_identity()["Arn"].endswith(f"/{idc.user.name}")
    sb.admin.advance(121)
    with pytest.raises(ClientError) as exc:
        sts.get_caller_identity()
    assert code(exc) == "ExpiredToken"


def test_sso_credentials_chain_into_a_role(idc: Idc) -> None:
    role = idc.sb.admin.create_role(unique_name("role"), trusted=[idc.assignment.role_arn])
    creds = idc.role_credentials(idc.device_token()["accessToken"])
    chained = session_client(idc.sb, "sts", creds).assume_role(
        RoleArn=role.arn, RoleSessionName="on-top-of-sso"
    )
    assert chained["AssumedRoleUser"]["Arn"].endswith(f"{role.name}/on-top-of-sso")


def test_knobs_on_the_portal(idc: Idc) -> None:
    admin = idc.sb.admin
    token = idc.device_token()["accessToken"]
    admin.set_fail(services="sso", actions=["GetRoleCredentials"], count=1)
    with pytest.raises(ClientError) as exc:
        idc.role_credentials(token)
    assert code(exc) == "InternalFailure"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert idc.portal.list_accounts(accessToken=token)["accountList"]
    admin.set_throttle(services="sso", count=1)
    with pytest.raises(ClientError) as exc:
        idc.portal.list_accounts(accessToken=token)
    assert code(exc) == "TooManyRequestsException"
    admin.set_down(services="sso", count=1)
    with pytest.raises(ConnectionClosedError):
        idc.role_credentials(token)
    assert idc.role_credentials(token)["accessKeyId"]
    stats = admin.call_stats()["actions"]["GetRoleCredentials"]
    assert stats == {"total": 2, "ok": 1, "error": 1}  # the dropped one never reached it
    assert admin.call_stats()["dropped"] == 1
    _, impatient = sso_clients(idc.sb, read_timeout=0.5)
    admin.set_slow(1.5, services="sso", actions=["ListAccounts"], count=1)
    with pytest.raises(ReadTimeoutError):
        impatient.list_accounts(accessToken=token)


def test_sso_requests_do_not_open_a_way_around_sigv4(sandbox_clean: SandboxHandle) -> None:
    """Unsigned requests still fail everywhere else, and signed ones are not treated as SSO."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for path in ("/", "/some-bucket", "/?Action=GetCallerIdentity&Version=2011-06-15"):
        with pytest.raises(urllib.error.HTTPError) as exc:
            opener.open(sandbox_clean.endpoint + path, timeout=10)
        assert exc.value.code == 403
        assert b"MissingAuthenticationToken" in exc.value.read()
    user = sandbox_clean.new_user()
    s3 = sandbox_clean.user_client("s3", user)
    s3.create_bucket(Bucket="token")  # a bucket on an SSO path, signed: S3 as before
    s3.put_object(Bucket="token", Key="k", Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="token")["Contents"]] == ["k"]
