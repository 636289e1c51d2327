"""An in-memory :class:`~credd.server.backend.Backend`: canned answers, switchable errors.

Used by the transport tests and by ``bench/`` to exercise the servers without AWS. It is a
real implementation of the protocol (a dict lookup, as the daemon's fetch path is), not a mock:
errors are set per profile and method, and a call can be held open on an event to play a
backend that blocks.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

from credd.clock import Clock, isoformat_z
from credd.engine.state import State
from credd.errors import CreddError, NeedsMfa, ProfileNotManaged
from credd.models import Credentials, ProfileStatus
from credd.sources.mfa import check_code


class MemoryBackend:
    """Profiles held in dicts. Thread-safe."""

    def __init__(self, clock: Clock, *, socket: str = "") -> None:
        self.clock = clock
        self.socket = socket
        self.started_at = clock.now()
        self._lock = threading.Lock()
        self._creds: dict[str, Credentials] = {}
        self._status: dict[str, ProfileStatus] = {}
        self._errors: dict[tuple[str, str], CreddError | BaseException] = {}
        self.gate: threading.Event | None = None
        self.calls: list[tuple[str, str]] = []
        self.codes: list[tuple[str, str]] = []
        #: more daemon facts for ``status`` (as the manager's: e.g. the container endpoint)
        self.info_extra: dict[str, Any] = {}

    # -- set-up -----------------------------------------------------------------------------

    def add_profile(
        self, name: str, creds: Credentials | None = None, *, kind: str = "mfa-session"
    ) -> None:
        """Manage ``name``; with ``creds`` it is fresh, without it waits for an MFA code."""
        with self._lock:
            if creds is not None:
                self._creds[name] = creds
            self._status[name] = ProfileStatus(
                name=name,
                kind=kind,
                state=State.FRESH if creds else State.NEEDS_MFA,
                expires_at=creds.expiration if creds else None,
                waiting_for=None if creds else "mfa_code",
                key_id=creds.masked_key_id if creds else None,
            )

    def fail(self, profile: str, method: str, error: CreddError | BaseException | None) -> None:
        """Make ``method`` (``credentials``, ``push_mfa_code``, ``refresh``, ``status``) raise
        ``error`` for ``profile`` (``"*"`` for any profile); ``None`` clears it."""
        with self._lock:
            if error is None:
                self._errors.pop((profile, method), None)
            else:
                self._errors[(profile, method)] = error

    # -- the Backend protocol ---------------------------------------------------------------

    def daemon_info(self) -> dict[str, Any]:
        return {
            "version": "test",
            "pid": os.getpid(),
            "started_at": isoformat_z(self.started_at),
            "socket": self.socket,
            **self.info_extra,
        }

    def status(self) -> list[ProfileStatus]:
        self._enter("*", "status")
        with self._lock:
            return [self._status[name] for name in sorted(self._status)]

    def credentials(self, profile: str) -> Credentials:
        self._enter(profile, "credentials")
        with self._lock:
            if profile not in self._status:
                raise _not_managed(profile)
            creds = self._creds.get(profile)
        if creds is None:
            raise _needs_mfa(profile)
        return creds

    def credentials_nowait(self, profile: str) -> Credentials | None:
        """The optional non-blocking fast path (see ``Api.handle_nowait``): held credentials,
        or ``None`` whenever :meth:`credentials` would wait or raise."""
        with self._lock:
            if self.gate is not None or self._errors:
                return None
            return self._creds.get(profile)

    def push_mfa_code(self, profile: str, code: str) -> ProfileStatus:
        self._enter(profile, "push_mfa_code")
        code = check_code(code)  # the daemon's own rule
        with self._lock:
            if profile not in self._status:
                raise _not_managed(profile)
            self.codes.append((profile, code))
            now = self.clock.now()
            creds = Credentials(
                access_key_id=f"ASIAMEMORY{len(self.codes):010d}",
                secret_access_key=f"memory-secret-{len(self.codes)}",
                session_token=f"memory-token-{len(self.codes)}",
                expiration=now + timedelta(hours=12),
            )
            self._creds[profile] = creds
            status = replace(
                self._status[profile],
                state=State.FRESH,
                expires_at=creds.expiration,
                waiting_for=None,
                last_refresh_at=now,
                key_id=creds.masked_key_id,
            )
            self._status[profile] = status
            return status

    def refresh(self, profile: str) -> ProfileStatus:
        self._enter(profile, "refresh")
        with self._lock:
            if profile not in self._status:
                raise _not_managed(profile)
            status = replace(self._status[profile], last_refresh_at=self.clock.now())
            self._status[profile] = status
            return status

    # -- helpers ----------------------------------------------------------------------------

    def _enter(self, profile: str, method: str) -> None:
        with self._lock:
            self.calls.append((method, profile))
            error = self._errors.get((profile, method)) or self._errors.get(("*", method))
            gate = self.gate
        if gate is not None:
            gate.wait()
        if error is not None:
            raise error


def _not_managed(profile: str) -> ProfileNotManaged:
    return ProfileNotManaged(
        f"credd does not manage profile {profile}", hint=f"enable it: credd enable {profile}"
    )


def _needs_mfa(profile: str) -> NeedsMfa:
    return NeedsMfa(f"{profile} needs an MFA code", hint=f"run `credd mfa {profile}`")
