"""MFA code sources and the never-twice rule, on a fake clock with real pyotp and real processes."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pyotp
import pytest

from credd.clock import UTC
from credd.errors import MfaCodeReused, MfaProcessFailed, NeedsMfa, SecretMissing, UsageError
from credd.sources.mfa import STEP, CodeLedger, PersonCodes, ProcessCodes, TotpCodes, check_code
from credd.testing.clock import FakeClock

SEED = pyotp.random_base32()
DEVICE = "arn:aws:iam::123456789012:mfa/alice"


def clock_at_step_start() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))


def test_totp_codes_match_the_device_and_never_repeat_within_a_step() -> None:
    clock = clock_at_step_start()
    ledger = CodeLedger(clock)
    source = TotpCodes("p", lambda: SEED, clock)
    first = source.code(DEVICE, ledger)
    assert pyotp.TOTP(SEED).verify(first, for_time=clock.now())
    ledger.record(DEVICE, first)
    clock.advance(5)
    second = source.code(DEVICE, ledger)  # same step: waits (on the clock) for the next one
    assert clock.slept and 24 <= clock.slept[-1] <= 25
    assert int(clock.now().timestamp()) % STEP == 0
    assert pyotp.TOTP(SEED).verify(second, for_time=clock.now())
    assert second == pyotp.TOTP(SEED).at(clock.now())
    # another device is independent
    clock.slept.clear()
    source.code("arn:aws:iam::123456789012:mfa/bob", ledger)
    assert clock.slept == []


def test_totp_without_a_seed_says_how_to_store_one() -> None:
    clock = clock_at_step_start()
    with pytest.raises(SecretMissing, match="credd totp set p"):
        TotpCodes("p", lambda: None, clock).code(DEVICE, CodeLedger(clock))


def write_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "mfa.py"
    script.write_text(body)
    return f"{sys.executable} {script}"


def test_mfa_process_prints_the_code(tmp_path: Path) -> None:
    clock = clock_at_step_start()
    cmd = write_script(tmp_path, "print('  654321 ')\n")
    assert ProcessCodes("p", cmd, clock).code(DEVICE, CodeLedger(clock)) == "654321"


def test_mfa_process_repeating_the_last_code_is_asked_again_next_step(tmp_path: Path) -> None:
    clock = clock_at_step_start()
    counter = tmp_path / "n"
    counter.write_text("0")
    cmd = write_script(
        tmp_path,
        "import pathlib\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()); p.write_text(str(n + 1))\n"
        "print('111111' if n < 2 else '222222')\n",
    )
    ledger = CodeLedger(clock)
    source = ProcessCodes("p", cmd, clock)
    code = source.code(DEVICE, ledger)
    ledger.record(DEVICE, code)
    clock.advance(STEP)
    assert source.code(DEVICE, ledger) == "222222"  # "111111" again was refused, retried later
    assert counter.read_text() == "3"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("import sys; sys.stderr.write('no token\\n'); sys.exit(3)", "exited 3: no token"),
        ("print('abc')", "no six-digit code"),
    ],
)
def test_mfa_process_failures_are_clear(tmp_path: Path, body: str, match: str) -> None:
    clock = clock_at_step_start()
    with pytest.raises(MfaProcessFailed, match=match):
        ProcessCodes("p", write_script(tmp_path, body), clock).code(DEVICE, CodeLedger(clock))


def test_mfa_process_missing_command_and_timeout(tmp_path: Path) -> None:
    clock = clock_at_step_start()
    with pytest.raises(MfaProcessFailed, match="not found"):
        ProcessCodes("p", "/nonexistent/mfa-tool", clock).code(DEVICE, CodeLedger(clock))
    slow = write_script(tmp_path, "import time; time.sleep(30)")
    with pytest.raises(MfaProcessFailed, match="did not finish"):
        ProcessCodes("p", slow, clock, timeout=0.2).code(DEVICE, CodeLedger(clock))


def test_person_codes() -> None:
    clock = clock_at_step_start()
    ledger = CodeLedger(clock)
    person = PersonCodes("p")
    with pytest.raises(NeedsMfa, match="credd mfa p"):
        person.code(DEVICE, ledger)
    person.push("123456")
    assert person.has_pending()
    assert person.code(DEVICE, ledger) == "123456"
    ledger.record(DEVICE, "123456")
    person.push("123456")
    with pytest.raises(MfaCodeReused):
        person.code(DEVICE, ledger)
    clock.advance(STEP * 3)
    person.push("123456")  # long after, the same digits are a new code
    assert person.code(DEVICE, ledger) == "123456"
    with pytest.raises(UsageError):
        person.push("12345")
    assert check_code(" 000111\n") == "000111"
