"""Reading the admin API's JSON bodies: the error it answers with and the field checks.

Shared by :mod:`credd_sandbox.admin` and the routes it mounts (``sso_admin``, ``web_identity``).
"""

from __future__ import annotations

import re
from typing import Any

_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
Json = dict[str, Any]


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _name(body: Json, key: str = "name") -> str:
    value = body.get(key)
    if not isinstance(value, str) or not _NAME.match(value):
        raise AdminError(400, "bad_name", f"{key!r} must be 1-64 characters of [A-Za-z0-9+=,.@_-]")
    return value


def _number(body: Json, key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AdminError(400, "bad_value", f"{key!r} must be a number")
    return float(value)


def _optional_count(body: Json) -> int | None:
    count = body.get("count")
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise AdminError(400, "bad_value", "'count' must be a positive integer or null")
    return count


def _names(body: Json, key: str, default: frozenset[str] | None) -> frozenset[str] | None:
    value = body.get(key, None if default is None else sorted(default))
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdminError(400, "bad_value", f"{key!r} must be a list of strings")
    return None if "*" in value else frozenset(value)
