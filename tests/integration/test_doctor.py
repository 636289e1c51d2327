"""``credd doctor`` against a real daemon, sandbox and keyring; and with things broken."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from typing import Any

import pytest

from credd import doctor
from credd.clock import SystemClock
from credd.testing.clock import FakeClock
from tests.fixtures.daemon import DaemonFactory, remember
from tests.integration.test_secrets_headless import credd

pytestmark = pytest.mark.integration

STATUSES = {"ok", "warn", "fail", "skip"}


def profile(name: str, *extra: str) -> str:
    return "\n".join(
        [f"[profile {name}]", "region = us-east-1", "services = sandbox", "credd = true", *extra]
    ) + "\n"  # fmt: skip


def totp_user(daemons: DaemonFactory, name: str, *, keys: bool = True) -> str:
    user, device = daemons.sandbox.new_user_with_mfa(name)
    remember(user.secret_access_key, device.seed)
    if keys:
        daemons.store.set_long_term_keys(name, user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed(name, device.seed)
    return profile(name, f"mfa_serial = {device.serial}")


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def check_schema(report: dict[str, Any]) -> None:
    assert set(report) == {"version", "ok", "checks"} and report["version"] == 1
    for c in report["checks"]:
        assert set(c) == {"name", "status", "message", "fix"}
        assert c["status"] in STATUSES and isinstance(c["message"], str) and c["message"]
        assert c["fix"] is None or isinstance(c["fix"], str)
    assert report["ok"] == all(c["status"] != "fail" for c in report["checks"])


def test_all_pass_against_a_working_daemon(daemons: DaemonFactory) -> None:
    daemons.write_config(totp_user(daemons, "work"))
    d = daemons.start()
    d.wait_state("work", "fresh")
    env = d.env

    done = credd(env, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("OK    profile:work: MFA session of 'work'") for line in lines)
    assert "all checks passed" in done.stdout

    done = credd(env, "doctor", "--json")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)
    check_schema(report)
    checks = by_name(report)
    assert report["ok"] is True
    names = ["aws-files", "credentials-file", "config-file", "profile:work", "secret-store"]
    names += ["key-age:work", "daemon", "endpoint"]
    assert list(checks) == [*names, "systemd", "clock"]
    assert checks["credentials-file"]["status"] in ("ok", "skip")
    assert checks["config-file"]["status"] in ("ok", "skip")
    ok = ["aws-files", "profile:work", "secret-store", "key-age:work", "daemon", "endpoint"]
    for name in (*ok, "clock"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "answers (HTTP" in checks["endpoint"]["message"]
    assert checks["systemd"]["status"] in ("skip", "ok", "warn")


def test_problems_each_get_a_line_and_exit_1(daemons: DaemonFactory) -> None:
    config = totp_user(daemons, "nokeys", keys=False) + profile(
        "badrole", "role_arn = not-an-arn", "source_profile = nokeys"
    )
    daemons.write_config(config)
    env = daemons.env()  # no daemon running
    done = credd(env, "doctor", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    check_schema(report)
    checks = by_name(report)
    assert report["ok"] is False
    assert checks["profile:nokeys"]["status"] == "fail"
    assert checks["profile:nokeys"]["fix"] == "store them: credd keys set nokeys"
    assert checks["profile:badrole"]["status"] == "fail"
    assert checks["daemon"]["status"] == "fail" and "credd" in (checks["daemon"]["fix"] or "")
    assert checks["endpoint"]["status"] == "skip"
    assert checks["secret-store"]["status"] == "ok"
    done = credd(env, "doctor")
    assert done.returncode == 1
    text = done.stdout
    assert "FAIL  profile:nokeys: no long-term keys" in text and "-> fix: store them" in text
    assert "FAIL  daemon:" in text and "problem(s) found" in text

    (daemons.aws / "config").write_text("[profile broken\nregion = x\n")
    report = json.loads(credd(env, "doctor", "--json").stdout)
    checks = by_name(report)
    assert checks["aws-files"]["status"] == "fail"
    assert "cannot be parsed" in checks["aws-files"]["message"]


def test_headless_store_problem_and_clock_skew(
    daemons: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemons.write_config(profile("p", "mfa_serial = arn:aws:iam::123456789012:mfa/p"))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.SecretService.Keyring")
    ahead = FakeClock(SystemClock().now() + timedelta(hours=1))
    checks = {c.name: c for c in doctor.run_checks(clock=ahead)}
    assert checks["secret-store"].status == "fail"
    assert "encrypted-file" in (checks["secret-store"].fix or "")
    assert checks["profile:p"].status == "fail"
    assert checks["clock"].status == "fail" and "ahead of profile p" in checks["clock"].message
    on_time = {c.name: c for c in doctor.run_checks(clock=SystemClock())}
    assert on_time["clock"].status == "ok"


def completed(
    argv: list[str], rc: int, out: str, err: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(argv, rc, out, err)


@pytest.mark.parametrize(
    ("enabled", "active", "status"),
    [
        ((0, "enabled\n"), (0, "active\n"), "ok"),
        ((0, "enabled\n"), (3, "failed\n"), "fail"),
        ((1, "disabled\n"), (3, "inactive\n"), "warn"),
        ((1, "", "Failed to get unit file state for credd.service: No such file"), (3, ""), "skip"),
        ((1, "", "Failed to connect to bus: No medium found"), (1, ""), "skip"),
    ],
)  # fmt: skip
def test_systemd_states(enabled: tuple[Any, ...], active: tuple[Any, ...], status: str) -> None:
    answers = {"is-enabled": enabled, "is-active": active}

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return completed(argv, *answers[argv[2]])

    assert doctor.check_systemd(run).status == status
