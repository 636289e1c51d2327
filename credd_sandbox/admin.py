"""The admin API under ``/_sandbox/``: JSON in and out, unsigned, loopback callers only.

See docs/sandbox.md for every route.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pyotp
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request

from credd.clock import isoformat_z, parse_iso
from credd_sandbox.admin_body import AdminError, Json, _name, _names, _number, _optional_count
from credd_sandbox.knobs import KNOB_KINDS, Counters, Knob, Knobs
from credd_sandbox.motoserver import MotoError, MotoIam
from credd_sandbox.sso_admin import SsoAdmin
from credd_sandbox.sso_state import SsoState
from credd_sandbox.state import ACCOUNT_ID, Role, SandboxState, User, random_id

log = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024


def _web_identity_rules(route: str, state: SandboxState) -> list[Rule]:
    from credd_sandbox.web_identity import admin_rules

    return admin_rules(route, state)


class AdminApi:
    """Routes admin requests to the sandbox's state, knobs and counters."""

    def __init__(
        self,
        state: SandboxState,
        knobs: Knobs,
        counters: Counters,
        moto: MotoIam | None,
        info: Callable[[], Json],
        sso: SsoState | None = None,
    ) -> None:
        self.state = state
        self.sso = sso
        self.knobs = knobs
        self.counters = counters
        self.moto = moto
        self.info = info
        route = "/_sandbox"
        self.routes = Map(
            [
                Rule(f"{route}/health", endpoint=self.health, methods=["GET"]),
                Rule(f"{route}/users", endpoint=self.create_user, methods=["POST"]),
                Rule(
                    f"{route}/users/<name>/mfa-devices",
                    endpoint=self.create_device,
                    methods=["POST"],
                ),
                Rule(f"{route}/users/<name>/policy", endpoint=self.user_policy, methods=["POST"]),
                Rule(f"{route}/roles", endpoint=self.create_role, methods=["POST"]),
                Rule(f"{route}/calls", endpoint=self.calls, methods=["GET"]),
                Rule(f"{route}/knobs", endpoint=self.get_knobs, methods=["GET"]),
                Rule(f"{route}/knobs", endpoint=self.clear_knobs, methods=["DELETE"]),
                Rule(f"{route}/knobs/<kind>", endpoint=self.set_knob, methods=["POST"]),
                Rule(f"{route}/knobs/<kind>", endpoint=self.clear_knob, methods=["DELETE"]),
                Rule(f"{route}/clock", endpoint=self.clock, methods=["GET"]),
                Rule(f"{route}/clock/advance", endpoint=self.advance, methods=["POST"]),
                Rule(f"{route}/clock/set", endpoint=self.set_clock, methods=["POST"]),
                Rule(f"{route}/settings", endpoint=self.settings, methods=["GET"]),
                Rule(f"{route}/settings", endpoint=self.update_settings, methods=["POST"]),
                Rule(f"{route}/reset", endpoint=self.reset, methods=["POST"]),
                *self._sso_rules(route),
                *_web_identity_rules(route, state),
            ]
        )

    def _sso_rules(self, route: str) -> list[Rule]:
        if self.sso is None:
            return []
        return SsoAdmin(self.state, self.sso).rules(route)

    def handle(self, request: Request) -> tuple[int, Json]:
        try:
            if request.remote_addr not in ("127.0.0.1", "::1") and not str(
                request.remote_addr
            ).startswith("127."):
                raise AdminError(403, "forbidden", "the admin API answers loopback callers only")
            adapter = self.routes.bind_to_environ(request.environ)
            endpoint, args = adapter.match()
            body: Json = {}
            if request.method in ("POST", "PUT"):
                raw = request.get_data(cache=False)[: _MAX_BODY + 1]
                if len(raw) > _MAX_BODY:
                    raise AdminError(413, "too_large", "admin request body too large")
                if raw.strip():
                    parsed = json.loads(raw)
                    if not isinstance(parsed, dict):
                        raise AdminError(400, "bad_json", "body must be a JSON object")
                    body = parsed
            result: tuple[int, Json] = endpoint(body, **args)
            return result
        except AdminError as e:
            return e.status, {"error": {"code": e.code, "message": e.message}}
        except MotoError as e:
            return e.status, {"error": {"code": e.code, "message": str(e)}}
        except json.JSONDecodeError:
            return 400, {"error": {"code": "bad_json", "message": "body is not valid JSON"}}
        except (NotFound, MethodNotAllowed) as e:
            return e.code or 404, {"error": {"code": "not_found", "message": e.description}}
        except HTTPException as e:
            return e.code or 400, {"error": {"code": "bad_request", "message": e.description}}

    def _moto(self) -> MotoIam:
        if self.moto is None:
            raise AdminError(503, "no_moto", "this sandbox runs without moto")
        return self.moto

    def health(self, body: Json) -> tuple[int, Json]:
        return 200, {"ok": True, **self.info()}

    def create_user(self, body: Json) -> tuple[int, Json]:
        name = _name(body)
        with self.state.lock:
            if name in self.state.users:
                raise AdminError(409, "exists", f"user {name} already exists")
        moto = self._moto()
        arn, user_id = moto.create_user(name)
        key_id, secret = moto.create_access_key(name)
        self.state.add_user(User(name, arn, user_id, key_id), secret)
        log.info("created user %s with key ...%s", name, key_id[-4:])
        return 201, {
            "name": name,
            "arn": arn,
            "user_id": user_id,
            "account_id": ACCOUNT_ID,
            "access_key_id": key_id,
            "secret_access_key": secret,
        }

    def create_device(self, body: Json, name: str) -> tuple[int, Json]:
        with self.state.lock:
            if name not in self.state.users:
                raise AdminError(404, "no_such_user", f"user {name} does not exist")
            device_name = _name(body) if "name" in body else name
            seed = pyotp.random_base32()
            try:
                device = self.state.add_device(name, device_name, seed)
            except KeyError:
                raise AdminError(409, "exists", f"MFA device {device_name} exists") from None
        log.info("created MFA device %s for %s", device.serial, name)
        return 201, {"serial": device.serial, "seed": seed, "user": name}

    def user_policy(self, body: Json, name: str) -> tuple[int, Json]:
        """``{"require_mfa": bool}``: deny the user's access-key calls without MFA."""
        require = body.get("require_mfa")
        if not isinstance(require, bool):
            raise AdminError(400, "bad_value", "require_mfa must be true or false")
        with self.state.lock:
            if name not in self.state.users:
                raise AdminError(404, "no_such_user", f"user {name} does not exist")
            (self.state.mfa_policies.add if require else self.state.mfa_policies.discard)(name)
        return 200, {"user": name, "require_mfa": require}

    def create_role(self, body: Json) -> tuple[int, Json]:
        name = _name(body)
        max_duration = int(_number(body, "max_session_duration", 3600))
        if not 3600 <= max_duration <= 43200:
            raise AdminError(400, "bad_value", "max_session_duration must be 3600..43200")
        trusted = body.get("trusted", [f"arn:aws:iam::{ACCOUNT_ID}:root"])
        if not isinstance(trusted, list) or not all(isinstance(p, str) for p in trusted):
            raise AdminError(400, "bad_value", "'trusted' must be a list of principal ARNs")
        external_id = body.get("external_id")
        if external_id is not None and not isinstance(external_id, str):
            raise AdminError(400, "bad_value", "'external_id' must be a string or null")
        arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        with self.state.lock:
            if arn in self.state.roles:
                raise AdminError(409, "exists", f"role {name} already exists")
        policy = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}
                ],
            }
        )
        self._moto().create_role(name, policy, max_duration)
        role = Role(
            name=name,
            arn=arn,
            role_id=random_id("AROA", 17),
            max_session_duration=max_duration,
            trusted=tuple(trusted),
            mfa_required=bool(body.get("mfa_required", False)),
            external_id=external_id,
        )
        self.state.add_role(role)
        return 201, {
            "name": name,
            "arn": arn,
            "role_id": role.role_id,
            "max_session_duration": max_duration,
            "trusted": list(trusted),
            "mfa_required": role.mfa_required,
            "external_id": external_id,
        }

    def calls(self, body: Json) -> tuple[int, Json]:
        return 200, self.counters.snapshot()

    def get_knobs(self, body: Json) -> tuple[int, Json]:
        return 200, self.knobs.snapshot()

    def clear_knobs(self, body: Json) -> tuple[int, Json]:
        self.knobs.clear()
        return 200, self.knobs.snapshot()

    def clear_knob(self, body: Json, kind: str) -> tuple[int, Json]:
        if kind not in KNOB_KINDS:
            raise AdminError(404, "no_such_knob", f"knobs are {', '.join(KNOB_KINDS)}")
        self.knobs.clear(kind)
        return 200, self.knobs.snapshot()

    def set_knob(self, body: Json, kind: str) -> tuple[int, Json]:
        services = _names(body, "services", frozenset({"sts"}))
        actions = _names(body, "actions", None)
        count = _optional_count(body)
        if kind == "fail":
            status = int(_number(body, "status", 500))
            if not 400 <= status <= 599:
                raise AdminError(400, "bad_value", "'status' must be 400..599")
            knob = Knob(
                "fail",
                services,
                actions,
                count,
                code=str(body.get("code", "InternalFailure")),
                status=status,
                message=str(body.get("message", "The sandbox was told to fail this call.")),
            )
        elif kind == "throttle":
            knob = Knob(
                "throttle",
                services,
                actions,
                count,
                code="Throttling",
                status=400,
                message="Rate exceeded",
            )
        elif kind == "slow":
            seconds = _number(body, "seconds")
            if not 0 <= seconds <= 300:
                raise AdminError(400, "bad_value", "'seconds' must be 0..300")
            knob = Knob("slow", services, actions, count, seconds=seconds)
        elif kind == "down":
            if actions is not None:
                raise AdminError(400, "bad_value", "'down' is chosen by service only")
            knob = Knob("down", services, None, count)
        else:
            raise AdminError(404, "no_such_knob", f"knobs are {', '.join(KNOB_KINDS)}")
        self.knobs.set(knob)
        return 200, self.knobs.snapshot()

    def _clock_json(self) -> Json:
        return {
            "now": isoformat_z(self.state.clock.now()),
            "epoch": self.state.clock.now().timestamp(),
            "offset_seconds": self.state.clock.offset,
        }

    def clock(self, body: Json) -> tuple[int, Json]:
        return 200, self._clock_json()

    def advance(self, body: Json) -> tuple[int, Json]:
        self.state.clock.advance(_number(body, "seconds"))
        return 200, self._clock_json()

    def set_clock(self, body: Json) -> tuple[int, Json]:
        text = body.get("now")
        if not isinstance(text, str):
            raise AdminError(400, "bad_value", "'now' must be an ISO 8601 time")
        try:
            when = parse_iso(text)
        except ValueError:
            raise AdminError(400, "bad_value", "'now' must be an ISO 8601 time") from None
        self.state.clock.set(when)
        return 200, self._clock_json()

    def _settings_json(self) -> Json:
        return {
            "min_duration_seconds": self.state.min_duration,
            "totp_clock": self.state.totp_clock,
            "date_clock": self.state.date_clock,
        }

    def settings(self, body: Json) -> tuple[int, Json]:
        return 200, self._settings_json()

    def update_settings(self, body: Json) -> tuple[int, Json]:
        with self.state.lock:
            if "min_duration_seconds" in body:
                value = int(_number(body, "min_duration_seconds"))
                if not 1 <= value <= 900:
                    raise AdminError(400, "bad_value", "min_duration_seconds must be 1..900")
                self.state.min_duration = value
            if "totp_clock" in body:
                clock = body["totp_clock"]
                if clock not in ("real", "sandbox"):
                    raise AdminError(400, "bad_value", "totp_clock must be 'real' or 'sandbox'")
                self.state.totp_clock = clock
            if "date_clock" in body:
                clock = body["date_clock"]
                if clock not in ("real", "sandbox"):
                    raise AdminError(400, "bad_value", "date_clock must be 'real' or 'sandbox'")
                self.state.date_clock = clock
        return 200, self._settings_json()

    def reset(self, body: Json) -> tuple[int, Json]:
        self.knobs.clear()
        self.counters.reset()
        self.state.reset_settings()
        if self.sso is not None:
            self.sso.reset_settings()
        return 200, {"ok": True}
