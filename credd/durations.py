"""The one way credd writes a duration for a person: ``45s``, ``4m09s``, ``1h05m``, ``12h``,
``1d12h``, ``7d`` (the two largest units, the second one only when it is not zero).

Used in tables (``credd status``), in messages (the planner, the lifetime guard, ``presign``)
and in logs, so the same length always reads the same. Parsing is
:func:`credd.aws.config.parse_duration`. Standard library only.
"""

from __future__ import annotations

__all__ = ["format_duration"]

_UNITS = ((86400, "d", 24, "h"), (3600, "h", 60, "m"), (60, "m", 60, "s"))


def format_duration(seconds: float | None) -> str:
    """``seconds`` as the two largest units (truncated to whole seconds); ``-`` for ``None``,
    a leading ``-`` for a negative one (time past)."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    whole = int(abs(seconds))
    for size, unit, per, small in _UNITS:
        if whole >= size:
            big, rest = divmod(whole, size)
            part = rest * per // size
            return f"{sign}{big}{unit}" + (f"{part:02d}{small}" if part else "")
    return f"{sign}{whole}s"
