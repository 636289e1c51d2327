"""Device-code logins run by the daemon, for clients that are not a terminal (the Jupyter
extension, docs/hosted-hubs.md).

``POST /v1/logins`` starts one: the daemon registers a client (or reuses the cached
registration) and calls StartDeviceAuthorization, then answers at once with what a person needs
(the user code and the verification links; never the device code, the registration or a token).
A thread polls CreateToken at the interval IAM Identity Center asks for, writes the token to the
shared cache (as ``credd login --device-code`` does) and refreshes every managed profile that
uses the login, so they pick it up at once. ``GET /v1/logins/{id}`` says how it went:
``pending``, ``done`` or ``failed`` with a message. Nothing opens a browser.

A second start for a login already pending returns that login (one code to approve, not two).
Finished logins are kept for :data:`KEEP` and then forgotten; at most :data:`MAX_PENDING` wait at
once. :meth:`DeviceLogins.stop` (daemon shutdown) cancels the waiting ones.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from credd.aws.clients import ClientFactory
from credd.clock import Clock, isoformat_z
from credd.engine.state import State
from credd.errors import CreddError, NotFound, NotReady
from credd.models import ProfileStatus
from credd.sso.login import DeviceAuthorization, LoginFlow, LoginIo
from credd.sso.settings import (
    SsoTarget,
    load_full_config,
    profiles_using,
    resolve_profile,
    resolve_session,
    sso_profile_of,
)

log = logging.getLogger(__name__)

#: How long a finished login can still be asked about.
KEEP = timedelta(minutes=10)
#: Logins waiting for a person at once (one per SSO session in practice).
MAX_PENDING = 8
#: How long a person gets to approve (IAM Identity Center's own limit is usually shorter).
TIMEOUT = 600.0

PENDING, DONE, FAILED = "pending", "done", "failed"


class _Cancelled(Exception):
    """The daemon is stopping."""


def _managed(raw: Mapping[str, Any]) -> bool:
    return str(raw.get("credd", "")).strip().lower() in {"1", "true", "yes", "on"}


def _no_browser(url: str) -> bool:
    return False


def _quiet(text: str) -> None:
    pass


@dataclass
class DeviceLogin:
    """One login a person is asked to approve. ``to_json`` holds no secret."""

    id: str
    target: SsoTarget
    profile: str | None
    auth: DeviceAuthorization = field(repr=False)
    state: str = PENDING
    message: str = ""
    finished_at: datetime | None = None
    profiles: list[str] = field(default_factory=list)

    def to_json(self, now: datetime) -> dict[str, Any]:
        left = max(0, int((self.auth.deadline - now).total_seconds()))
        return {
            "id": self.id,
            "state": self.state,
            "message": self.message,
            "sso_session": self.target.session_name,
            "label": self.target.label,
            "profile": self.profile,
            "user_code": self.auth.user_code,
            "verification_uri": self.auth.verification_uri,
            "verification_uri_complete": self.auth.verification_uri_complete,
            "expires_in": left if self.state == PENDING else 0,
            "expires_at": isoformat_z(self.auth.deadline),
            "profiles": list(self.profiles),
        }


class DeviceLogins:
    """The daemon's device-code logins (see the module docstring)."""

    def __init__(
        self,
        *,
        clients: ClientFactory,
        clock: Clock,
        refresh: Callable[[str], ProfileStatus],
        environ: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.clients = clients
        self.clock = clock
        self.refresh = refresh
        self.environ = environ
        self.timeout = timeout
        self._logins: dict[str, DeviceLogin] = {}
        self._lock = threading.Lock()  # the table of logins
        self._starting = threading.Lock()  # one start at a time: no twin logins for one target
        self._stopping = threading.Event()

    def _resolve(
        self, profile: str | None, sso_session: str | None
    ) -> tuple[SsoTarget, str | None, list[str]]:
        full = load_full_config(self.environ)
        if sso_session is not None:
            target = resolve_session(sso_session, full)
            users = profiles_using(target, full)
            shown = users[0] if users else None
        else:
            assert profile is not None
            target = resolve_profile(profile, full)
            shown = sso_profile_of(profile, full)
        profiles: Mapping[str, Mapping[str, Any]] = full.get("profiles", {}) or {}
        managed = [n for n in profiles_using(target, full) if _managed(profiles[n])]
        return target, shown, managed

    def start(self, *, profile: str | None = None, sso_session: str | None = None) -> DeviceLogin:
        """Start (or join the pending) login for ``profile``'s SSO login or ``sso_session``."""
        if (profile is None) == (sso_session is None):
            raise ValueError("give a profile or an sso_session")
        target, shown, managed = self._resolve(profile, sso_session)
        with self._starting:
            with self._lock:
                self._prune()
                for login in self._logins.values():
                    if login.state == PENDING and login.target == target:
                        return login
                if sum(x.state == PENDING for x in self._logins.values()) >= MAX_PENDING:
                    raise NotReady("too many SSO logins are waiting for approval", hint="try later")
            return self._begin(target, shown, managed)

    def _begin(self, target: SsoTarget, shown: str | None, managed: list[str]) -> DeviceLogin:
        flow = LoginFlow(
            target,
            profile=shown,
            clients=self.clients,
            clock=self.clock,
            io=LoginIo(say=_quiet, open_browser=_no_browser),
            timeout=self.timeout,
        )
        auth = flow.begin_device_code()  # AWS calls: outside the table's lock
        login = DeviceLogin(secrets.token_hex(8), target, shown, auth, profiles=managed)
        with self._lock:
            self._logins[login.id] = login
        log.info("device-code login %s started for %s", login.id, target.label)
        worker = threading.Thread(
            target=self._wait, args=(flow, login), name=f"credd-login-{login.id}", daemon=True
        )
        worker.start()
        return login

    def get(self, login_id: str) -> DeviceLogin:
        with self._lock:
            self._prune()
            login = self._logins.get(login_id)
        if login is None:
            raise NotFound(
                "no such login (finished ones are forgotten after 10 minutes)",
                hint="start a new one",
            )
        return login

    def stop(self) -> None:
        """Cancel every waiting login (daemon shutdown)."""
        self._stopping.set()

    def _prune(self) -> None:
        now = self.clock.now()
        for key in [
            k for k, x in self._logins.items() if x.finished_at and now - x.finished_at > KEEP
        ]:
            del self._logins[key]

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Cancelled

    def _wait(self, flow: LoginFlow, login: DeviceLogin) -> None:
        try:
            flow.finish_device_code(login.auth, sleep=self._sleep)
        except _Cancelled:
            self._end(login, FAILED, "cancelled: the daemon stopped")
            return
        except CreddError as exc:
            self._end(login, FAILED, exc.message + (f" ({exc.hint})" if exc.hint else ""))
            return
        except Exception as exc:  # the text could hold a secret: the type only
            log.error("device-code login %s failed: unexpected %s", login.id, type(exc).__name__)
            self._end(login, FAILED, f"the login failed (unexpected {type(exc).__name__})")
            return
        log.info("device-code login %s approved; token stored for %s", login.id, login.target.label)
        self._end(login, DONE, self._pick_up(login))

    def _pick_up(self, login: DeviceLogin) -> str:
        """Refresh the managed profiles using this login; say how each ended up."""
        said = [f"Signed in to {login.target.label}."]
        if not login.profiles:
            return said[0] + " No profile managed by credd uses this login."
        for name in login.profiles:
            try:
                status = self.refresh(name)
            except CreddError as exc:
                said.append(f"{name}: {exc.message}")
                continue
            if status.state == State.FRESH:
                said.append(f"{name}: fresh.")
            else:
                why = (status.error or {}).get("message") or status.waiting_for or ""
                said.append(f"{name}: {status.state}" + (f" ({why})." if why else "."))
        return " ".join(said)

    def _end(self, login: DeviceLogin, state: str, message: str) -> None:
        with self._lock:
            login.state, login.message = state, message
            login.finished_at = self.clock.now()
        if state == FAILED:
            log.warning("device-code login %s for %s: %s", login.id, login.target.label, message)


__all__ = ["DeviceLogin", "DeviceLogins"]
