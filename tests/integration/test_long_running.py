"""Long-running programs across at least five role rotations with zero failed calls: seed 002's
SQS subscriber and seed 000's upload loop, both through ``credential_process = credd get``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonFactory, remember

pytestmark = pytest.mark.integration
PROGRAMS = Path(__file__).resolve().parents[1] / "programs"


@pytest.mark.timeout(300)
def test_subscriber_and_uploader_survive_five_rotations(daemons: DaemonFactory) -> None:
    sandbox = daemons.sandbox
    sandbox.admin.set_min_duration(20)  # sandbox-only: 20 s role sessions, rotating every ~10 s
    user, dev = sandbox.new_user_with_mfa("runner")
    remember(user.secret_access_key, dev.seed)
    daemons.store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("user", dev.seed)
    role = sandbox.admin.create_role(f"worker-{user.name}", trusted=[user.arn], mfa_required=True)
    sock = daemons.home / "run" / "credd.sock"
    daemons.write_config(
        "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"[profile worker]\nrole_arn = {role.arn}\nsource_profile = user\nduration_seconds = 20\n"
        "credd = true\nregion = us-east-1\nservices = sandbox\n"
        "[profile app]\nregion = us-east-1\nservices = sandbox\n"
        f"credential_process = {sys.executable} -m credd.cli get worker --socket {sock}\n"
    )
    d = daemons.start(CREDD_MIN_SESSION_SECONDS="20")
    d.wait_state("worker", "fresh")
    env = daemons.env()
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(PROGRAMS / f"{name}.py"), "--profile", "app", "--sessions", "6"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("subscriber", "uploader")
    }
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=240)
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        assert lines and "failed" in lines[-1], out[-2000:]
        results[name] = lines[-1]
        assert [x for x in lines if "error" in x] == [], out[-2000:]
    sub, up = results["subscriber"], results["uploader"]
    assert sub["failed"] == 0 and sub["sessions"] >= 6, sub  # >= 5 rotations
    assert sub["received"] >= sub["sent"] - 10 and sub["sent"] > 20, sub
    assert sub["min_left"] > 0, sub  # never an expired credential
    assert up["failed"] == 0 and up["sessions"] >= 6 and up["listed"] == up["uploads"], up
    # one MFA session fed every role rotation
    assert sandbox.admin.calls("GetSessionToken") == 1
