"""What the Jupyter extension shows the browser, from the daemon's status (pure functions)."""

from __future__ import annotations

import json
from typing import Any

from credd.jupyter import views
from credd.jupyter.handlers import valid_profile


def status(name: str, state: str, **extra: Any) -> dict[str, Any]:
    base = {
        "name": name, "kind": "sso", "state": state, "expires_at": None,
        "expires_in_seconds": None, "next_refresh_at": None, "next_refresh_in_seconds": None,
        "waiting_for": None, "error": None, "mfa_source": None, "file_profile": None,
        "last_refresh_at": None, "key_id": "...WXYZ", "plan": "a plan", "longest_lifetime": None,
    }  # fmt: skip
    base.update(extra)
    return base


def test_a_fresh_profile_needs_nobody() -> None:
    fresh = status(
        "science", "fresh", expires_at="2026-12-02T20:00:00Z", expires_in_seconds=7300,
        next_refresh_in_seconds=3700,
    )  # fmt: skip
    view = views.profile_view(fresh)
    assert view == {
        "name": "science",
        "kind": "sso",
        "state": "fresh",
        "expires_at": "2026-12-02T20:00:00Z",
        "seconds_left": 7300,
        "needs_person": False,
        "person_action": None,
        "person_profile": None,
        "message": "fresh: 2h01m left, next refresh in 1h01m",
        "error_code": None,
    }


def test_people_are_asked_for_the_right_thing_on_the_right_profile() -> None:
    login = views.profile_view(
        status("science", "login_required", waiting_for="an SSO login: run credd login science")
    )
    assert (login["needs_person"], login["person_action"], login["person_profile"]) == (
        True, "sso_login", "science",
    )  # fmt: skip
    mfa = views.profile_view(
        status("desk", "needs_mfa", kind="session-token", waiting_for="run `credd mfa desk`")
    )
    assert (mfa["person_action"], mfa["person_profile"]) == ("mfa_code", "desk")
    # a role behind an MFA session: the code goes to the session's profile
    role = views.profile_view(
        status("admin", "needs_mfa", kind="assume-role", waiting_for="credd mfa base-mfa.")
    )
    assert (role["person_action"], role["person_profile"]) == ("mfa_code", "base-mfa")
    # a login named by its sso-session is started through this profile
    session = views.profile_view(
        status("dev", "login_required", waiting_for="credd login --sso-session corp")
    )
    assert (session["person_action"], session["person_profile"]) == ("sso_login", "dev")
    # fresh, but its session asks a person ahead of expiry: red before it stops
    ahead = views.profile_view(
        status("desk", "fresh", expires_in_seconds=600, waiting_for="soon: credd mfa desk")
    )
    assert ahead["needs_person"] and ahead["person_action"] == "mfa_code"


def test_errors_need_a_person_without_a_one_click_action() -> None:
    error = {
        "code": "secret_missing", "message": "no keys for keys", "hint": "run: credd keys set keys",
    }  # fmt: skip
    view = views.profile_view(status("keys", "error", error=error))
    assert view["needs_person"] and view["person_action"] is None
    assert view["message"] == "no keys for keys (run: credd keys set keys)"
    assert view["error_code"] == "secret_missing"
    backoff = views.profile_view(status("x", "backoff", waiting_for="AWS to answer again"))
    assert not backoff["needs_person"] and backoff["message"] == "AWS to answer again"


def test_nothing_but_the_listed_fields_reaches_the_browser() -> None:
    leaky = status("p", "fresh", SecretAccessKey="s3cr3t-value", SessionToken="tok-value")
    leaky["error"] = {"code": "x", "message": "m", "SecretAccessKey": "s3cr3t-value"}
    answer = views.status_view(
        {"version": 1, "daemon": {"pid": 12, "socket": "/s", "token": "tok-value"},
         "profiles": [leaky]},
        daemon="running", started_by_extension=False, message=None,
    )  # fmt: skip
    text = json.dumps(answer)
    assert "s3cr3t-value" not in text and "tok-value" not in text
    assert "key_id" not in text and "plan" not in text
    assert set(answer) == {"daemon", "started_by_extension", "message", "pid", "profiles"}
    assert answer["pid"] == 12


def test_login_and_mfa_answers() -> None:
    login = {
        "id": "0123456789abcdef", "state": "pending", "message": "", "label": "corp",
        "profile": "dev", "user_code": "ABCD-EFGH", "verification_uri": "https://x/device",
        "verification_uri_complete": "https://x/device?user_code=ABCD-EFGH", "expires_in": 590,
        "device_code": "never-shown", "profiles": ["dev"],
    }  # fmt: skip
    started = views.login_started_view(login)
    assert set(started) == {
        "login_id", "user_code", "verification_uri", "verification_uri_complete",
        "expires_in", "label", "profile",
    }  # fmt: skip
    assert "never-shown" not in json.dumps(started)
    done = views.login_state_view({**login, "state": "done", "message": "Signed in."})
    assert done["state"] == "done" and done["user_code"] is None
    assert views.login_state_view({"state": "weird"})["state"] == "failed"
    ok = views.mfa_view(status("desk", "fresh", expires_in_seconds=3600))
    assert ok["ok"] is True and ok["profile"]["name"] == "desk"
    assert views.mfa_view(status("desk", "needs_mfa"))["ok"] is False


def test_profile_names_checked_before_the_daemon_is_asked() -> None:
    assert valid_profile("work-data") and valid_profile("a.b_c@d+e=f,g:h")
    for bad in ("", ".hidden", "-x", "a/b", "a b", "x" * 129, "é"):
        assert not valid_profile(bad), bad
