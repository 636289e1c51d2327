"""``python -m credd_sandbox`` as a process: ready line, clean stops, no orphans; the AWS CLI v2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from credd_sandbox import AdminClient, SandboxProcess
from tests.fixtures.sandbox import SandboxHandle, unique_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AWS_V2 = "/usr/bin/aws"


def gone(pid: int, within: float = 15.0) -> bool:
    """Whether ``pid`` has exited (zombies count as exited), polling up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_cli(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, Any], Path]:
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "credd_sandbox", "--ready-file", str(ready), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, json.loads(line), ready


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ready_line_and_clean_stop(tmp_path: Path, sig: signal.Signals) -> None:
    proc, info, ready = start_cli(tmp_path, "--min-duration", "60")
    try:
        assert json.loads(ready.read_text()) == info
        assert info["pid"] == proc.pid
        assert info["endpoint"].startswith("http://127.0.0.1:")
        admin = AdminClient(info["endpoint"])
        assert admin.health()["moto"] == info["moto"]
        assert admin.settings()["min_duration_seconds"] == 60
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        assert gone(info["moto_pid"])
        assert not ready.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_killed_sandbox_takes_moto_with_it(tmp_path: Path) -> None:
    proc, info, _ = start_cli(tmp_path)
    try:
        proc.kill()
        proc.wait(10)
        assert gone(info["moto_pid"])
    finally:
        assert proc.stdout is not None
        proc.stdout.close()


def test_sandbox_goes_when_its_parent_dies(tmp_path: Path) -> None:
    script = (
        "import json, signal, sys\n"
        "from credd_sandbox import SandboxProcess\n"
        "sb = SandboxProcess().start()\n"
        "print(json.dumps(sb.info), flush=True)\n"
        "signal.pause()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=child_env()
    )
    assert parent.stdout is not None
    try:
        info = json.loads(parent.stdout.readline())
        parent.kill()
        parent.wait(10)
        assert gone(info["pid"])
        assert gone(info["moto_pid"])
    finally:
        parent.stdout.close()


def test_refuses_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "credd_sandbox", "--host", "10.1.2.3"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_sandbox_process_api_and_no_secret_in_debug_log(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    with SandboxProcess(min_duration=120, log_path=str(log), log_level="DEBUG") as sb:
        assert sb.pid is not None
        assert sb.admin.settings()["min_duration_seconds"] == 120
        user = sb.admin.create_user("logged")
        device = sb.admin.create_mfa_device(user)
        assert device.seed not in repr(device) and user.secret_access_key not in repr(user)
        import botocore.session

        sts = botocore.session.Session().create_client(
            "sts",
            region_name="us-east-1",
            endpoint_url=sb.endpoint,
            aws_access_key_id=user.access_key_id,
            aws_secret_access_key=user.secret_access_key,
        )
        code = pyotp.TOTP(device.seed).now()
        creds = sts.get_session_token(SerialNumber=device.serial, TokenCode=code)["Credentials"]
        moto_pid = sb.info["moto_pid"]
    assert sb.process is not None and sb.process.returncode == 0
    assert gone(moto_pid)
    text = log.read_text()
    assert "GetSessionToken" in text  # the debug log did record the call ...
    for secret in (user.secret_access_key, device.seed, creds["SecretAccessKey"]):
        assert secret not in text  # ... and no secret
    assert creds["SessionToken"][:40] not in text


@pytest.mark.skipif(not Path(AWS_V2).exists(), reason="Debian's awscli (AWS CLI v2) not installed")
def test_aws_cli_v2_against_the_sandbox(sandbox_clean: SandboxHandle, tmp_path: Path) -> None:
    sb = sandbox_clean
    user, device = sb.new_user_with_mfa()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": user.access_key_id,
        "AWS_SECRET_ACCESS_KEY": user.secret_access_key,
        "AWS_EC2_METADATA_DISABLED": "true",
    }

    def aws(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AWS_V2, "--endpoint-url", sb.endpoint, "--output", "json", *args],
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    code = pyotp.TOTP(device.seed).now()
    result = aws("sts", "get-session-token", "--serial-number", device.serial, "--token-code", code)
    assert result.returncode == 0, result.stderr
    creds = json.loads(result.stdout)["Credentials"]
    session = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }
    ident = aws("sts", "get-caller-identity", extra=session)
    assert ident.returncode == 0, ident.stderr
    assert json.loads(ident.stdout)["Arn"] == user.arn
    bucket = unique_name("cli-bucket")
    assert aws("s3", "mb", f"s3://{bucket}", extra=session).returncode == 0
    (tmp_path / "file.txt").write_text("from the CLI\n")
    assert (
        aws(
            "s3", "cp", str(tmp_path / "file.txt"), f"s3://{bucket}/f.txt", extra=session
        ).returncode
        == 0
    )
    listing = aws("s3", "ls", f"s3://{bucket}/", extra=session)
    assert "f.txt" in listing.stdout
    reused = aws("sts", "get-session-token", "--serial-number", device.serial, "--token-code", code)
    assert reused.returncode != 0
    assert "AccessDenied" in reused.stderr
    assert sb.admin.calls_by_key(user.access_key_id) == {"GetSessionToken": 2}
