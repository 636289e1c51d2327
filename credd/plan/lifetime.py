"""The lifetime guard: how long a profile's credentials can last at most, and why.

A job that runs for hours should start only with enough lifetime left (``credd get
--min-lifetime 2h``, ``credd exec --min-lifetime 2h``, the ``X-Credd-Min-Lifetime`` header on the
socket and the endpoints). The manager refreshes first (single-flight) when the held credentials
end sooner; this module says, from the plan alone, whether a refresh *could* give that much, so an
impossible wish fails at once with how long is possible and why, and no STS call is made for it.

The limits (facts.md): a role assumed from session or role credentials (role chaining) is capped
at 1 h; a role assumed straight from long-term keys lasts its ``duration_seconds`` (up to the
role's MaxSessionDuration, 12 h at most); an MFA session lasts ``credd_session_duration`` (36 h
at most); IAM Identity Center role credentials last the permission set's session duration, known
once credd has seen one; and a refresh that needs a person's MFA code cannot be done on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from credd.aws.config import CHAIN_CAP, parse_duration
from credd.durations import format_duration
from credd.errors import LifetimeUnavailable, RequestError
from credd.models import Credentials
from credd.plan.nodes import Kind, Node, Plan

__all__ = [
    "HEADER",
    "Longest",
    "check_possible",
    "guarded",
    "lasts",
    "longest",
    "parse_min_lifetime",
]

HEADER = "x-credd-min-lifetime"
MAX_ASK = 36 * 3600


@dataclass(frozen=True)
class Longest:
    """The longest lifetime a fresh refresh can give (``None``: not known yet), and why."""

    seconds: int | None
    why: str

    def to_json(self) -> dict[str, object]:
        return {"seconds": self.seconds, "why": self.why}


#: kept for credd.manager's refresh reason; new code uses credd.durations.format_duration


def parse_min_lifetime(text: str, source: str = HEADER) -> timedelta:
    """``"2h"``, ``"90m"``, ``"1h30m"``, ``"7200"`` -> a duration (1 s .. 36 h)."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = -1
    if not 0 < seconds <= MAX_ASK:
        raise RequestError(
            f"{source} must be a duration up to 36h (2h, 90m, 7200), not {text[:40]!r}",
            hint="e.g. --min-lifetime 2h",
        )
    return timedelta(seconds=seconds)


def longest(plan: Plan, observed: timedelta | None = None) -> Longest:
    """How long credentials for ``plan`` can last when fetched now. ``observed``: the lifetime of
    the last credentials the target node got (what an SSO permission set gives)."""
    node = plan.target
    if node.kind is Kind.SESSION:
        return Longest(
            node.duration,
            f"credd_session_duration of {node.base!r} is {format_duration(node.duration)} "
            "(STS allows up to 36 h)",
        )
    if node.kind is Kind.SSO:
        if observed is None:
            return Longest(None, "the permission set's session duration (not seen yet)")
        seconds = int(observed.total_seconds())
        return Longest(
            seconds, f"the permission set's session duration is {format_duration(seconds)}"
        )
    return _role(node)


def _role(node: Node) -> Longest:
    if node.parent is not None:
        cap = min(node.duration, CHAIN_CAP)
        if node.duration >= CHAIN_CAP:
            why = "role chaining (a role assumed from session or role credentials) is capped at 1 h"
        else:
            why = (
                f"duration_seconds is {format_duration(node.duration)} (role chaining allows up "
                "to 1 h)"
            )
        return Longest(cap, why)
    return Longest(
        node.duration,
        f"duration_seconds is {format_duration(node.duration)} (up to the role's "
        "MaxSessionDuration, 12 h at most)",
    )


def lasts(creds: Credentials, now: datetime, min_left: timedelta) -> bool:
    return creds.expiration is None or creds.expiration - now >= min_left


def check_possible(
    profile: str, limit: Longest, min_left: timedelta, *, needs_person: str | None
) -> None:
    """Raise ``LifetimeUnavailable`` when no refresh can give ``min_left``: beyond the source's
    limit, or only a person could start the refresh (``needs_person``: what they would run)."""
    want = format_duration(min_left.total_seconds())
    if limit.seconds is not None and limit.seconds < min_left.total_seconds():
        raise LifetimeUnavailable(
            f"{profile!r} cannot give credentials lasting {want}: at most "
            f"{format_duration(limit.seconds)}, because {limit.why}",
            hint=f"ask for {format_duration(limit.seconds)} or less, or change the profile "
            "(docs/imds.md#the-lifetime-guard)",
        )
    if needs_person is not None:
        raise LifetimeUnavailable(
            f"{profile!r} needs a new session to last {want}, and only a person can start it",
            hint=f"run {needs_person}, then try again",
        )


def short(profile: str, creds: Credentials, now: datetime, min_left: timedelta) -> Exception:
    """The error when even fresh credentials end too soon."""
    left = (creds.expiration - now).total_seconds() if creds.expiration else 0
    return LifetimeUnavailable(
        f"{profile!r}: fresh credentials last {format_duration(max(left, 0))}, less than the "
        f"{format_duration(min_left.total_seconds())} asked for",
        hint="ask for less: the source gives no more",
    )


def guarded(backend: Any, profile: str, header: str | None) -> Credentials:
    """``backend.credentials(profile)``, or with ``X-Credd-Min-Lifetime: header`` the guarded
    ``backend.credentials_lasting`` (every server's one entry point for the header)."""
    if header is None:
        creds: Credentials = backend.credentials(profile)
        return creds
    min_left = parse_min_lifetime(header)
    lasting = getattr(backend, "credentials_lasting", None)
    if lasting is None:
        raise RequestError("this server does not support X-Credd-Min-Lifetime")
    guarded_creds: Credentials = lasting(profile, min_left)
    return guarded_creds
