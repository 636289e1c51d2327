"""When an MFA code counts as spent (credd.sources.mfa_call), against the sandbox's strict STS
(each code accepted once per device) with its throttle / fail / slow knobs and a TOTP profile.

A call throttled or failed with a 5xx never reached a decision on the code: the retry uses the
same step's code at once. A call that timed out after sending may have used it (the sandbox does
process it): the retry waits for the next step instead of sending a code AWS would refuse.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from credd.aws import config as awsconfig
from credd.aws.clients import ClientFactory
from credd.clock import UTC
from credd.engine.manager import Manager
from credd.engine.scheduler import RefreshPolicy
from credd.plan.planner import Node
from credd.sources import build_source
from credd.sources.mfa import STEP, CodeLedger
from credd.sources.mfa_call import may_have_consumed
from credd.testing.scheduler import ManualScheduler
from tests.fixtures.daemon import remember, services_section
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.test_roles import SandboxClock

pytestmark = pytest.mark.integration


def totp_manager(
    home: Path, sandbox: SandboxHandle, store: Any, clients: ClientFactory
) -> tuple[Manager, ManualScheduler, SandboxClock]:
    user, device = sandbox.new_user_with_mfa("spent")
    remember(user.secret_access_key, device.seed)
    store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    store.set_totp_seed("user", device.seed)
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(
        "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        + services_section(sandbox.endpoint)
    )
    now = int(datetime.now(UTC).timestamp())
    clock = SandboxClock(sandbox, datetime.fromtimestamp(now - now % STEP + 1, UTC))
    ledger = CodeLedger(clock)

    def factory(node: Node) -> Any:
        return build_source(node, secrets=store, clients=clients, ledger=ledger, clock=clock
        )

    scheduler = ManualScheduler(clock)
    manager = Manager(
        source_factory=factory,
        scheduler=scheduler,
        clock=clock,
        policy=RefreshPolicy(jitter=0.0),
        wait_timeout=30,
    )
    manager.load(awsconfig.load())
    return manager, scheduler, clock


def step_of(when: datetime | None) -> int:
    assert when is not None
    return int(when.timestamp()) // STEP


@pytest.mark.parametrize("fault", ["throttle", "5xx"])
def test_a_code_sent_in_a_throttled_or_failed_call_is_used_again_in_the_same_step(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any, fault: str
) -> None:
    admin = sandbox_clean.admin
    manager, scheduler, clock = totp_manager(
        clean_env, sandbox_clean, keyring_env.store(), ClientFactory()
    )
    first_step = step_of(clock.now())
    if fault == "throttle":  # both of botocore's attempts
        admin.set_throttle(count=2, actions=["GetSessionToken"])
    else:
        admin.set_fail("ServiceUnavailable", 503, count=2, actions=["GetSessionToken"])
    manager.start()
    scheduler.run_for(0)
    assert manager.profile_status("user").state == "backoff"
    scheduler.run_for(10)  # the first backoff: 2.5 s (no jitter)
    status = manager.profile_status("user")
    assert status.state == "fresh", status
    assert clock.slept == []  # nobody waited for the next step
    assert step_of(status.last_refresh_at) == first_step
    assert admin.calls("GetSessionToken") == 3  # 2 refused before processing, 1 accepted
    manager.stop()


def test_a_code_sent_in_a_call_that_timed_out_waits_for_the_next_step(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any
) -> None:
    """The sandbox keeps processing a call whose client gave up, as AWS may: the code is used
    there, so sending it again would be refused as a reuse."""
    admin = sandbox_clean.admin
    clients = ClientFactory(read_timeout=2.0)  # ample for the answered calls on a busy machine
    manager, scheduler, clock = totp_manager(clean_env, sandbox_clean, keyring_env.store(), clients)
    admin.set_slow(4.0, count=2, actions=["GetSessionToken"])  # both of botocore's attempts
    manager.start()
    scheduler.run_for(0)
    assert manager.profile_status("user").state == "backoff"
    scheduler.run_for(STEP + 10)
    status = manager.profile_status("user")
    assert status.state == "fresh", status
    assert sum(clock.slept) > 0  # waited (on the clock) for a step not yet used
    assert status.error is None  # the code was not sent again: no refusal as a reuse
    manager.stop()


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status


@pytest.mark.parametrize(
    ("status", "code", "spent"),
    [
        (200, None, True),
        (403, "AccessDenied", True),  # a decision: rejected
        (403, "InvalidClientTokenId", True),  # processed far enough to refuse
        (400, "Throttling", False),
        (429, "TooManyRequestsException", False),
        (500, "InternalFailure", False),
        (503, "ServiceUnavailable", False),
    ],
)
def test_which_answers_spend_a_code(status: int, code: str | None, spent: bool) -> None:
    parsed = {"Error": {"Code": code}} if code else {}
    assert may_have_consumed((_Http(status), parsed)) is spent


def test_which_failures_without_an_answer_spend_a_code() -> None:
    import botocore.exceptions as bx

    never_sent = bx.EndpointConnectionError(endpoint_url="https://sts.amazonaws.com")
    assert may_have_consumed(caught_exception=never_sent) is False
    assert may_have_consumed(caught_exception=bx.ConnectTimeoutError(endpoint_url="x")) is False
    assert may_have_consumed(caught_exception=bx.ReadTimeoutError(endpoint_url="x")) is True
    closed = bx.ConnectionClosedError(endpoint_url="x")
    assert may_have_consumed(caught_exception=closed) is True
    assert may_have_consumed(caught_exception=RuntimeError("unknown")) is True
    assert may_have_consumed() is True  # no outcome at all: the safe side
