"""The lifetime guard against the sandbox's strict STS (role chaining capped at 1 h): an
impossible wish fails at once naming the cap, with no STS call; a possible one refreshes once
(single-flight) when the held credentials end sooner. Through the manager, the socket
(``credd get --min-lifetime``) and the endpoints' ``X-Credd-Min-Lifetime``."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.errors import LifetimeUnavailable, RequestError
from credd.plan import lifetime
from credd.server.api import Api
from credd.server.imds import TOKEN_HEADER as TOKEN
from credd.server.imds import TTL_HEADER as TTL
from credd.server.imds import ImdsApi, ImdsServer
from credd.server.unix import UnixServer
from tests.fixtures.daemon import remember
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.test_roles import SandboxClock, calls, in_process_manager, setup_roles

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_guard_fails_fast_on_the_chain_cap_and_refreshes_once_when_possible(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any, tmp_path: Path
) -> None:
    store = keyring_env.store()
    setup_roles(clean_env, sandbox_clean, store, 1, seed=True)
    clock = SandboxClock(sandbox_clean, datetime.now(UTC).replace(microsecond=0))
    manager, _ = in_process_manager(clock, store)  # jobs never run unless asked: no drift
    first = manager.credentials("r0")
    remember(first.secret_access_key, first.session_token)
    assert manager.profile_status("r0").longest == {
        "seconds": 3600,
        "why": "role chaining (a role assumed from session or role credentials) is capped at 1 h",
    }
    assert manager.profile_status("user").longest["seconds"] == 43200  # type: ignore[index]
    before = calls(sandbox_clean)

    # 2 h from a chained role: impossible, said at once, no STS call
    with pytest.raises(LifetimeUnavailable) as info:
        manager.credentials_lasting("r0", timedelta(hours=2))
    assert "at most 1h" in info.value.message and "role chaining" in info.value.message
    assert calls(sandbox_clean) == before

    # 35 min later the held role session has 25 min left: a 30 min guard refreshes once, and
    # eight callers at once share that one AssumeRole
    clock.advance(35 * 60)
    got: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda: got.append(manager.credentials_lasting("r0", timedelta(minutes=30)))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 8 and len({c.access_key_id for c in got}) == 1
    assert got[0].access_key_id != first.access_key_id
    remember(got[0].secret_access_key, got[0].session_token)
    assert got[0].remaining(clock.now()) >= timedelta(minutes=30)
    assert calls(sandbox_clean) == (before[0], before[1] + 1)  # one AssumeRole, no new session
    # the fresh ones last: no more calls for the same guard
    manager.credentials_lasting("r0", timedelta(minutes=30))
    assert calls(sandbox_clean) == (before[0], before[1] + 1)

    # over the socket: credd get --min-lifetime, the real command
    server = UnixServer(tmp_path / "s" / "credd.sock", Api(manager, clock))
    server.start()
    try:

        def get(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "credd.cli", "get", "r0", "--socket",
                 str(server.address), *args],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        refused = get("--min-lifetime", "2h")
        assert refused.returncode == LifetimeUnavailable.exit_code and refused.stdout == ""
        assert "at most 1h" in refused.stderr and "role chaining" in refused.stderr
        ok = get("--min-lifetime=30m")
        assert ok.returncode == 0 and '"AccessKeyId"' in ok.stdout
        refused_exec = subprocess.run(
            [sys.executable, "-m", "credd.cli", "exec", "--min-lifetime", "2h",
             "--socket", str(server.address), "r0", "--", "sh", "-c", "echo ran"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused_exec.returncode == LifetimeUnavailable.exit_code
        assert "ran" not in refused_exec.stdout and "role chaining" in refused_exec.stderr
        bad = get("--min-lifetime", "forever")
        assert bad.returncode == RequestError.exit_code and "36h" in bad.stderr
    finally:
        server.stop(2.0)

    # the IMDS endpoint takes the same header (as does the container endpoint: one code path)
    imds = ImdsServer(ImdsApi(manager, "r0", clock), port=0)
    imds.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", imds.port, timeout=30)
        conn.request("PUT", "/latest/api/token", headers={TTL: "60"})
        token = conn.getresponse().read().decode()
        path = "/latest/meta-data/iam/security-credentials/r0"
        for wish, status in (("2h", 409), ("30m", 200)):
            conn.request("GET", path, headers={TOKEN: token, "X-Credd-Min-Lifetime": wish})
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert resp.status == status, body
        assert body["Code"] == "Success"
        conn.close()
    finally:
        imds.stop(2.0)
    manager.stop()


def test_limits_from_the_plan_and_a_person() -> None:
    for text, seconds in (("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("7200", 7200)):
        assert lifetime.parse_min_lifetime(text) == timedelta(seconds=seconds)
    for bad in ("0", "37h", "x", "-5", ""):
        with pytest.raises(RequestError):
            lifetime.parse_min_lifetime(bad)
    chain = lifetime.Longest(3600, "role chaining ... 1 h")
    lifetime.check_possible("r", chain, timedelta(minutes=59), needs_person=None)
    with pytest.raises(LifetimeUnavailable, match="at most 1h"):
        lifetime.check_possible("r", chain, timedelta(hours=2), needs_person=None)
    with pytest.raises(LifetimeUnavailable, match="only a person") as info:
        lifetime.check_possible("u", chain, timedelta(minutes=30), needs_person="credd mfa u")
    assert info.value.hint == "run credd mfa u, then try again"
    unknown = lifetime.Longest(None, "the permission set's session duration (not seen yet)")
    lifetime.check_possible("s", unknown, timedelta(hours=11), needs_person=None)
