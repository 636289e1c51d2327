"""A client for the sandbox's admin API (standard library only).

Objects holding secrets (a user's secret key, a device's seed) keep them out of ``repr``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

from credd.clock import isoformat_z, parse_iso
from credd.errors import CreddError
from credd_sandbox.sso_client import SsoAdminMixin


class SandboxError(CreddError):
    """The sandbox's admin API refused a request or could not be reached."""

    code = "sandbox_error"
    exit_code = 1
    http_status = 502

    def __init__(
        self, message: str, *, status: int = 0, error_code: str = "", hint: str | None = None
    ):
        super().__init__(message, hint=hint, status=status, error_code=error_code)
        self.status = status
        self.error_code = error_code


@dataclass(frozen=True)
class SandboxUser:
    """An IAM user with one long-term access key."""

    name: str
    arn: str
    user_id: str
    account_id: str
    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class MfaDevice:
    """A virtual MFA device. Unpacks as ``serial, seed = device``."""

    serial: str
    seed: str = field(repr=False)
    user: str = ""

    def __iter__(self) -> Iterator[str]:
        return iter((self.serial, self.seed))


@dataclass(frozen=True)
class SandboxRole:
    name: str
    arn: str
    role_id: str
    max_session_duration: int
    trusted: tuple[str, ...]
    mfa_required: bool
    external_id: str | None = field(default=None, repr=False)


def _services(services: Sequence[str] | str | None) -> list[str]:
    if services is None or services == "*":
        return ["*"]
    if isinstance(services, str):
        return [services]
    return list(services)


class AdminClient(SsoAdminMixin):
    """Talks to ``{endpoint}/_sandbox/`` (Identity Center methods: :class:`SsoAdminMixin`)."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise SandboxError(f"sandbox endpoint must be an http URL, not {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        # Never route loopback admin calls through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"AdminClient({self.endpoint!r})"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One admin call; returns the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            f"{self.endpoint}/_sandbox/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with self._opener.open(req, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                error = json.loads(e.read()).get("error", {})
            except (ValueError, AttributeError):
                error = {}
            raise SandboxError(
                f"sandbox admin {method} {path} failed ({e.code}): "
                f"{error.get('message', e.reason)}",
                status=e.code,
                error_code=str(error.get("code", "")),
            ) from None
        except (urllib.error.URLError, OSError) as e:
            raise SandboxError(
                f"sandbox admin API at {self.endpoint} unreachable: {e}",
                hint="start it with `python -m credd_sandbox`",
            ) from None

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "health")
        return result

    def create_user(self, name: str) -> SandboxUser:
        r = self.request("POST", "users", {"name": name})
        return SandboxUser(
            r["name"],
            r["arn"],
            r["user_id"],
            r["account_id"],
            r["access_key_id"],
            r["secret_access_key"],
        )

    def create_mfa_device(self, user: str | SandboxUser, name: str | None = None) -> MfaDevice:
        user_name = user.name if isinstance(user, SandboxUser) else user
        body = {"name": name} if name else {}
        r = self.request("POST", f"users/{user_name}/mfa-devices", body)
        return MfaDevice(r["serial"], r["seed"], r["user"])

    def set_user_policy(self, user: str | SandboxUser, *, require_mfa: bool) -> None:
        """Give the user (or take away) the "deny IAM access-key calls without MFA" policy."""
        user_name = user.name if isinstance(user, SandboxUser) else user
        self.request("POST", f"users/{user_name}/policy", {"require_mfa": require_mfa})

    def create_role(
        self,
        name: str,
        *,
        trusted: Sequence[str] | None = None,
        max_session_duration: int = 3600,
        mfa_required: bool = False,
        external_id: str | None = None,
    ) -> SandboxRole:
        body: dict[str, Any] = {
            "name": name,
            "max_session_duration": max_session_duration,
            "mfa_required": mfa_required,
            "external_id": external_id,
        }
        if trusted is not None:
            body["trusted"] = list(trusted)
        r = self.request("POST", "roles", body)
        return SandboxRole(
            r["name"],
            r["arn"],
            r["role_id"],
            r["max_session_duration"],
            tuple(r["trusted"]),
            r["mfa_required"],
            r["external_id"],
        )

    @overload
    def calls(self, action: None = None) -> dict[str, int]: ...
    @overload
    def calls(self, action: str) -> int: ...
    def calls(self, action: str | None = None) -> int | dict[str, int]:
        """Calls received per action (all outcomes), or the count for one action."""
        actions = self.request("GET", "calls")["actions"]
        if action is not None:
            return int(actions.get(action, {}).get("total", 0))
        return {name: int(c["total"]) for name, c in actions.items()}

    def call_stats(self) -> dict[str, Any]:
        """The full counters: ``actions`` (total/ok/error), ``keys`` (per caller), ``dropped``."""
        result: dict[str, Any] = self.request("GET", "calls")
        return result

    def calls_by_key(self, access_key_id: str) -> dict[str, int]:
        keys = self.request("GET", "calls")["keys"]
        return {name: int(n) for name, n in keys.get(access_key_id, {}).items()}

    def _knob(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"knobs/{kind}", body)
        return result

    def set_fail(
        self,
        code: str = "InternalFailure",
        status: int = 500,
        message: str = "The sandbox was told to fail this call.",
        *,
        count: int | None = None,
        services: Sequence[str] | str | None = ("sts",),
        actions: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Fail the next ``count`` matching calls (all of them until cleared when ``None``)."""
        return self._knob(
            "fail",
            {
                "code": code,
                "status": status,
                "message": message,
                "count": count,
                "services": _services(services),
                "actions": list(actions) if actions else None,
            },
        )

    def set_throttle(
        self,
        *,
        count: int | None = None,
        services: Sequence[str] | str | None = ("sts",),
        actions: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Answer matching calls with ``Throttling`` (HTTP 400, "Rate exceeded")."""
        return self._knob(
            "throttle",
            {
                "count": count,
                "services": _services(services),
                "actions": list(actions) if actions else None,
            },
        )

    def set_slow(
        self,
        seconds: float,
        *,
        count: int | None = None,
        services: Sequence[str] | str | None = ("sts",),
        actions: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Delay matching calls by ``seconds`` before answering."""
        return self._knob(
            "slow",
            {
                "seconds": seconds,
                "count": count,
                "services": _services(services),
                "actions": list(actions) if actions else None,
            },
        )

    def set_down(
        self,
        enabled: bool = True,
        *,
        count: int | None = None,
        services: Sequence[str] | str | None = ("sts",),
    ) -> dict[str, Any]:
        """Drop connections of matching calls without an answer (clients see a network error)."""
        if not enabled:
            result: dict[str, Any] = self.request("DELETE", "knobs/down")
            return result
        return self._knob("down", {"count": count, "services": _services(services)})

    def knobs(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "knobs")
        return result

    def clear_knobs(self) -> None:
        self.request("DELETE", "knobs")

    def now(self) -> datetime:
        """The sandbox's clock (real time plus the offset tests set)."""
        return parse_iso(self.request("GET", "clock")["now"])

    def advance(self, seconds: float) -> datetime:
        return parse_iso(self.request("POST", "clock/advance", {"seconds": seconds})["now"])

    def set_now(self, when: datetime) -> datetime:
        return parse_iso(self.request("POST", "clock/set", {"now": isoformat_z(when)})["now"])

    def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "settings")
        return result

    def set_min_duration(self, seconds: int) -> None:
        self.request("POST", "settings", {"min_duration_seconds": seconds})

    def set_totp_clock(self, clock: str) -> None:
        """Check TOTP codes against ``"real"`` time (default) or the ``"sandbox"`` clock."""
        self.request("POST", "settings", {"totp_clock": clock})

    def set_date_clock(self, clock: str) -> None:
        """Check requests' signing dates against ``"real"`` time (default) or the ``"sandbox"``
        clock (for a client whose own clock was moved with the sandbox's, as under faketime)."""
        self.request("POST", "settings", {"date_clock": clock})

    def reset(self) -> None:
        """Clear knobs and counters; clock offset and settings back to their start values."""
        self.request("POST", "reset", {})
