"""The sandbox's test knobs and counters, as boto3 sees them."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from credd_sandbox import SandboxError
from tests.fixtures.sandbox import SandboxHandle

pytestmark = pytest.mark.integration


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_fail_next_n_calls(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    sts = sb.user_client("sts", user)
    sb.admin.set_fail("ServiceUnavailable", 503, count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            sts.get_session_token(DurationSeconds=900)
        assert code_of(exc) == ("ServiceUnavailable", 503)
    sts.get_session_token(DurationSeconds=900)
    assert sb.admin.call_stats()["actions"]["GetSessionToken"] == {"total": 3, "ok": 1, "error": 2}
    assert sb.admin.knobs() == {}


def test_fail_until_cleared_only_for_chosen_actions(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user())
    sb.admin.set_fail("AccessDenied", 403, "nope", actions=["GetSessionToken"])
    for _ in range(3):
        with pytest.raises(ClientError) as exc:
            sts.get_session_token()
        assert code_of(exc) == ("AccessDenied", 403)
    sts.get_caller_identity()  # other actions unaffected
    sb.admin.clear_knobs()
    sts.get_session_token()


def test_throttle(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user())
    sb.admin.set_throttle(count=1)
    with pytest.raises(ClientError) as exc:
        sts.get_caller_identity()
    assert code_of(exc) == ("Throttling", 400)
    assert exc.value.response["Error"]["Message"] == "Rate exceeded"
    sts.get_caller_identity()


def test_throttled_call_is_retried_by_botocore(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user(), retries={"mode": "standard", "max_attempts": 3})
    sb.admin.set_throttle(count=2)
    assert sts.get_caller_identity()["ResponseMetadata"]["RetryAttempts"] == 2
    assert sb.admin.calls("GetCallerIdentity") == 3


def test_slow_makes_client_time_out(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    sb.admin.set_slow(2.0, count=1)
    impatient = sb.user_client("sts", user, read_timeout=0.2, connect_timeout=2)
    with pytest.raises(ReadTimeoutError):
        impatient.get_caller_identity()
    sb.admin.set_slow(0.05, count=1)
    assert sb.user_client("sts", user).get_caller_identity()["Arn"] == user.arn


def test_down_drops_connections_and_admin_still_answers(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    user = sb.new_user()
    sts = sb.user_client("sts", user)
    s3 = sb.user_client("s3", user)
    sb.admin.set_down()
    with pytest.raises(ConnectionClosedError):
        sts.get_caller_identity()
    s3.list_buckets()  # down is scoped to STS by default
    assert sb.admin.knobs()["down"]["kind"] == "down"
    sb.admin.set_down(services="*")
    with pytest.raises(ConnectionClosedError):
        s3.list_buckets()
    assert sb.admin.call_stats()["dropped"] == 2
    sb.admin.set_down(False)
    assert sts.get_caller_identity()["Arn"] == user.arn


def test_down_for_n_calls_then_back(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    sts = sb.user_client("sts", sb.new_user(), retries={"mode": "standard", "max_attempts": 3})
    sb.admin.set_down(count=2)
    assert sts.get_caller_identity()["ResponseMetadata"]["RetryAttempts"] == 2


def test_counters_per_action_and_key_and_reset(sandbox_clean: SandboxHandle) -> None:
    sb = sandbox_clean
    a, b = sb.new_user("a"), sb.new_user("b")
    for _ in range(3):
        sb.user_client("sts", a).get_caller_identity()
    sb.user_client("sts", b).get_session_token(DurationSeconds=900)
    assert sb.admin.calls("GetCallerIdentity") == 3
    assert sb.admin.calls() == {"GetCallerIdentity": 3, "GetSessionToken": 1}
    assert sb.admin.calls_by_key(a.access_key_id) == {"GetCallerIdentity": 3}
    assert sb.admin.calls_by_key(b.access_key_id) == {"GetSessionToken": 1}
    sb.admin.reset()
    assert sb.admin.calls() == {}


def test_a_call_still_running_at_a_reset_is_not_counted_after_it(
    sandbox_clean: SandboxHandle,
) -> None:
    """The cause of a flaky count: a slow call whose client gave up (a timeout in an earlier
    test) ends after the next test's reset; it belongs to the counts that were cleared."""
    sb = sandbox_clean
    user = sb.new_user()
    sb.admin.set_slow(1.0, count=1, actions=["GetCallerIdentity"])
    impatient = sb.user_client("sts", user, read_timeout=0.2, connect_timeout=2)
    with pytest.raises(ReadTimeoutError):
        impatient.get_caller_identity()
    sb.admin.reset()
    deadline = time.monotonic() + 30
    while sb.admin.call_stats()["in_flight"]:  # until the slow call has ended
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert sb.admin.calls() == {}
    sb.user_client("sts", user).get_caller_identity()
    assert sb.admin.calls_by_key(user.access_key_id) == {"GetCallerIdentity": 1}


def test_admin_rejects_bad_input(sandbox_clean: SandboxHandle) -> None:
    admin = sandbox_clean.admin
    user = sandbox_clean.new_user()
    cases: list[tuple[Callable[[], object], int]] = [
        (lambda: admin.create_user("bad name!"), 400),
        (lambda: admin.create_user(user.name), 409),
        (lambda: admin.create_mfa_device("no-such-user-anywhere"), 404),
        (lambda: admin.create_role("r-bad", max_session_duration=60), 400),
        (lambda: admin.set_slow(-1), 400),
        (lambda: admin.set_fail(status=200), 400),
        (lambda: admin.set_min_duration(901), 400),
        (lambda: admin.set_totp_clock("moon"), 400),
        (lambda: admin.request("POST", "knobs/explode", {}), 404),
        (lambda: admin.request("GET", "no/such/route"), 404),
    ]
    for call, status in cases:
        with pytest.raises(SandboxError) as exc:
            call()
        assert exc.value.status == status
    assert admin.knobs() == {}


def test_admin_client_reports_unreachable_sandbox() -> None:
    from credd_sandbox import AdminClient

    with pytest.raises(SandboxError) as exc:
        AdminClient("http://127.0.0.1:9", timeout=2).health()
    assert "unreachable" in str(exc.value)
