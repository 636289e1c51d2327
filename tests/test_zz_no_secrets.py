"""Runs last: no secret created or served during the run appears in any log the run produced."""

from __future__ import annotations

import pytest

from tests.fixtures.daemon import KNOWN_SECRETS, LOG_DIR, LOG_FILES

pytestmark = pytest.mark.integration


def test_no_secret_in_any_log_of_the_run() -> None:
    files = {f for d in LOG_DIR for f in d.glob("*.log")} | {f for f in LOG_FILES if f.exists()}
    if not files or not KNOWN_SECRETS:
        pytest.skip("nothing to scan: run together with the integration tests")
    scanned = 0
    for path in sorted(files):
        text = path.read_text(errors="replace")
        scanned += len(text)
        for secret in KNOWN_SECRETS:
            assert secret not in text, f"a secret appears in {path.name}"
    assert scanned > 0
