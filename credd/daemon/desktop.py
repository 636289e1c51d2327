"""Visible requests to a person: one desktop notification per need, never a prompt.

The daemon hands the :class:`Notifier` every profile's :class:`~credd.models.ProfileStatus` now
and then (``observe``). Profiles are grouped into *needs*: what a person has to do, once, to
unblock them all. Ten roles behind one MFA session are one need (``credd mfa user``), an IAM
Identity Center login shared by many profiles is one need (``credd login --sso-session corp``),
a parked error is one need per error code and hint. A need gets one notification when it
appears; nothing more while it lasts (unless ``renotify_after`` is set); the notification is
withdrawn when the need goes away, and a new one is sent if it comes back.

Notifications go to ``org.freedesktop.Notifications`` on the session D-Bus (jeepney, imported
only when there is something to say). With no session bus or no such service the notifier is
silently off: one debug log line, and another look after ``retry_after`` while a need is still
unsent, so a desktop that logs in after the daemon started still gets told. The daemon never
prompts on a terminal and never opens a browser; ``credd status`` and the socket's errors say
the same thing. See docs/notifications.md.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from credd.clock import Clock
from credd.engine.state import State

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
APP_NAME = "credd"
#: seconds to wait for the bus or the notification server before giving up on a call
CALL_TIMEOUT = 2.0
URGENCY_NORMAL = 1
URGENCY_CRITICAL = 2

#: "credd mfa NAME", "credd login NAME", "credd login --sso-session NAME" inside a hint
_COMMAND_RE = re.compile(r"credd (?:mfa|login)(?: --sso-session)? [A-Za-z0-9_][^\s]*")
_PERSON_STATES: dict[str, str] = {State.NEEDS_MFA: "mfa", State.LOGIN_REQUIRED: "login"}


@dataclass(frozen=True)
class Need:
    """Something a person must do; ``key`` identifies it across observations."""

    kind: str  # "needs_mfa" | "login_required" | an error code ("secret_missing", ...)
    subject: str  # the command to run, or (errors) the hint or message
    profiles: tuple[str, ...]
    command: str | None = None
    message: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.subject)

    def summary(self) -> str:
        if self.kind == State.NEEDS_MFA:
            return "credd needs an MFA code"
        if self.kind == State.LOGIN_REQUIRED:
            return "credd needs you to sign in"
        return f"credd stopped refreshing {_who(self.profiles)}"

    def body(self) -> str:
        lines: list[str] = []
        if self.command:
            lines.append(f"Run: {self.command}")
        if self.message and self.kind not in _PERSON_STATES:
            lines.append(f"{self.message} ({self.kind})")
        if self.subject != self.command and self.kind not in _PERSON_STATES:
            lines.append(self.subject)
        lines.append(f"For {_who(self.profiles)}.")
        return "\n".join(lines)


def _who(profiles: tuple[str, ...]) -> str:
    if len(profiles) == 1:
        return f"profile {profiles[0]}"
    shown = ", ".join(profiles[:4])
    more = f" and {len(profiles) - 4} more" if len(profiles) > 4 else ""
    return f"{len(profiles)} profiles ({shown}{more})"


def _command(text: str | None) -> str | None:
    match = _COMMAND_RE.search(text or "")
    return match.group(0).rstrip(".,;:)") if match else None


def needs_of(statuses: Iterable[ProfileStatusLike]) -> dict[tuple[str, str], Need]:
    """Group profiles by what a person must do for them. Pure; holds no secret.

    - ``needs_mfa`` / ``login_required``: keyed by the command in ``waiting_for`` (every profile
      behind one MFA session or one SSO login shows the same command);
    - a fresh (or refreshing, backing-off) profile whose session is asking ahead for a person
      shows that command in ``waiting_for`` too: the same need;
    - ``error``: keyed by the error code and its hint (a session's error reaches its roles as
      the same error, so they group).
    """
    grouped: dict[tuple[str, str], tuple[str, str, str | None, str | None, list[str]]] = {}
    for status in statuses:
        found = _need_of(status)
        if found is None:
            continue
        kind, subject, command, message = found
        entry = grouped.setdefault((kind, subject), (kind, subject, command, message, []))
        entry[4].append(status.name)
    return {
        key: Need(kind, subject, tuple(sorted(names)), command, message)
        for key, (kind, subject, command, message, names) in grouped.items()
    }


def _need_of(status: ProfileStatusLike) -> tuple[str, str, str | None, str | None] | None:
    command = _command(status.waiting_for)
    if status.state in _PERSON_STATES:
        verb = _PERSON_STATES[status.state]
        if command is None or not command.startswith(f"credd {verb}"):
            command = f"credd {verb} {status.name}"
        return status.state, command, command, None
    if status.state == State.ERROR:
        err = status.error or {}
        code = str(err.get("code") or "error")
        message = str(err.get("message") or "") or None
        hint = str(err.get("hint") or status.waiting_for or "") or None
        return code, hint or message or status.name, _command(hint), message
    if command is not None:  # fresh, but its session is asking a person ahead of expiry
        kind = State.NEEDS_MFA if command.startswith("credd mfa") else State.LOGIN_REQUIRED
        return kind, command, command, None
    return None


class ProfileStatusLike(Protocol):
    """The fields of :class:`credd.models.ProfileStatus` the notifier reads."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def waiting_for(self) -> str | None: ...
    @property
    def error(self) -> dict[str, Any] | None: ...


class NotificationBus(Protocol):
    """Where notifications go (a seam: the D-Bus one below in production)."""

    def notify(self, summary: str, body: str, *, replaces_id: int, urgency: int) -> int:
        """Show (or replace) a notification; returns its id. Raises ``OSError``/``RuntimeError``
        (or a jeepney error) when it cannot."""

    def close_notification(self, notification_id: int) -> None:
        """Withdraw a notification (best effort)."""

    def close(self) -> None:
        """Release the connection."""


#: returns a connected bus, or ``None`` (with the reason) when there is none to use
BusFactory = Callable[[], tuple[NotificationBus | None, str]]


def session_bus_address(environ: Mapping[str, str]) -> str | None:
    """``DBUS_SESSION_BUS_ADDRESS``, else ``$XDG_RUNTIME_DIR/bus`` when that socket exists (what
    systemd's user manager provides even to services started before any desktop)."""
    address = environ.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return address
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        path = os.path.join(runtime, "bus")
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return f"unix:path={path}"
        except OSError:
            return None
    return None


class DbusNotifications:
    """``org.freedesktop.Notifications`` over a jeepney blocking connection."""

    def __init__(self, connection: Any, *, timeout: float = CALL_TIMEOUT) -> None:
        self._conn = connection
        self._timeout = timeout
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls, environ: Mapping[str, str] | None = None
    ) -> tuple[DbusNotifications | None, str]:
        """Connect to the session bus and check a notification server is there or activatable."""
        address = session_bus_address(os.environ if environ is None else environ)
        if address is None:
            return (
                None,
                "no session D-Bus (DBUS_SESSION_BUS_ADDRESS unset, no $XDG_RUNTIME_DIR/bus)",
            )
        try:
            from jeepney import DBus
            from jeepney.io.blocking import open_dbus_connection
        except ImportError:
            return None, "jeepney is not installed"
        try:
            conn = open_dbus_connection(bus=address, auth_timeout=CALL_TIMEOUT)
        except (OSError, RuntimeError, ValueError) as exc:
            return None, f"cannot connect to the session D-Bus ({type(exc).__name__})"
        try:
            bus = DBus()
            owned = _call(conn, bus.NameHasOwner(BUS_NAME), CALL_TIMEOUT)[0]
            activatable = (
                owned or BUS_NAME in _call(conn, bus.ListActivatableNames(), CALL_TIMEOUT)[0]
            )
        except Exception as exc:  # a bus that misbehaves is a bus we do not use
            conn.close()
            return None, f"the session D-Bus did not answer ({type(exc).__name__})"
        if not activatable:
            conn.close()
            return None, f"no {BUS_NAME} service on the session D-Bus"
        return cls(conn), "ok"

    def notify(self, summary: str, body: str, *, replaces_id: int, urgency: int) -> int:
        from jeepney import DBusAddress, new_method_call

        target = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
        message = new_method_call(
            target,
            "Notify",
            "susssasa{sv}i",
            (
                APP_NAME,
                replaces_id,
                "dialog-password",
                summary,
                _escape_markup(body),
                [],
                {"urgency": ("y", urgency), "desktop-entry": ("s", APP_NAME)},
                0,  # never expires on its own: withdrawn when the need is met
            ),
        )
        with self._lock:
            reply = _call(self._conn, message, self._timeout)
        return int(reply[0])

    def close_notification(self, notification_id: int) -> None:
        from jeepney import DBusAddress, new_method_call

        target = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
        message = new_method_call(target, "CloseNotification", "u", (notification_id,))
        with self._lock:
            _call(self._conn, message, self._timeout)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _call(conn: Any, message: Any, timeout: float) -> Any:
    from jeepney.wrappers import unwrap_msg

    return unwrap_msg(conn.send_and_get_reply(message, timeout=timeout))


def _escape_markup(text: str) -> str:
    """Servers may read the body as markup (the spec's ``body-markup``): escape it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class _Tracked:
    need: Need
    notification_id: int = 0  # 0: not shown (yet)
    sent_at: datetime | None = None


@dataclass
class Notifier:
    """Turns status snapshots into at most one desktop notification per need. Thread-safe."""

    clock: Clock
    bus_factory: BusFactory | None = None
    environ: Mapping[str, str] | None = None
    #: show a need again after this long (``None``: once per need)
    renotify_after: timedelta | None = None
    #: with no bus or service, look again after this long (only while something is unsent)
    retry_after: timedelta = timedelta(minutes=5)
    _tracked: dict[tuple[str, str], _Tracked] = field(default_factory=dict, init=False)
    _bus: NotificationBus | None = field(default=None, init=False)
    _retry_at: datetime | None = field(default=None, init=False)
    _said_off: str | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def observe(self, statuses: Iterable[ProfileStatusLike]) -> None:
        """Compare with the last snapshot: withdraw what was met, show what is new. Never raises."""
        current = needs_of(statuses)
        with self._lock:
            now = self.clock.now()
            for key in [k for k in self._tracked if k not in current]:
                gone = self._tracked.pop(key)
                log.info("met: %s for %s", gone.need.subject, ", ".join(gone.need.profiles))
                if gone.notification_id:
                    self._withdraw(gone.notification_id)
            for key, need in current.items():
                tracked = self._tracked.get(key)
                if tracked is None:
                    tracked = self._tracked[key] = _Tracked(need)
                    log.info(
                        "a person is needed: %s for %s", need.subject, ", ".join(need.profiles)
                    )
                else:
                    tracked.need = need  # the latest profile list, for a re-notification
                if self._due(tracked, now):
                    self._send(tracked, now)

    def pending(self) -> list[Need]:
        """Needs known right now (shown or not)."""
        with self._lock:
            return [t.need for t in self._tracked.values()]

    def close(self) -> None:
        """Drop the bus connection (the daemon is stopping); notifications stay shown."""
        with self._lock:
            if self._bus is not None:
                self._drop_bus()

    # -- internals (lock held) ---------------------------------------------------------------

    def _due(self, tracked: _Tracked, now: datetime) -> bool:
        if tracked.sent_at is None:
            return True
        return self.renotify_after is not None and now - tracked.sent_at >= self.renotify_after

    def _send(self, tracked: _Tracked, now: datetime) -> None:
        bus = self._connected(now)
        if bus is None:
            return
        need = tracked.need
        urgency = URGENCY_NORMAL if need.kind in _PERSON_STATES else URGENCY_CRITICAL
        try:
            tracked.notification_id = bus.notify(
                need.summary(), need.body(), replaces_id=tracked.notification_id, urgency=urgency
            )
        except Exception as exc:  # the server went away: off until the next look
            self._off(now, f"Notify failed ({type(exc).__name__})")
            self._drop_bus()
            return
        tracked.sent_at = now
        log.info("notified: %s (notification %d)", need.subject, tracked.notification_id)

    def _withdraw(self, notification_id: int) -> None:
        if self._bus is None:
            return
        try:
            self._bus.close_notification(notification_id)
        except Exception as exc:
            log.debug("CloseNotification(%d) failed: %s", notification_id, type(exc).__name__)

    def _connected(self, now: datetime) -> NotificationBus | None:
        if self._bus is not None:
            return self._bus
        if self._retry_at is not None and now < self._retry_at:
            return None
        factory = self.bus_factory or (lambda: DbusNotifications.connect(self.environ))
        try:
            bus, reason = factory()
        except Exception as exc:
            bus, reason = None, f"connecting failed ({type(exc).__name__})"
        if bus is None:
            self._off(now, reason)
            return None
        self._bus, self._retry_at, self._said_off = bus, None, None
        log.info("desktop notifications: on")
        return bus

    def _off(self, now: datetime, reason: str) -> None:
        self._retry_at = now + self.retry_after
        if self._said_off != reason:  # one line per reason, not one per look
            log.debug("desktop notifications off: %s", reason)
            self._said_off = reason

    def _drop_bus(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            try:
                bus.close()
            except Exception as exc:
                log.debug("closing the notification bus: %s", type(exc).__name__)
