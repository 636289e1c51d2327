"""``make demo`` for real: the daemon, the sandbox, a private keyring and a long-running boto3
program across at least three rotations with zero failed calls and no expired credentials served.
Another shell reaches the demo daemon with the export lines it prints."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.daemon import LOG_FILES, remember

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_demo_runs_a_program_across_rotations_and_talks_to_other_shells(tmp_path: Path) -> None:
    demo_home = tmp_path / "demo"
    real_home = tmp_path / "real-home"
    real_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDD_"))}
    env.update(HOME=str(real_home), CREDD_DEMO_HOME=str(demo_home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "credd_sandbox.demo",
            "--seconds",
            "115",
            "--session-seconds",
            "60",
            "--status-every",
            "50",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    assert proc.stdout is not None
    lines: list[str] = []
    exports: dict[str, str] = {}
    try:
        for line in proc.stdout:
            lines.append(line)
            m = re.match(r"\s+export (\w+)=(\S+)", line)
            if m:
                exports[m.group(1)] = m.group(2)
            if "a long-running boto3 program" in line:
                break
        # another shell, with only the printed exports
        shell = {k: v for k, v in env.items() if k != "CREDD_DEMO_HOME"} | exports
        for _ in range(300):  # the first session arrives within a TOTP step or two
            status = subprocess.run(
                [sys.executable, "-m", "credd.cli", "status", "--json"],
                env=shell,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if status.returncode == 0:
                break
            time.sleep(0.2)
        assert status.returncode == 0, status.stdout + status.stderr
        assert [p["name"] for p in json.loads(status.stdout)["profiles"]] == [
            "demo-mfa",
            "demo-role",
            "demo-sso",
        ]
        got = subprocess.run(
            [sys.executable, "-m", "credd.cli", "get", "demo-mfa"],
            env=shell,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert got.returncode == 0, got.stderr
        creds = json.loads(got.stdout)
        remember(creds["SecretAccessKey"], creds["SessionToken"])
        lines.extend(proc.stdout)
        assert proc.wait(timeout=150) == 0, "".join(lines[-40:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            proc.wait(timeout=60)
    out = "".join(lines)
    assert set(exports) == {"CREDD_SOCKET", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"}
    assert "private D-Bus session with gnome-keyring" in out
    done = dict(
        (m[0], tuple(map(int, m[1:])))
        for m in re.findall(
            r"^([\w-]+): done: (\d+) calls ok, (\d+) failed, (\d+) sessions", out, flags=re.M
        )
    )
    assert set(done) == {"app", "role-app"}, out[-3000:]
    calls, failed, sessions = done["app"]  # credential_process, the MFA session itself
    assert failed == 0 and sessions >= 4 and calls >= 30, done  # >= 3 rotations
    calls, failed, sessions = done["role-app"]  # under credd exec demo-role: the endpoint
    assert failed == 0 and sessions >= 3 and calls >= 30, done
    left = [int(x) for x in re.findall(r"session key \.\.\.\w{4}, (-?\d+) s left", out)]
    assert left and min(left) > 0  # never an expired credential
    assert not (real_home / ".aws").exists()  # the user's own files are never touched
    assert (demo_home / ".aws" / "credentials").read_text().startswith("# Your own sections")
    LOG_FILES.update({demo_home / "daemon.log", demo_home / "sandbox.log"})
