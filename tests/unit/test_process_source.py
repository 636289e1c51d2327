"""The ``credential_process`` source: one run per lifetime across rotations, a hanging helper
(timeout, named error, backoff), garbage output (named error, parked: no loop), a loop through
``credd get`` refused, and a chain credential_process -> AssumeRole served by the real daemon."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from credd.aws import config as awsconfig
from credd.aws.clients import ClientFactory
from credd.clock import UTC, isoformat_z
from credd.engine.manager import Manager
from credd.engine.scheduler import RefreshPolicy
from credd.errors import CredentialProcessInvalid
from credd.plan.planner import Node, plan_for
from credd.sources import build_source
from credd.sources.mfa import CodeLedger
from credd.sources.process import parse_output
from credd.testing.clock import FakeClock
from credd.testing.scheduler import ManualScheduler
from tests.fixtures.daemon import DaemonFactory, remember

AWS_V2 = "/usr/bin/aws"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

COUNTING = """\
import json, pathlib, sys
from datetime import datetime, timedelta
state = pathlib.Path(sys.argv[1])
runs = state / "runs"
n = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(n))
now = datetime.fromisoformat((state / "now").read_text())
print(json.dumps({
    "Version": 1,
    "AccessKeyId": f"ASIAHELPER{n:010d}",
    "SecretAccessKey": f"helper-secret-{n:04d}-" + "x" * 24,
    "SessionToken": f"helper-token-{n:04d}",
    "Expiration": (now + timedelta(seconds=int(sys.argv[2]))).isoformat(),
}))
"""

HANGS = """\
#!/bin/sh
echo run >> "$1/runs"
sleep 29.75
"""

GARBAGE = """\
#!/bin/sh
echo run >> "$1/runs"
echo 'AKIAGARBAGE0001 secretgarbagesecretgarbage not json'
"""

FAILS = """\
#!/bin/sh
echo run >> "$1/runs"
echo 'AKIAFAILS000001 stdoutsecretstdoutsecret'
echo 'helper: the IdP said no' >&2
echo 'second line of detail' >&2
exit 3
"""


class FileClock(FakeClock):
    """A fake clock the helper reads (the helper's idea of "now" follows the test's)."""

    def __init__(self, path: Path, start: datetime) -> None:
        self.path = path
        super().__init__(start)
        path.write_text(start.isoformat())

    def set(self, when: datetime) -> None:
        super().set(when)
        self.path.write_text(when.isoformat())

    def advance(self, seconds: float) -> datetime:
        now = super().advance(seconds)
        self.path.write_text(now.isoformat())
        return now


def write_helper(tmp: Path, name: str, body: str) -> Path:
    path = tmp / name
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def config(home: Path, body: str) -> None:
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(body)


def manager_for(clock: FakeClock) -> tuple[Manager, ManualScheduler]:
    clients, ledger = ClientFactory(), CodeLedger(clock)

    def factory(node: Node) -> Any:
        return build_source(node, secrets=None, clients=clients, ledger=ledger, clock=clock)  # type: ignore[arg-type]

    scheduler = ManualScheduler(clock)
    manager = Manager(
        source_factory=factory,
        scheduler=scheduler,
        clock=clock,
        policy=RefreshPolicy(jitter=0.0),
        code_source_of=lambda p: "person",
        wait_timeout=30,
    )
    manager.load(awsconfig.load())
    manager.start()
    return manager, scheduler


def runs(state: Path) -> int:
    path = state / "runs"
    if not path.exists():
        return 0
    text = path.read_text().split()
    return int(text[0]) if len(text) == 1 and text[0].isdigit() else len(text)


def test_helper_runs_exactly_once_per_lifetime_across_rotations(clean_env: Path) -> None:
    state = clean_env / "helper"
    state.mkdir()
    script = write_helper(clean_env, "counting.py", COUNTING)
    config(
        clean_env,
        "[profile corp]\ncredd = true\ncredd_file_profile = off\n"
        f"credential_process = {sys.executable} {script} {state} 3600\n",
    )
    clock = FileClock(state / "now", NOW)
    manager, sched = manager_for(clock)
    seen: set[str] = set()
    # 1 h credentials refreshed 20 min ahead: a run at t = 0, 40, 80, ... 240 min.
    for _ in range(4 * 6 + 1):
        sched.run_for(600)
        creds = manager.credentials("corp")
        assert creds.expiration is not None and creds.expiration - clock.now() > timedelta(
            minutes=15
        )
        assert creds.access_key_id == f"ASIAHELPER{runs(state):010d}"  # the newest is served
        seen.add(creds.access_key_id)
    assert runs(state) == 7 and len(seen) == 7
    status = manager.profile_status("corp")
    assert status.state == "fresh" and "credential_process of 'corp'" in (status.plan or "")
    manager.stop()


def test_a_hanging_helper_times_out_with_a_named_error_and_backs_off(clean_env: Path) -> None:
    state = clean_env / "helper"
    state.mkdir()
    script = write_helper(clean_env, "hangs.sh", HANGS)
    config(
        clean_env,
        "[profile slow]\ncredd = true\ncredd_file_profile = off\ncredd_process_timeout = 1\n"
        f"credential_process = {script} {state}\n",
    )
    manager, sched = manager_for(FakeClock(NOW))
    sched.run_for(1)
    status = manager.profile_status("slow")
    assert status.state == "backoff"
    assert status.error is not None and status.error["code"] == "credential_process_failed"
    assert "did not finish in 1 s" in status.error["message"]
    # The sleep the shell started is gone too (the whole process group is ended).
    assert (
        "sleep 29.75"
        not in subprocess.run(["ps", "-eo", "args"], capture_output=True).stdout.decode()
    )
    sched.run_for(300)  # 5 min of backoff: 5, 10, 20, 40, 80, 160 s steps at most
    assert 2 <= runs(state) <= 7
    manager.stop()


@pytest.mark.parametrize("helper", [GARBAGE, FAILS], ids=["garbage", "fails"])
def test_a_broken_helper_gives_a_named_error_never_its_stdout_and_no_loop(
    clean_env: Path, helper: str
) -> None:
    state = clean_env / "helper"
    state.mkdir()
    script = write_helper(clean_env, "helper.sh", helper)
    config(
        clean_env,
        "[profile bad]\ncredd = true\ncredd_file_profile = off\n"
        f"credential_process = {script} {state}\n",
    )
    manager, sched = manager_for(FakeClock(NOW))
    sched.run_for(1)
    status = manager.profile_status("bad")
    assert status.error is not None
    text = json.dumps(status.error)
    assert "AKIA" not in text and "secret" not in text  # stdout is never quoted
    if helper is GARBAGE:
        assert status.state == "error"  # parked until the helper is fixed
        assert status.error["code"] == "credential_process_invalid"
        assert "is not JSON" in status.error["message"]
        sched.run_for(6 * 3600)
        assert runs(state) == 1
    else:
        assert status.state == "backoff"  # a helper may fail for a while (network, IdP)
        assert status.error["code"] == "credential_process_failed"
        assert "exited 3: helper: the IdP said no" in status.error["message"]
        assert "second line" not in status.error["message"]
        sched.run_for(3600)
        # Exponential backoff from 5 s, capped at 5 min (half of it jittered): 7 doublings,
        # then one run per 2.5..5 min; a loop would have run thousands of times.
        assert 12 <= runs(state) <= 32
    manager.stop()


@pytest.mark.parametrize(
    ("stdout", "why"),
    [
        (b"\xff\xfe", "is not JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (b'{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "S"}', "Version 1"),
        (b'{"Version": 1, "AccessKeyId": "A"}', "lacks AccessKeyId or SecretAccessKey"),
        (b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": 5}', "SecretAccessKey"),
        (
            b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S", "Expiration": "soon"}',
            "not an ISO 8601 time",
        ),
        (
            b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S", '
            b'"Expiration": "2026-01-05T08:00:00Z"}',
            "already expired",
        ),
    ],
)
def test_output_is_validated_as_botocore_does(stdout: bytes, why: str) -> None:
    with pytest.raises(CredentialProcessInvalid) as info:
        parse_output("p", stdout, NOW)
    assert why in info.value.message


def test_output_parsed_like_botocore_process_provider() -> None:
    out = parse_output(
        "p",
        b'{"Version": 1, "AccessKeyId": "AKIA1", "SecretAccessKey": "S", "SessionToken": "T",'
        b' "Expiration": "2026-01-05T10:30:00+01:00", "AccountId": "123456789012"}',
        NOW,
    )
    assert out.access_key_id == "AKIA1" and out.session_token == "T"
    assert out.expiration == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    assert out.account_id == "123456789012"
    keys = parse_output("p", b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S"}', NOW)
    assert keys.expiration is None and keys.session_token is None


@pytest.mark.parametrize(
    "command",
    ["credd get other", "/usr/local/bin/credd get loop", f"{sys.executable} -m credd.cli get x"],
)
def test_credential_process_running_credd_get_is_refused_as_a_loop(
    clean_env: Path, command: str
) -> None:
    config(
        clean_env,
        f"[profile loop]\ncredd = true\ncredential_process = {command}\n"
        "[profile fine]\ncredd = true\ncredential_process = /bin/true\n",
    )
    cfg = awsconfig.load()
    assert "loop" in cfg.broken and "fine" in cfg.managed  # one bad profile stops no other
    assert "(a loop)" in cfg.broken["loop"].error.message
    assert cfg.managed["fine"].kind == "process"


def test_keys_in_the_files_win_over_credential_process_as_in_botocore(clean_env: Path) -> None:
    config(clean_env, "[profile k]\ncredd = true\ncredential_process = /bin/true\n")
    (clean_env / ".aws" / "credentials").write_text(
        "[k]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = x\n"
    )
    assert awsconfig.load().managed["k"].kind == "session-token"


def test_plan_of_a_role_on_a_helper(clean_env: Path) -> None:
    config(
        clean_env,
        "[profile corp]\ncredential_process = /bin/true\n"
        "[profile admin]\ncredd = true\nsource_profile = corp\n"
        "role_arn = arn:aws:iam::123456789012:role/admin\n",
    )
    plan = plan_for(awsconfig.load(), "admin", lambda p: "person")
    assert [n.key for n in plan.nodes()] == ["process:corp", "role:admin"]


@pytest.mark.integration
def test_chain_credential_process_to_assume_role_served_on_every_route(
    daemons: DaemonFactory,
) -> None:
    sandbox = daemons.sandbox
    user = sandbox.new_user("helper")
    remember(user.secret_access_key)
    role = sandbox.admin.create_role(f"from-helper-{user.name}", trusted=[user.arn])
    state = daemons.home / "helper"
    state.mkdir()
    expires = isoformat_z(datetime.now(UTC) + timedelta(hours=2))
    (state / "out.json").write_text(
        json.dumps(
            {
                "Version": 1,
                "AccessKeyId": user.access_key_id,
                "SecretAccessKey": user.secret_access_key,
                "Expiration": expires,
            }
        )
    )
    os.chmod(state / "out.json", 0o600)
    script = write_helper(
        daemons.home, "helper.sh", '#!/bin/sh\necho run >> "$1/runs"\ncat "$1/out.json"\n'
    )
    sock = daemons.home / "run" / "credd.sock"
    daemons.write_config(
        f"[profile corp]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"credential_process = {script} {state}\n"
        f"[profile admin]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"role_arn = {role.arn}\nsource_profile = corp\n"
        f"[profile app]\nregion = us-east-1\nservices = sandbox\n"
        f"credential_process = {sys.executable} -m credd.cli get admin --socket {sock}\n"
    )
    d = daemons.start()
    assert d.wait_state("admin", "fresh")["kind"] == "assume-role"
    assert d.wait_state("corp", "fresh")["kind"] == "process"
    assert d.get("corp")["AccessKeyId"] == user.access_key_id
    admin = d.get("admin")
    assert admin["AccessKeyId"].startswith("ASIA")
    env = daemons.env()
    done = subprocess.run(
        [
            AWS_V2,
            "sts",
            "get-caller-identity",
            "--profile",
            "app",
            "--output",
            "json",
            "--endpoint-url",
            sandbox.endpoint,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f":assumed-role/{role.name}/" in json.loads(done.stdout)["Arn"]
    for profile in ("app", "admin-credd"):
        session = boto3.Session(profile_name=profile)
        sts = session.client("sts", region_name="us-east-1", endpoint_url=sandbox.endpoint)
        arn = sts.get_caller_identity()["Arn"]
        assert f":assumed-role/{role.name}/" in arn
    assert runs(state) == 1  # one helper run fed the role and every route
