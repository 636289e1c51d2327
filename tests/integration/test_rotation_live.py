"""Rotation while long-running programs call S3 through ``credential_process`` and the container
endpoint: 0 failed calls, no daemon restart, no MFA code (the daemon's MFA session signs the IAM
calls, even under a policy that requires MFA), and the daemon's next refresh uses the new key."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonFactory, remember

pytestmark = pytest.mark.integration
PROGRAMS = Path(__file__).resolve().parents[1] / "programs"


@pytest.mark.timeout(300)
def test_rotation_under_load_with_an_mfa_policy(daemons: DaemonFactory, tmp_path: Path) -> None:
    sandbox = daemons.sandbox
    user, dev = sandbox.new_user_with_mfa("live")
    remember(user.secret_access_key, dev.seed)
    sandbox.admin.set_user_policy(user, require_mfa=True)
    daemons.store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("user", dev.seed)
    role = sandbox.admin.create_role(f"w-{user.name}", trusted=[user.arn], mfa_required=True)
    sock = daemons.home / "run" / "credd.sock"
    daemons.write_config(
        "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"[profile worker]\nrole_arn = {role.arn}\nsource_profile = user\n"
        "credd = true\nregion = us-east-1\nservices = sandbox\n"
        "[profile app]\nregion = us-east-1\nservices = sandbox\n"
        f"credential_process = {sys.executable} -m credd.cli get worker --socket {sock}\n"
        "[profile plain]\nregion = us-east-1\nservices = sandbox\n"
    )
    d = daemons.start()
    d.wait_state("worker", "fresh")
    stop = tmp_path / "stop"
    loop = [sys.executable, str(PROGRAMS / "s3_loop.py"), "--stop-file", str(stop)]
    env = daemons.env()
    via_endpoint = [sys.executable, "-m", "credd.cli", "exec", "worker", "--", *loop]
    procs = [
        subprocess.Popen([*loop, "--profile", "app"], env=env, stdout=subprocess.PIPE, text=True),
        subprocess.Popen(
            [*via_endpoint, "--profile", "plain"], env=env, stdout=subprocess.PIPE, text=True
        ),
    ]
    try:
        time.sleep(2)  # both programs are calling S3 (a real program's pace, not a timing check)
        codes_before = sandbox.admin.calls("GetSessionToken")
        done = d.run("keys", "rotate", "user", "--json")
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["mfa_codes_used"] == 0  # the daemon's MFA session signed the IAM calls
        assert sandbox.admin.calls("GetSessionToken") == codes_before
        new = daemons.store.get_long_term_keys("user")
        assert new is not None and new.access_key_id != user.access_key_id
        remember(new.secret_access_key)
        # no restart: the next MFA session is made with the new key, roles follow
        assert d.run("refresh", "user").returncode == 0
        assert d.run("refresh", "worker").returncode == 0
        assert sandbox.admin.calls_by_key(new.access_key_id).get("GetSessionToken") == 1
        assert sandbox.admin.calls_by_key(user.access_key_id).get("GetSessionToken") == 1
        time.sleep(2)
    finally:
        stop.write_text("stop")
        results = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]
    for result in results:
        assert result["failed"] == 0 and result["calls"] > 10, result
