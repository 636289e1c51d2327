"""Routing unsigned SSO-OIDC and portal requests, with the test knobs and call counters.

botocore sends both services unsigned (``auth: smithy.api#noAuth``) to ``{endpoint_url}`` plus
the operation's path, so the gateway recognises them by method and path when a request has no
SigV4 ``Authorization`` header; every other request still has to be signed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from credd_sandbox import sso_oidc, sso_portal
from credd_sandbox.awsxml import AwsFault, new_request_id
from credd_sandbox.knobs import Counters, Knob, KnobKind, Knobs
from credd_sandbox.sso_state import GRANT_NAMES, SsoState
from credd_sandbox.sso_wire import OIDC, PORTAL, Reply, SsoCall, fault, render_fault
from credd_sandbox.state import SandboxState

log = logging.getLogger(__name__)

# werkzeug drops request headers with an underscore, so the gateway's request handler copies
# the portal's bearer token header into the WSGI environ under this key.
BEARER_HEADER = "x-amz-sso_bearer_token"
BEARER_ENVIRON = "credd.sso_bearer_token"
_MAX_BODY = 64 * 1024

ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/client/register"): (OIDC, "RegisterClient"),
    ("POST", "/device_authorization"): (OIDC, "StartDeviceAuthorization"),
    ("POST", "/token"): (OIDC, "CreateToken"),
    ("GET", "/authorize"): (OIDC, "Authorize"),
    ("GET", "/authorize/continue"): (OIDC, "AuthorizeContinue"),
    ("GET", "/device"): (OIDC, "DevicePage"),
    ("GET", "/federation/credentials"): (PORTAL, "GetRoleCredentials"),
    ("GET", "/assignment/accounts"): (PORTAL, "ListAccounts"),
    ("GET", "/assignment/roles"): (PORTAL, "ListAccountRoles"),
    ("POST", "/logout"): (PORTAL, "Logout"),
}
StartResponse = Callable[..., Any]


def sso_route(method: str, path: str) -> tuple[str, str] | None:
    """``(service, action)`` for an SSO-OIDC or portal path, else ``None``."""
    path = path.split("?", 1)[0]
    if len(path) > 1:
        path = path.rstrip("/")
    return ROUTES.get((method.upper(), path))


class SsoService:
    """Answers routed requests; the gateway calls it for unsigned requests on SSO paths."""

    def __init__(
        self, sandbox: SandboxState, sso: SsoState, knobs: Knobs, counters: Counters
    ) -> None:
        self.sandbox = sandbox
        self.sso = sso
        self.knobs = knobs
        self.counters = counters
        self.handlers: dict[str, Callable[[SsoCall], Reply]] = {
            "RegisterClient": partial(sso_oidc.register_client, sso),
            "StartDeviceAuthorization": partial(sso_oidc.start_device_authorization, sso),
            "CreateToken": partial(sso_oidc.create_token, sso),
            "Authorize": partial(sso_oidc.authorize, sso),
            "AuthorizeContinue": partial(sso_oidc.authorize_continue, sso),
            "DevicePage": partial(sso_oidc.device_page, sso),
            "GetRoleCredentials": partial(sso_portal.get_role_credentials, sandbox, sso),
            "ListAccounts": partial(sso_portal.list_accounts, sandbox, sso),
            "ListAccountRoles": partial(sso_portal.list_account_roles, sandbox, sso),
            "Logout": partial(sso_portal.logout, sandbox, sso),
        }

    def __call__(
        self,
        request: Request,
        environ: dict[str, Any],
        start_response: StartResponse,
        route: tuple[str, str],
    ) -> Iterable[bytes]:
        ticket = self.counters.begin()
        try:
            return self._call(request, environ, start_response, route, ticket)
        finally:
            self.counters.end()

    def _call(
        self,
        request: Request,
        environ: dict[str, Any],
        start_response: StartResponse,
        route: tuple[str, str],
        ticket: int,
    ) -> Iterable[bytes]:
        service, action = route
        request_id = new_request_id()
        body, problem = self._body(request)
        names = [action]
        if action == "CreateToken":
            grant = body.get("grantType")
            names.insert(0, f"CreateToken:{GRANT_NAMES.get(str(grant), str(grant))}")
        client_id = body.get("clientId")
        call = SsoCall(
            service=service,
            action=action,
            method=request.method,
            query={k: v for k, v in request.args.items()},
            body=body,
            base_url=f"{request.scheme}://{request.host}",
            bearer=environ.get(BEARER_ENVIRON) or None,
            key=client_id if isinstance(client_id, str) else None,
        )
        ok = False
        try:
            self._apply_knobs(service, names)
            if problem is not None:
                raise problem
            reply = self.handlers[action](call)
            ok = reply.status < 400
            status, headers, data = reply.encode(request_id)
        except AwsFault as error:
            log.info("%s %s: %s", service, action, error.code)
            status, headers, data = render_fault(error, service, request_id)
        finally:
            self.counters.record(names[-1], call.key, ok, ticket)
            if len(names) > 1:
                self.counters.record(names[0], None, ok, ticket)
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}", headers)
        return [data]

    @staticmethod
    def _body(request: Request) -> tuple[dict[str, Any], AwsFault | None]:
        if request.method != "POST":
            return {}, None
        raw = request.get_data(cache=False)[: _MAX_BODY + 1]
        if len(raw) > _MAX_BODY:
            return {}, fault("InvalidRequestException", "Request body too large")
        if not raw.strip():
            return {}, None
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}, fault("InvalidRequestException", "Request body is not valid JSON")
        if not isinstance(parsed, dict):
            return {}, fault("InvalidRequestException", "Request body must be a JSON object")
        return parsed, None

    def _take(self, kind: KnobKind, service: str, names: list[str]) -> Knob | None:
        for name in names:
            knob = self.knobs.take(kind, service, name)
            if knob is not None:
                return knob
        return None

    def _apply_knobs(self, service: str, names: list[str]) -> None:
        slow = self._take("slow", service, names)
        if slow is not None and slow.seconds > 0:
            time.sleep(slow.seconds)  # a real delay, so clients' own timeouts fire
        fail = self._take("fail", service, names)
        if fail is not None:
            raise AwsFault(fail.code, fail.message, fail.status, sender=fail.status < 500)
        if self._take("throttle", service, names) is not None:
            raise fault("TooManyRequestsException", "Rate exceeded")
