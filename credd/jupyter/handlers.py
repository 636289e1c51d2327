"""The REST API under ``/credd/api/`` (see :mod:`credd.jupyter`).

Every handler is a Jupyter ``APIHandler`` and every method ``@tornado.web.authenticated``: the
server's own token or login cookie is required (403 without), and a POST from a cookie session
needs the ``_xsrf`` cookie echoed in ``X-XSRFToken`` (the server checks it; token-authenticated
requests are exempt, as everywhere in Jupyter). Calls to the daemon (blocking, over its unix
socket with :class:`credd.client.Client`) run in a worker thread. Answers are built by
:mod:`credd.jupyter.views` from explicit fields: no credential reaches the browser.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from tornado.ioloop import IOLoop

from credd.client import Client
from credd.errors import CreddError, DaemonUnavailable
from credd.jupyter import views
from credd.jupyter.supervisor import DaemonSupervisor

T = TypeVar("T")

#: what the daemon accepts as a profile name (docs/socket-api.md), checked before asking it
_PROFILE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@+=,:")
_HEX = frozenset("0123456789abcdef")
MAX_BODY = 4096


def valid_profile(name: str) -> bool:
    return 0 < len(name) <= 128 and set(name) <= _PROFILE_CHARS and name[0] not in ".-@+=,:"


class CreddHandler(APIHandler):
    """Shared plumbing: the supervisor, a client, JSON answers, errors as JSON."""

    @property
    def supervisor(self) -> DaemonSupervisor:
        sup: DaemonSupervisor = self.settings["credd_supervisor"]
        return sup

    def client(self) -> Client:
        return Client(self.supervisor.socket)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await IOLoop.current().run_in_executor(None, fn, *args)

    def answer(self, data: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data))

    def fail(self, status: int, message: str, code: str, **extra: Any) -> None:
        self.answer({"message": message, "code": code, **extra}, status)

    def fail_with(self, exc: CreddError, **extra: Any) -> None:
        status = 503 if isinstance(exc, DaemonUnavailable) else exc.http_status
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        self.fail(status, message, exc.code, **extra)

    def json_body(self) -> dict[str, Any] | None:
        raw = self.request.body or b"{}"
        if len(raw) > MAX_BODY:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def status_payload(self) -> dict[str, Any]:
        sup = self.supervisor
        try:
            raw: dict[str, Any] | None = await self.blocking(self.client().status)
            daemon, message = "running", None
        except CreddError:
            raw = None
            problem = await self.blocking(sup.setup_problem)
            daemon = "needs_setup" if problem else "stopped"
            if problem is None and sup.starting:
                message = "the credd daemon is starting"
            else:
                message = problem or sup.start_error or "the credd daemon is not running"
        started = await self.blocking(lambda: sup.started_by_extension)
        return views.status_view(raw, daemon=daemon, started_by_extension=started, message=message)


class StatusHandler(CreddHandler):
    """``GET status``: the daemon and every managed profile."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.answer(await self.status_payload())


class DaemonHandler(CreddHandler):
    """``POST daemon/start``: start the daemon now (after setting up the store, or after
    ``credd stop``); answers with the status."""

    @tornado.web.authenticated
    async def post(self, action: str) -> None:
        if action != "start":
            self.fail(404, f"no such action: {action[:40]}", "not_found")
            return
        if not self.settings.get("credd_start_daemon", True):
            self.fail(409, "this server does not start the daemon (c.CreddApp.start_daemon)",
                      "start_disabled")  # fmt: skip
            return
        await self.blocking(self.supervisor.ensure_running)
        self.answer(await self.status_payload())


class LoginHandler(CreddHandler):
    """``POST login/<profile>`` starts a device-code login; ``GET login/<login_id>`` tells
    how it goes."""

    @tornado.web.authenticated
    async def post(self, profile: str) -> None:
        if not valid_profile(profile):
            self.fail(400, "that is not a valid profile name", "bad_request")
            return
        try:
            reply = await self.blocking(self.client().start_login, profile)
        except CreddError as exc:
            self.fail_with(exc)
            return
        self.answer(views.login_started_view(reply.get("login") or {}))

    @tornado.web.authenticated
    async def get(self, login_id: str) -> None:
        if len(login_id) != 16 or not set(login_id) <= _HEX:
            self.fail(404, "no such login", "not_found")
            return
        try:
            reply = await self.blocking(self.client().login, login_id)
        except CreddError as exc:
            self.fail_with(exc)
            return
        self.answer(views.login_state_view(reply.get("login") or {}))


class MfaHandler(CreddHandler):
    """``POST mfa/<profile>`` with ``{"code": "123456"}``: ``{"ok", "message"}``; a code the
    daemon or AWS refuses is ``ok: false`` with the reason (HTTP 200), a malformed body 400."""

    @tornado.web.authenticated
    async def post(self, profile: str) -> None:
        body = self.json_body()
        code = body.get("code") if body is not None else None
        if not valid_profile(profile) or not isinstance(code, str) or not 0 < len(code) <= 16:
            self.answer(
                {"ok": False, "message": 'send {"code": "123456"} for a valid profile',
                 "code": "bad_request"},
                400,
            )  # fmt: skip
            return
        try:
            reply = await self.blocking(self.client().push_mfa, profile, code.strip())
        except CreddError as exc:
            message = exc.message + (f" ({exc.hint})" if exc.hint else "")
            self.answer({"ok": False, "message": message, "code": exc.code})
            return
        self.answer(views.mfa_view(reply.get("profile")))


def handlers() -> list[tuple[str, type[CreddHandler]]]:
    """URL patterns (relative to the server's base URL) and their handlers."""
    return [
        (r"/credd/api/status", StatusHandler),
        (r"/credd/api/daemon/([^/]+)", DaemonHandler),
        (r"/credd/api/login/([^/]+)", LoginHandler),
        (r"/credd/api/mfa/([^/]+)", MfaHandler),
    ]


__all__ = ["handlers", "valid_profile"]
