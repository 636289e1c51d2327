"""Where MFA codes come from, and the rule that a code is never used twice.

Three sources, chosen per profile:

- :class:`TotpCodes`: a TOTP seed kept in the OS keyring (pyotp) — unattended;
- :class:`ProcessCodes`: an ``mfa_process`` command that prints the code — unattended;
- :class:`PersonCodes`: a person pushes a code with ``credd mfa PROFILE [CODE]``.

AWS rejects a code already used with a device, so the :class:`CodeLedger` remembers, per
device, the last TOTP time step used: a second call for the same device in the same 30 s step
waits (on the injected clock) for the next step.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from credd.aws.config import mfa_command
from credd.clock import Clock
from credd.errors import MfaCodeReused, MfaProcessFailed, NeedsMfa, SecretMissing, UsageError

log = logging.getLogger(__name__)

STEP = 30  # seconds, RFC 6238 as used by AWS virtual MFA devices
_CODE = re.compile(r"[0-9]{6}")  # ASCII digits only: \d would take any script's digits


def check_code(code: str) -> str:
    """A six-digit code, or ``UsageError``."""
    value = code.strip()
    if not _CODE.fullmatch(value):
        raise UsageError("an MFA code is six digits", hint="type the code your device shows now")
    return value


def step_of(clock: Clock) -> int:
    return int(clock.now().timestamp()) // STEP


@dataclass
class _Used:
    step: int
    code: str


class CodeLedger:
    """Per MFA device: which time step (and code) was used last. Shared by all profiles."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._used: dict[str, _Used] = {}
        self._lock = threading.Lock()
        self._device_locks: dict[str, threading.Lock] = {}

    def device_lock(self, device: str) -> threading.Lock:
        """Held while a code for ``device`` is fetched and sent, so two never race."""
        with self._lock:
            return self._device_locks.setdefault(device, threading.Lock())

    def wait_for_fresh_step(self, device: str) -> int:
        """Return the current step, first waiting (on the clock) until it is one not yet used."""
        while True:
            now = self._clock.now().timestamp()
            step = int(now) // STEP
            with self._lock:
                used = self._used.get(device)
            if used is None or step > used.step:
                return step
            wait = (used.step + 1) * STEP - now
            log.info("MFA device %s: code of this step already used; waiting %.0f s", device, wait)
            self._clock.sleep(max(wait, 0.01))

    def was_used(self, device: str, code: str) -> bool:
        """True when ``code`` was the last code used with ``device`` within its validity."""
        with self._lock:
            used = self._used.get(device)
        return used is not None and used.code == code and step_of(self._clock) - used.step <= 2

    def step(self) -> int:
        """The current time step."""
        return step_of(self._clock)

    def record(self, device: str, code: str, step: int | None = None) -> None:
        """``code`` was spent with ``device`` (sent at ``step``, default now). Only a code AWS
        could have consumed is recorded (:mod:`credd.sources.mfa_call`)."""
        with self._lock:
            self._used[device] = _Used(step_of(self._clock) if step is None else step, code)


class CodeSource(Protocol):
    """One way to get an MFA code for a device."""

    name: str
    unattended: bool

    def code(self, device: str, ledger: CodeLedger) -> str:
        """A code not used before with ``device``; ``NeedsMfa`` when a person must give one."""


class TotpCodes:
    """Codes computed from a TOTP seed fetched (per use) from the keyring."""

    name = "totp"
    unattended = True

    def __init__(self, profile: str, seed: Callable[[], str | None], clock: Clock) -> None:
        self._profile = profile
        self._seed = seed
        self._clock = clock

    def code(self, device: str, ledger: CodeLedger) -> str:
        import pyotp

        seed = self._seed()
        if not seed:
            raise SecretMissing(
                f"no TOTP seed stored for profile {self._profile!r}",
                hint=f"store it: credd totp set {self._profile}",
            )
        step = ledger.wait_for_fresh_step(device)
        return str(pyotp.TOTP(seed).at(step * STEP))


class ProcessCodes:
    """Codes printed by the profile's ``mfa_process`` command (run without a shell)."""

    name = "process"
    unattended = True

    def __init__(
        self,
        profile: str,
        command: str,
        clock: Clock,
        *,
        timeout: float = 60.0,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ) -> None:
        self._profile = profile
        self._argv = mfa_command(profile, command)  # ConfigError, never ValueError
        self._clock = clock
        self._timeout = timeout
        self._run = run

    def _once(self) -> str:
        try:
            done = self._run(
                self._argv,
                capture_output=True,
                text=True,
                timeout=self._timeout,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise MfaProcessFailed(
                f"profile {self._profile!r}: mfa_process command not found: {self._argv[0]!r}",
                hint="fix mfa_process in the AWS config",
            ) from None
        except subprocess.TimeoutExpired:
            raise MfaProcessFailed(
                f"profile {self._profile!r}: mfa_process did not finish in {self._timeout:.0f} s",
                hint="check that the command prints a code without waiting for input",
            ) from None
        if done.returncode != 0:
            # stderr may be anything; keep only its last line, which is what tools print.
            tail = (done.stderr or "").strip().splitlines()[-1:] or [""]
            raise MfaProcessFailed(
                f"profile {self._profile!r}: mfa_process exited {done.returncode}: {tail[0][:200]}",
                hint="run the command by hand to see what it needs",
            )
        text = (done.stdout or "").strip()
        if not _CODE.fullmatch(text):
            raise MfaProcessFailed(
                f"profile {self._profile!r}: mfa_process printed no six-digit code",
                hint="the command must print only the current code",
            )
        return text

    def code(self, device: str, ledger: CodeLedger) -> str:
        ledger.wait_for_fresh_step(device)
        code = self._once()
        if ledger.was_used(device, code):
            # Same code as last time: wait for the next step and ask again, once.
            step = step_of(self._clock)
            self._clock.sleep(max((step + 1) * STEP - self._clock.now().timestamp(), 0.01))
            code = self._once()
            if ledger.was_used(device, code):
                raise MfaCodeReused(
                    f"profile {self._profile!r}: mfa_process printed the code used last time",
                    hint="check the command prints the current code",
                )
        return code


class PersonCodes:
    """Codes pushed by a person (``credd mfa PROFILE CODE``); holds at most one."""

    name = "person"
    unattended = False

    def __init__(self, profile: str) -> None:
        self._profile = profile
        self._pending: str | None = None
        self._lock = threading.Lock()

    def push(self, code: str) -> None:
        with self._lock:
            self._pending = check_code(code)

    def has_pending(self) -> bool:
        with self._lock:
            return self._pending is not None

    def code(self, device: str, ledger: CodeLedger) -> str:
        with self._lock:
            code, self._pending = self._pending, None
        if code is None:
            raise NeedsMfa(
                f"profile {self._profile!r} needs an MFA code",
                hint=f"run: credd mfa {self._profile}",
            )
        if ledger.was_used(device, code):
            raise MfaCodeReused(
                f"that code was already used with {device}; AWS would reject it",
                hint=f"wait for the next code, then run: credd mfa {self._profile}",
            )
        return code
