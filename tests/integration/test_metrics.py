"""The manager's and the sources' counters (credd_refreshes_total, credd_refresh_failures_total,
credd_aws_calls_total) against the sandbox's STS: exact counts for a real refresh cycle."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from credd import metrics
from credd.clock import UTC
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.test_roles import SandboxClock, calls, in_process_manager, setup_roles

pytestmark = pytest.mark.integration

SERIES = [
    (metrics.REFRESHES, ("user", "success")),
    (metrics.REFRESHES, ("r0", "success")),
    (metrics.REFRESHES, ("r1", "success")),
    (metrics.REFRESHES, ("user", "needs_mfa")),
    (metrics.REFRESHES, ("r0", "needs_mfa")),
    (metrics.FAILURES, ("needs_mfa",)),
    (metrics.AWS_CALLS, ("sts", "GetSessionToken", "ok")),
    (metrics.AWS_CALLS, ("sts", "AssumeRole", "ok")),
]


def snapshot() -> list[float]:
    return [metrics.REGISTRY.value(family, *labels) for family, labels in SERIES]


@pytest.mark.timeout(120)
def test_refreshes_failures_and_sts_calls_are_counted(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any
) -> None:
    store = keyring_env.store()
    setup_roles(clean_env, sandbox_clean, store, 2, seed=True)
    clock = SandboxClock(sandbox_clean, datetime.now(UTC).replace(microsecond=0))
    before = snapshot()
    manager, sched = in_process_manager(clock, store)
    sched.run_for(60)
    after = snapshot()
    delta = [b - a for a, b in zip(before, after, strict=True)]
    assert calls(sandbox_clean) == (1, 2)
    # one MFA session and two roles, all fresh; no failure; the STS calls the sandbox saw
    assert delta == [1, 1, 1, 0, 0, 0, 1, 2]
    manager.stop()

    store.delete_totp_seed("user")  # from now on a person must type the code
    before = snapshot()
    manager, sched = in_process_manager(clock, store)
    sched.run_for(60)
    delta = [b - a for a, b in zip(before, snapshot(), strict=True)]
    states = {s.name: s.state for s in manager.status()}
    assert states == {"user": "needs_mfa", "r0": "needs_mfa", "r1": "needs_mfa"}
    assert delta == [0, 0, 0, 1, 1, 3, 0, 0]
    manager.stop()
