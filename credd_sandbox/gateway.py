"""The gateway: one endpoint URL for every service.

Every AWS request is authenticated here (SigV4 checked with botocore's signer, keys and session
tokens looked up, expiry judged on the sandbox clock). STS and IAM ListMFADevices are answered
by :mod:`credd_sandbox.sts`; everything else goes to moto. ``/_sandbox/`` is the admin API.
Unsigned requests on IAM Identity Center paths (SSO-OIDC and the portal, which botocore never
signs) go to :mod:`credd_sandbox.sso_http`.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from credd_sandbox.admin import AdminApi
from credd_sandbox.awsxml import AwsFault, new_request_id, query_response, render_error
from credd_sandbox.federation import PATH as FEDERATION_PATH
from credd_sandbox.federation import FederationService
from credd_sandbox.forward import MotoForwarder
from credd_sandbox.knobs import Counters, Knobs
from credd_sandbox.motoserver import MotoIam
from credd_sandbox.presigned import (
    PresignedAuth,
    check_presigned_window,
    parse_presigned_or_fault,
    verify_presigned,
)
from credd_sandbox.sigv4 import (
    AuthHeader,
    check_payload_hash,
    check_skew,
    parse_authorization,
    request_timestamp,
    verify_signature,
)
from credd_sandbox.sso_http import BEARER_ENVIRON, BEARER_HEADER, SsoService, sso_route
from credd_sandbox.sso_state import SsoState
from credd_sandbox.state import KeyRecord, SandboxState
from credd_sandbox.sts import IAM_ACTIONS, STS_ACTIONS

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_sandbox/"
StartResponse = Callable[..., Any]
_INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105


@dataclass(frozen=True)
class Arrival:
    """When a request started: on the clock signing dates are checked against (real time, or
    the sandbox clock with ``date_clock``) and on the sandbox clock (expiry)."""

    wall: datetime
    sandbox: datetime


def _status_line(status: int) -> str:
    return f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}"


def _masked(key_id: str) -> str:
    return f"...{key_id[-4:]}"


class Gateway:
    """The WSGI application."""

    def __init__(
        self,
        state: SandboxState,
        *,
        forwarder: MotoForwarder | None,
        moto_iam: MotoIam | None,
        knobs: Knobs | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.state = state
        self.knobs = knobs or Knobs()
        self.counters = counters or Counters()
        self.forwarder = forwarder
        self.info: dict[str, Any] = {}
        self.sso = SsoState(state.clock)
        self.sso_service = SsoService(state, self.sso, self.knobs, self.counters)
        self.federation = FederationService(state)
        self.admin = AdminApi(
            state, self.knobs, self.counters, moto_iam, lambda: self.info, sso=self.sso
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith(ADMIN_PREFIX):
            status, payload = self.admin.handle(request)
            data = json.dumps(payload).encode()
            start_response(
                _status_line(status),
                [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
            )
            return [data]
        if request.path == FEDERATION_PATH and request.method == "GET":
            return self.federation(request, start_response)
        route = unsigned_sso_route(
            request.method, request.path, request.headers.get("Authorization")
        )
        if route is not None:
            return self.sso_service(request, environ, start_response, route)
        return self._aws(request, environ, start_response)

    # -- AWS requests --------------------------------------------------------------------

    def _aws(
        self, request: Request, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        # Judged when the request starts, as AWS does: an upload that started with valid
        # credentials is not refused because they expired while its body was streaming.
        arrived = Arrival(wall=self.state.date_now(), sandbox=self.state.clock.now())
        ticket = self.counters.begin()  # after the arrival: in_flight > 0 means it is taken
        try:
            return self._aws_call(request, environ, start_response, arrived, ticket)
        finally:
            self.counters.end()

    def _aws_call(
        self,
        request: Request,
        environ: dict[str, Any],
        start_response: StartResponse,
        arrived: Arrival,
        ticket: int,
    ) -> Iterable[bytes]:
        request_id = new_request_id()
        raw_uri = str(environ.get("RAW_URI") or request.full_path)
        headers = {k.lower(): v for k, v in request.headers.items()}
        auth = parse_authorization(headers.get("authorization"))
        presign_fault = None
        if auth is None:
            auth, presign_fault = parse_presigned_or_fault(raw_uri)
        service = auth.service if auth else None
        content_type = headers.get("content-type", "")
        body = request.get_data(cache=False)
        params = self._params(service, raw_uri, body, content_type)
        action = self._action(service, params, headers, request.method)
        ok = False
        try:
            self._apply_knobs(service, action)
            if presign_fault is not None:
                raise presign_fault
            if auth is None and action == "AssumeRoleWithWebIdentity":  # unsigned: a JWT
                data, result_headers = self._web_identity(params, request_id)
                ok = True
                start_response(_status_line(200), result_headers)
                return [data]
            caller = self._authenticate(auth, request.method, raw_uri, headers, body, arrived)
            if service == "sts" or (service == "iam" and action in IAM_ACTIONS):
                result = self._answer(service, action, caller, params, request_id)
                ok = True
                start_response(_status_line(200), result[1])
                return [result[0]]
            if service == "iam" and caller.kind == "session" and not caller.mfa:
                raise AwsFault("InvalidClientTokenId", _INVALID_TOKEN, 403)
            if self.forwarder is None:
                raise AwsFault("ServiceUnavailable", "this sandbox runs without moto", 503)
            forwarded = self.forwarder.forward(
                request.method, raw_uri, list(request.headers.items()), body
            )
            ok = forwarded.status < 400
            start_response(f"{forwarded.status} {forwarded.reason}", forwarded.headers)
            return forwarded.body
        except AwsFault as fault:
            log.info(
                "%s %s by %s: %s",
                service,
                action,
                _masked(auth.access_key_id) if auth else "anonymous",
                fault.code,
            )
            data, err_headers = render_error(fault, service, content_type, request_id)
            err_headers.append(("Content-Length", str(len(data))))
            start_response(_status_line(fault.status), err_headers)
            return [data]
        finally:
            self.counters.record(action, auth.access_key_id if auth else None, ok, ticket)

    @staticmethod
    def _params(
        service: str | None, raw_uri: str, body: bytes, content_type: str
    ) -> dict[str, str]:
        if service == "s3":
            return {}
        params = dict(parse_qsl(raw_uri.partition("?")[2], keep_blank_values=True))
        if content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return params

    @staticmethod
    def _action(
        service: str | None, params: dict[str, str], headers: dict[str, str], method: str
    ) -> str:
        if service == "s3":
            return f"s3:{method}"
        target = headers.get("x-amz-target")
        if target:
            return target.rsplit(".", 1)[-1]
        return params.get("Action") or f"{service or 'unknown'}:{method}"

    def _apply_knobs(self, service: str | None, action: str) -> None:
        slow = self.knobs.take("slow", service, action)
        if slow is not None and slow.seconds > 0:
            time.sleep(slow.seconds)  # a real delay, so clients' own timeouts fire
        fail = self.knobs.take("fail", service, action)
        if fail is not None:
            raise AwsFault(fail.code, fail.message, fail.status, sender=fail.status < 500)
        throttle = self.knobs.take("throttle", service, action)
        if throttle is not None:
            raise AwsFault("Throttling", throttle.message, 400)

    def _authenticate(
        self,
        auth: AuthHeader | None,
        method: str,
        raw_uri: str,
        headers: dict[str, str],
        body: bytes,
        arrived: Arrival,
    ) -> KeyRecord:
        if auth is None:
            raise AwsFault(
                "MissingAuthenticationToken", "Request is missing Authentication Token", 403
            )
        if isinstance(auth, PresignedAuth):
            record = self._key_record(auth, auth.token)
            verify_presigned(
                auth,
                secret=record.secret,
                method=method,
                host=headers.get("host", ""),
                raw_uri=raw_uri,
                headers=headers,
            )
            check_presigned_window(auth, arrived.sandbox)
            return self._unexpired(record, auth, arrived)
        timestamp = request_timestamp(headers)
        check_skew(timestamp, arrived.wall)
        record = self._key_record(auth, headers.get("x-amz-security-token"))
        check_payload_hash(headers, body)
        verify_signature(
            auth,
            secret=record.secret,
            method=method,
            host=headers.get("host", ""),
            raw_uri=raw_uri,
            headers=headers,
            body=body,
            timestamp=timestamp,
        )
        return self._unexpired(record, auth, arrived)

    def _key_record(self, auth: AuthHeader, token: str | None) -> KeyRecord:
        """The key the caller signed with, and its session token, checked."""
        record = self.state.key(auth.access_key_id)
        if record is None:
            if auth.service == "s3":
                raise AwsFault(
                    "InvalidAccessKeyId",
                    "The AWS Access Key Id you provided does not exist in our records.",
                    403,
                )
            raise AwsFault("InvalidClientTokenId", _INVALID_TOKEN, 403)
        if record.status != "Active":
            raise AwsFault("InvalidClientTokenId", _INVALID_TOKEN, 403)
        if record.token is None:
            if token:
                raise AwsFault("InvalidClientTokenId", _INVALID_TOKEN, 403)
        elif token is None or not _same(token, record.token):
            raise AwsFault("InvalidClientTokenId", _INVALID_TOKEN, 403)
        return record

    def _unexpired(self, record: KeyRecord, auth: AuthHeader, arrived: Arrival) -> KeyRecord:
        self.state.record_use(record, auth.service, auth.region)
        if record.expiration is not None and arrived.sandbox >= record.expiration:
            raise AwsFault(
                "ExpiredToken", "The security token included in the request is expired", 403
            )
        return record

    def _web_identity(
        self, params: dict[str, str], request_id: str
    ) -> tuple[bytes, list[tuple[str, str]]]:
        from credd_sandbox.web_identity import assume_role_with_web_identity

        result = assume_role_with_web_identity(self.state, params)
        data = query_response("AssumeRoleWithWebIdentity", "sts", result, request_id)
        return data, [
            ("Content-Type", "text/xml"),
            ("Content-Length", str(len(data))),
            ("x-amzn-RequestId", request_id),
        ]

    def _answer(
        self,
        service: str | None,
        action: str,
        caller: KeyRecord,
        params: dict[str, str],
        request_id: str,
    ) -> tuple[bytes, list[tuple[str, str]]]:
        if service == "sts":
            handler = STS_ACTIONS.get(action)
            if handler is None:
                raise AwsFault(
                    "InvalidAction",
                    f"Could not find operation {action} for version 2011-06-15 "
                    "(the sandbox's STS answers GetSessionToken, AssumeRole, "
                    "GetFederationToken, GetCallerIdentity)",
                    400,
                )
        else:
            if caller.kind == "session" and not caller.mfa:
                raise AwsFault("InvalidClientTokenId", _INVALID_TOKEN, 403)
            handler = IAM_ACTIONS[action]
        result = handler(self.state, caller, params)
        log.info("%s %s by %s", service, action, _masked(caller.access_key_id))
        data = query_response(action, service or "sts", result, request_id)
        return data, [
            ("Content-Type", "text/xml"),
            ("Content-Length", str(len(data))),
            ("x-amzn-RequestId", request_id),
        ]


def unsigned_sso_route(method: str, path: str, authorization: str | None) -> tuple[str, str] | None:
    """``(service, action)`` when this is an unsigned SSO-OIDC or portal request."""
    if parse_authorization(authorization) is not None:
        return None
    return sso_route(method, path)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class GatewayHandler(WSGIRequestHandler):
    """Werkzeug's handler, quiet, and able to drop connections for the ``down`` knob."""

    def run_wsgi(self) -> None:
        app = self.server.app
        if isinstance(app, Gateway) and not self.path.startswith(ADMIN_PREFIX):
            auth = parse_authorization(self.headers.get("Authorization"))
            sso = unsigned_sso_route(self.command, self.path, self.headers.get("Authorization"))
            service = auth.service if auth else (sso[0] if sso else None)
            if app.knobs.take("down", service, None) is not None:
                app.counters.record_dropped()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
        super().run_wsgi()

    def make_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().make_environ()
        token = self.headers.get(BEARER_HEADER)  # werkzeug drops headers with underscores
        if token:
            environ[BEARER_ENVIRON] = token
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s -> %s", self.command, self.path.split("?", 1)[0], code)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("werkzeug %s: %s", type, message % args if args else message)


def make_gateway_server(host: str, port: int, app: Gateway) -> BaseWSGIServer:
    """A threaded server for ``app`` on ``host:port`` (0: an ephemeral port)."""
    return make_server(host, port, app, threaded=True, request_handler=GatewayHandler)
