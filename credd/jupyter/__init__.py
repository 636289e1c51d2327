"""credd inside Jupyter (issue 13, docs/hosted-hubs.md): a Jupyter Server extension.

``pip install --user 'credd[jupyter]'`` installs ``etc/jupyter/jupyter_server_config.d/credd.json``,
which enables it. On server start it starts the credd daemon (in a thread: the server does not
wait; ``status`` says "the credd daemon is starting" meanwhile) when none answers on its socket
(``credd daemon --detach``; the secret store is opened by the daemon from the documented
sources only, never with a prompt: see :mod:`credd.jupyter.supervisor`), and on server stop it
stops the daemon only if it started it.

REST API, under the server's base URL; every call needs the server's token or login cookie,
and a POST from a cookie session the ``X-XSRFToken`` header. No credential is ever sent.

``GET  /credd/api/status``
    ``{"daemon": "running"|"stopped"|"needs_setup", "started_by_extension": bool,
    "message": str|null, "pid": int|null, "profiles": [{"name", "kind", "state", "expires_at",
    "seconds_left", "needs_person": bool, "person_action": null|"sso_login"|"mfa_code",
    "person_profile": the profile to send the login or code for, "message", "error_code"}]}``
``POST /credd/api/daemon/start``
    start the daemon now (after ``credd store init``, or ``credd stop``); answers like status.
``POST /credd/api/login/<profile>``
    start a device-code SSO login in the daemon (no browser is opened): ``{"login_id",
    "user_code", "verification_uri", "verification_uri_complete", "expires_in", "label",
    "profile"}``; errors are ``{"message", "code"}`` with the daemon's HTTP status.
``GET  /credd/api/login/<login_id>``
    ``{"login_id", "state": "pending"|"done"|"failed", "message", "user_code" (while
    pending), "verification_uri", "verification_uri_complete", "expires_in"}``.
``POST /credd/api/mfa/<profile>`` with ``{"code": "123456"}``
    ``{"ok": bool, "message", "code"? (the error code when not ok), "profile"? (as in
    status)}``; HTTP 200 unless the body is malformed (400).
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from credd.jupyter.app import CreddApp

    return [{"module": "credd.jupyter", "app": CreddApp}]


__all__: list[str] = []
