"""CLI commands that edit files, run as a person would (subprocess, real files)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def credd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "credd.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_enable_duration_goes_to_the_right_key(clean_env: Path) -> None:
    aws = clean_env / ".aws"
    aws.mkdir()
    (aws / "config").write_text(
        "# mine\n[profile user]\nregion = eu-west-1\n\n"
        "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = user\n"
    )
    assert credd("enable", "user", "--duration", "8h").returncode == 0
    done = credd("enable", "role", "--duration", "45m")
    assert done.returncode == 0, done.stderr
    text = (aws / "config").read_text()
    assert text.startswith("# mine\n[profile user]\nregion = eu-west-1\n")
    assert "credd_session_duration = 8h" in text and "duration_seconds = 2700" in text
    too_long = credd("enable", "role", "--duration", "13h")
    assert too_long.returncode == 2 and "between 15m and 12h" in too_long.stderr
    assert credd("disable", "role").returncode == 0
    assert "duration_seconds = 2700" in (aws / "config").read_text()
