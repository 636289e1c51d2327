"""What the browser is shown: the daemon's answers cut down to fields that hold no secret.

Every object here is built from an explicit list of fields (never by passing the daemon's JSON
through), so whatever the daemon adds later cannot reach the browser by accident. Pure
functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from credd.durations import format_duration

#: states in which the profile waits for a person, and the action that unblocks it
PERSON_STATES = {"needs_mfa": "mfa_code", "login_required": "sso_login"}
_ACTIONS = {"mfa": "mfa_code", "login": "sso_login"}
#: "credd mfa NAME", "credd login NAME", "credd login --sso-session NAME" inside a hint
_COMMAND = re.compile(r"credd (mfa|login) (--sso-session )?([A-Za-z0-9_][^\s]*)")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _person(
    state: str, name: str, hints: list[str], error_code: str | None
) -> tuple[str | None, str]:
    """``(person_action, person_profile)``: what a person should do, and for which profile."""
    action = PERSON_STATES.get(state) or PERSON_STATES.get(error_code or "")
    for hint in hints:
        match = _COMMAND.search(hint)
        if match is None:
            continue
        verb, session, target = match.group(1), match.group(2), match.group(3).rstrip(".,;:)`'\"")
        if action is None or action == _ACTIONS[verb]:
            # an --sso-session login is started through any profile that uses it: this one
            return _ACTIONS[verb], (name if session else target)
    return action, name


def _message(state: str, p: Mapping[str, Any], error: Mapping[str, Any]) -> str:
    message, hint = _text(error.get("message")), _text(error.get("hint"))
    if message:
        return message + (f" ({hint})" if hint else "")
    waiting = _text(p.get("waiting_for"))
    if waiting:
        return waiting
    left = _int(p.get("expires_in_seconds"))
    if state == "fresh" and left is not None:
        nxt = _int(p.get("next_refresh_in_seconds"))
        return f"fresh: {format_duration(left)} left" + (
            f", next refresh in {format_duration(nxt)}" if nxt is not None and nxt > 0 else ""
        )
    return state.replace("_", " ")


def profile_view(p: Mapping[str, Any]) -> dict[str, Any]:
    """One profile as ``GET /credd/api/status`` shows it."""
    name = str(p.get("name") or "")
    state = str(p.get("state") or "unknown")
    raw_error = p.get("error")
    error: Mapping[str, Any] = raw_error if isinstance(raw_error, Mapping) else {}
    code = _text(error.get("code"))
    hints = [h for h in (_text(p.get("waiting_for")), _text(error.get("hint"))) if h]
    action, target = _person(state, name, hints, code)
    return {
        "name": name,
        "kind": _text(p.get("kind")),
        "state": state,
        "expires_at": _text(p.get("expires_at")),
        "seconds_left": _int(p.get("expires_in_seconds")),
        "needs_person": action is not None or state == "error",
        "person_action": action,
        "person_profile": target if action is not None else None,
        "message": _message(state, p, error),
        "error_code": code,
    }


def status_view(
    daemon_status: Mapping[str, Any] | None,
    *,
    daemon: str,
    started_by_extension: bool,
    message: str | None,
) -> dict[str, Any]:
    """The whole ``GET /credd/api/status`` answer."""
    profiles = (daemon_status or {}).get("profiles") or []
    info = (daemon_status or {}).get("daemon") or {}
    return {
        "daemon": daemon,
        "started_by_extension": started_by_extension,
        "message": message,
        "pid": _int(info.get("pid")) if isinstance(info, Mapping) else None,
        "profiles": [profile_view(p) for p in profiles if isinstance(p, Mapping)],
    }


def login_started_view(login: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /credd/api/login/<profile>``: what the person needs to approve the login."""
    return {
        "login_id": str(login.get("id") or ""),
        "user_code": _text(login.get("user_code")),
        "verification_uri": _text(login.get("verification_uri")),
        "verification_uri_complete": _text(login.get("verification_uri_complete")),
        "expires_in": _int(login.get("expires_in")),
        "label": _text(login.get("label")),
        "profile": _text(login.get("profile")),
    }


def login_state_view(login: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /credd/api/login/<login_id>``."""
    state = str(login.get("state") or "failed")
    return {
        "login_id": str(login.get("id") or ""),
        "state": state if state in {"pending", "done", "failed"} else "failed",
        "message": _text(login.get("message")) or "",
        "user_code": _text(login.get("user_code")) if state == "pending" else None,
        "verification_uri": _text(login.get("verification_uri")),
        "verification_uri_complete": _text(login.get("verification_uri_complete")),
        "expires_in": _int(login.get("expires_in")),
    }


def mfa_view(profile: Mapping[str, Any] | None) -> dict[str, Any]:
    """``POST /credd/api/mfa/<profile>`` after the daemon took the code."""
    view = profile_view(profile or {})
    ok = view["state"] not in {"needs_mfa", "login_required", "error"}
    return {"ok": ok, "message": view["message"], "profile": view}


__all__ = [
    "PERSON_STATES",
    "login_started_view",
    "login_state_view",
    "mfa_view",
    "profile_view",
    "status_view",
]
