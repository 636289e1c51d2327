"""Prometheus metrics: a small thread-safe registry and the text exposition format (0.0.4).

Counters are kept here as things happen (refreshes, failures, AWS calls, requests served);
gauges about profiles (seconds to expiry, state) are computed when scraped, from the backend's
``status()``, so they can never drift from what ``credd status`` shows. Served on the unix
socket as ``GET /v1/metrics``; every metric is listed in :data:`FAMILIES` and docs/metrics.md.

No secret ever becomes a label: label values are profile names that pass the socket's profile
check, credd's own error codes and states, botocore's service and operation names, and the
socket's route patterns; anything else is reported as ``other``. Standard library only.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from credd.clock import parse_iso
from credd.models import STATES, ProfileStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"

_PROFILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+=,:-]{0,127}")  # as the socket accepts
_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_AWS_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")
_ROUTE_RE = re.compile(r"/[A-Za-z0-9/{}_-]{0,127}")
_VERSION_RE = re.compile(r"[0-9A-Za-z.+_-]{1,64}")
AWS_OUTCOMES = ("ok", "client_error", "server_error", "no_response")
REFRESH_OUTCOMES = ("success", *(s for s in STATES if s not in {"pending", "fresh", "refreshing"}))


@dataclass(frozen=True)
class Family:
    """One metric: name, type, help text and label names."""

    name: str
    kind: str  # "counter" | "gauge"
    help: str
    labels: tuple[str, ...] = ()


REFRESHES = Family(
    "credd_refreshes_total",
    "counter",
    "Refreshes finished, by the profile whose settings made the call and outcome "
    "(success, or the state the failure left: needs_mfa, login_required, backoff, error).",
    ("profile", "outcome"),
)
FAILURES = Family(
    "credd_refresh_failures_total",
    "counter",
    "Failed refreshes by reason (credd's stable error code, as in status --json).",
    ("reason",),
)
AWS_CALLS = Family(
    "credd_aws_calls_total",
    "counter",
    "AWS API calls credd made (STS, IAM Identity Center, IAM), by service, operation and "
    "outcome (ok, client_error, server_error, no_response).",
    ("service", "operation", "outcome"),
)
REQUESTS = Family(
    "credd_socket_requests_total",
    "counter",
    "Requests answered on the unix socket, by route pattern and HTTP status.",
    ("route", "status"),
)
EXPIRY = Family(
    "credd_credentials_expiry_seconds",
    "gauge",
    "Seconds until the credentials served for a profile expire (negative: expired; absent: "
    "none held or they never expire).",
    ("profile",),
)
NEXT_REFRESH = Family(
    "credd_next_refresh_seconds",
    "gauge",
    "Seconds until the next scheduled refresh of a profile (absent: none scheduled).",
    ("profile",),
)
LAST_REFRESH = Family(
    "credd_last_refresh_timestamp_seconds",
    "gauge",
    "Unix time of a profile's last successful refresh (absent: none yet).",
    ("profile",),
)
STATE = Family(
    "credd_profile_state",
    "gauge",
    "1 for the state a profile is in, 0 for the others (see credd status).",
    ("profile", "state"),
)
PROFILES = Family("credd_profiles", "gauge", "Managed profiles by state.", ("state",))
START_TIME = Family("credd_start_time_seconds", "gauge", "Unix time the daemon started.", ())
BUILD = Family("credd_build_info", "gauge", "Always 1; the version is a label.", ("version",))

COUNTERS = (REFRESHES, FAILURES, AWS_CALLS, REQUESTS)
GAUGES = (EXPIRY, NEXT_REFRESH, LAST_REFRESH, STATE, PROFILES, START_TIME, BUILD)
FAMILIES = COUNTERS + GAUGES


def _checked(value: object, pattern: re.Pattern[str]) -> str:
    text = str(value)
    return text if pattern.fullmatch(text) else OTHER


def _one_of(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


class Registry:
    """Counters by family and label values. Thread-safe; increments are a lock and a dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[str, ...], float]] = {f.name: {} for f in COUNTERS}

    def inc(self, family: Family, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0) to a counter. Label values must already be checked."""
        if family.kind != "counter" or len(labels) != len(family.labels) or amount < 0:
            raise ValueError(f"bad increment of {family.name}")
        with self._lock:
            series = self._values[family.name]
            series[labels] = series.get(labels, 0.0) + amount

    def value(self, family: Family, *labels: str) -> float:
        with self._lock:
            return self._values[family.name].get(tuple(labels), 0.0)

    # -- what other modules record -----------------------------------------------------------

    def record_refresh(self, profile: str, outcome: str, reason: str | None = None) -> None:
        """A refresh finished: ``outcome`` is ``success`` or the entry's state after a failure;
        ``reason`` the error's code (failures only)."""
        self.inc(REFRESHES, (_checked(profile, _PROFILE_RE), _one_of(outcome, REFRESH_OUTCOMES)))
        if outcome != "success":
            self.inc(FAILURES, (_checked(reason or "unknown", _CODE_RE),))

    def count_aws_call(self, service: str, operation: str, outcome: str) -> None:
        self.inc(
            AWS_CALLS,
            (
                _checked(service, _AWS_NAME_RE),
                _checked(operation, _AWS_NAME_RE),
                _one_of(outcome, AWS_OUTCOMES),
            ),
        )

    def count_request(self, route: str | None, status: int) -> None:
        """``route`` is the matched route's pattern (never the raw path); ``None``: no route."""
        name = _checked(route, _ROUTE_RE) if route else "unmatched"
        self.inc(REQUESTS, (name, str(status) if 100 <= status <= 599 else OTHER))

    # -- exposition ---------------------------------------------------------------------------

    def render(
        self, statuses: Iterable[ProfileStatus], now: datetime, info: Mapping[str, Any]
    ) -> str:
        """The whole scrape: every family with ``# HELP`` and ``# TYPE``, samples sorted."""
        with self._lock:
            counters = {name: dict(series) for name, series in self._values.items()}
        gauges = _gauges(list(statuses), now, info)
        out: list[str] = []
        for family in FAMILIES:
            out.append(f"# HELP {family.name} {_escape_help(family.help)}")
            out.append(f"# TYPE {family.name} {family.kind}")
            series = counters.get(family.name) or gauges.get(family.name, {})
            for labels in sorted(series):
                out.append(_sample(family, labels, series[labels]))
        return "\n".join(out) + "\n"


def _gauges(
    statuses: list[ProfileStatus], now: datetime, info: Mapping[str, Any]
) -> dict[str, dict[tuple[str, ...], float]]:
    out: dict[str, dict[tuple[str, ...], float]] = {f.name: {} for f in GAUGES}
    by_state = dict.fromkeys(STATES, 0.0)
    for status in statuses:
        profile = _checked(status.name, _PROFILE_RE)
        if status.expires_at is not None:
            out[EXPIRY.name][(profile,)] = (status.expires_at - now).total_seconds()
        if status.next_refresh_at is not None:
            out[NEXT_REFRESH.name][(profile,)] = (status.next_refresh_at - now).total_seconds()
        if status.last_refresh_at is not None:
            out[LAST_REFRESH.name][(profile,)] = status.last_refresh_at.timestamp()
        for state in STATES:
            out[STATE.name][(profile, state)] = 1.0 if status.state == state else 0.0
        if status.state in by_state:
            by_state[status.state] += 1
    for state, count in by_state.items():
        out[PROFILES.name][(state,)] = count
    started = info.get("started_at")
    if isinstance(started, str):
        with contextlib.suppress(ValueError):
            out[START_TIME.name][()] = parse_iso(started).timestamp()
    out[BUILD.name][(_checked(info.get("version", ""), _VERSION_RE),)] = 1.0
    return out


def _sample(family: Family, labels: tuple[str, ...], value: float) -> str:
    if labels:
        pairs = ",".join(
            f'{name}="{_escape_label(v)}"' for name, v in zip(family.labels, labels, strict=True)
        )
        return f"{family.name}{{{pairs}}} {_number(value)}"
    return f"{family.name} {_number(value)}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


# -- the process-wide registry and what the rest of credd calls --------------------------------

REGISTRY = Registry()


def record_refresh(profile: str, outcome: str, reason: str | None = None) -> None:
    """``metrics.record_refresh(name, "success")`` / ``(name, entry.state, exc.code)``."""
    REGISTRY.record_refresh(profile, outcome, reason)


def count_aws_call(service: str, operation: str, outcome: str) -> None:
    REGISTRY.count_aws_call(service, operation, outcome)


def instrument(client: Any, registry: Registry | None = None) -> Any:
    """Count every API call ``client`` (a botocore client) makes; returns the client.

    Uses botocore's ``after-call`` (a response arrived: its HTTP status gives the outcome) and
    ``after-call-error`` (no response: connection refused, timeout) events, so the count is
    exact whichever source made the call, retries inside botocore counted once.
    """
    target = registry or REGISTRY

    def after_call(http_response: Any = None, model: Any = None, **_: Any) -> None:
        status = int(getattr(http_response, "status_code", 0) or 0)
        outcome = "ok" if status < 300 else "client_error" if status < 500 else "server_error"
        target.count_aws_call(_service(model), getattr(model, "name", OTHER), outcome)

    def after_error(event_name: str = "", **_: Any) -> None:
        # "after-call-error.<service-id>.<Operation>"
        parts = event_name.split(".")
        service, operation = (parts[1], parts[2]) if len(parts) == 3 else (OTHER, OTHER)
        target.count_aws_call(service, operation, "no_response")

    events = client.meta.events
    events.register("after-call", after_call, unique_id="credd-metrics-after-call")
    events.register("after-call-error", after_error, unique_id="credd-metrics-after-call-error")
    return client


def _service(model: Any) -> str:
    service_model = getattr(model, "service_model", None)
    service_id = getattr(service_model, "service_id", None)
    return service_id.hyphenize() if service_id is not None else OTHER
