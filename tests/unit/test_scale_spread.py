"""1,000 profiles made fresh together do not renew in the same second (issue 9): the policy's
jitter spreads unattended renewals over a tenth of the lead (2 min for 1 h roles)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

from credd.engine.scheduler import RefreshPolicy
from credd.testing.clock import FakeClock


def test_a_thousand_sessions_issued_together_renew_spread_out() -> None:
    issued = FakeClock().now()
    rng = random.Random(9)
    policy = RefreshPolicy()
    times = [
        policy.refresh_at(issued, issued + timedelta(hours=1), unattended=True, rng=rng)
        for _ in range(1000)
    ]
    per_second = Counter(int((t - issued).total_seconds()) for t in times)
    assert max(times) - min(times) > timedelta(seconds=100)  # spread over ~2 min
    assert max(per_second.values()) <= 30  # ~8 a second on average, never a burst of 1,000
    assert all(issued + timedelta(hours=1) - t >= policy.min_lead for t in times)
